// SPDX-License-Identifier: Apache-2.0
// LayerPruner: one linear layer through a Recipe (base pruner, optional DSnoT, metrics). Pure and synchronous.
// Shapes: W (out, in); statistics over the layer's inputs (in); results in W's layout.

import DSnoTSupport

/// What one layer's pruning produced, for the report.
public struct LayerMetrics: Sendable, Equatable {
    /// Fraction of pruned weights in the final mask.
    public var achievedSparsity: Double
    /// Smallest and largest pruned count of a row.
    public var prunedPerRowMin: Int
    public var prunedPerRowMax: Int
    /// Fraction of pruned weights in the base mask (before DSnoT).
    public var baseSparsity: Double
    /// `‖(W − Ŵ)X‖²_F / ‖WX‖²_F` of the base result and of the final result, from the Hessian on
    /// `errorRowsSampled` rows (`nil` when no Hessian was accumulated). See `ReconstructionError`.
    public var baseRelativeError: Double?
    public var finalRelativeError: Double?
    public var errorRowsSampled: Int
    /// DSnoT's record, `nil` when DSnoT was off or skipped this layer.
    public var dsnot: DSnoT.LayerRecord?
    /// True when DSnoT was on but `skip` matched this layer.
    public var skippedByDSnoT: Bool
    /// SparseGPT's dampening that succeeded.
    public var dampeningUsed: Float?
}

/// The result of pruning one layer.
public struct LayerPruningResult: Sendable {
    /// Final mask, 1 = pruned.
    public var mask: PruneMask
    /// New weights when the method changes values (SparseGPT, D9); `nil` = the dense weights with
    /// `mask` applied. The caller rounds them back to the checkpoint dtype.
    public var weights: Matrix?
    /// The base method's mask (equal to `mask` without DSnoT).
    public var baseMask: PruneMask
    /// The base method's new weights (SparseGPT), `nil` = the dense weights under `baseMask`.
    public var baseWeights: Matrix? = nil
    public var metrics: LayerMetrics
    /// Seconds spent in the base pruner (mask, and SparseGPT's weight update); not part of `metrics`,
    /// which are deterministic.
    public var baseSeconds: Double = 0
    /// Seconds spent in DSnoT's refinement (0 when it did not run).
    public var dsnotSeconds: Double = 0

    /// The sparse weights: `weights`, or `dense` under `mask`.
    public func sparseWeights(dense: Matrix) -> Matrix { weights ?? mask.applied(to: dense) }

    /// The base method's sparse weights: `baseWeights`, or `dense` under `baseMask`.
    public func baseSparseWeights(dense: Matrix) -> Matrix { baseWeights ?? baseMask.applied(to: dense) }
}

/// The per-layer entry point of the sequential pipeline.
///
/// ```swift
/// let result = try LayerPruner.prune(weights: w, statistics: stats, recipe: recipe,
///                                    layer: "model.layers.3.self_attn.q_proj")
/// ```
public enum LayerPruner {
    /// Prunes one linear layer.
    /// - Parameters:
    ///   - weights: dense `W (out, in)` in fp32.
    ///   - statistics: the layer's calibration statistics (`nil` only for magnitude without DSnoT).
    ///   - recipe: a validated recipe.
    ///   - layer: the checkpoint name (DSnoT's `skip` matches its in-block components).
    ///   - metricRows: rows sampled for the reconstruction-error metric.
    ///   - metricHessian: `Σ x xᵀ`-shaped Gram matrix `(in, in)` to measure the reconstruction error with
    ///     when `statistics` carries no Hessian (the pipeline accumulates one on a few sequences).
    ///   - pattern: this layer's pattern when it differs from the recipe's (OWL's per-block sparsity).
    ///   - dsnotStatistics: DSnoT's statistics when they differ from the base pruner's (the pipeline's
    ///     output check holds sequences out of them); `nil` = `statistics`.
    /// - Throws: `PruningError` (pattern vs width, missing or mis-shaped statistics, Cholesky failure).
    public static func prune(
        weights: Matrix,
        statistics: LayerStatistics?,
        recipe: Recipe,
        layer: String,
        metricRows: Int = 128,
        metricHessian: Matrix? = nil,
        pattern: SparsityPattern? = nil,
        dsnotStatistics: LayerStatistics? = nil
    ) throws -> LayerPruningResult {
        var recipe = recipe
        if let pattern { recipe.pattern = pattern }
        let clock = ContinuousClock()
        let c = weights.columns
        guard weights.rows > 0, c > 0 else {
            throw PruningError.emptyLayer(layer: layer, rows: weights.rows, columns: c)
        }
        try recipe.validate(layer: layer, columns: c)
        for s in [statistics, dsnotStatistics].compactMap(\.self) where s.inputFeatures != c {
            throw PruningError.statisticShapeMismatch(
                layer: layer,
                statistic: "statistics",
                expected: c,
                got: s.inputFeatures
            )
        }
        try checkFinite(weights.storage, layer: layer, tensor: "weights")
        for st in [statistics, dsnotStatistics].compactMap(\.self) {
            try checkFinite(st.scalerRow, layer: layer, tensor: "scaler_row")
            try checkFinite(st.sumRow, layer: layer, tensor: "sum_row")
            try checkFinite(st.variance, layer: layer, tensor: "variance")
        }
        let dsnotSettings = recipe.dsnot
        let runsDSnoT = dsnotSettings.map { !$0.skips(layer: layer) } ?? false
        let baseStart = clock.now
        let base = try baseResult(weights: weights, statistics: statistics, recipe: recipe, layer: layer)
        let baseSeconds = baseStart.duration(to: clock.now).inSeconds
        let dsnotStart = clock.now
        var finalMask = base.mask
        var finalWeights = base.weights
        var record: DSnoT.LayerRecord? = nil
        if runsDSnoT, let settings = dsnotSettings {
            let s = try required(dsnotStatistics ?? statistics, layer: layer, method: "dsnot")
            let input = DSnoT.Input(
                dense: weights,
                current: base.weights,
                baseMask: base.mask,
                baseScore: base.weights == nil ? base.score : nil,
                scalerRow: s.scalerRow,
                sumRow: s.sumRow,
                variance: s.variance,
                hessian: s.hessian,
                pattern: recipe.pattern
            )
            let out = try DSnoT.refine(input, settings: settings, layer: layer)
            finalMask = out.mask
            if base.weights != nil { finalWeights = out.weights }
            record = out.record
        }
        let dsnotSeconds = runsDSnoT ? dsnotStart.duration(to: clock.now).inSeconds : 0
        var metrics = Self.metrics(
            dense: weights,
            base: (base.mask, base.weights),
            final: (finalMask, finalWeights),
            hessian: statistics?.hessian ?? metricHessian,
            metricRows: metricRows
        )
        metrics.dsnot = record
        metrics.skippedByDSnoT = dsnotSettings != nil && !runsDSnoT
        metrics.dampeningUsed = base.dampening
        return LayerPruningResult(
            mask: finalMask,
            weights: finalWeights,
            baseMask: base.mask,
            baseWeights: base.weights,
            metrics: metrics,
            baseSeconds: baseSeconds,
            dsnotSeconds: dsnotSeconds
        )
    }

    /// Checkpoints are untrusted: a NaN would silently reorder every ranking it touches.
    static func checkFinite(_ values: [Float], layer: String, tensor: String) throws {
        var bad = 0
        for v in values where !v.isFinite { bad += 1 }
        if bad > 0 { throw PruningError.nonFiniteValues(layer: layer, tensor: tensor, count: bad) }
    }

    static func required(_ statistics: LayerStatistics?, layer: String, method: String) throws -> LayerStatistics {
        guard let s = statistics else {
            throw PruningError.missingStatistic(layer: layer, statistic: "calibration statistics", method: method)
        }
        return s
    }

    /// The base method's mask, its new weights (SparseGPT), and the score DSnoT's N:M mode ranks
    /// kept weights by (Wanda `S` or `|W|`). Under DSnoT the magnitude base is per row (B§5.6 item 6).
    static func baseResult(weights: Matrix, statistics: LayerStatistics?, recipe: Recipe, layer: String) throws
        -> (mask: PruneMask, weights: Matrix?, score: Matrix?, dampening: Float?)
    {
        let pattern = recipe.pattern
        switch recipe.method {
        case .magnitude:
            let scope: Magnitude.Scope = recipe.dsnot == nil ? recipe.magnitudeScope : .row
            let mask = try Magnitude.mask(weights: weights, pattern: pattern, scope: scope, layer: layer)
            let score =
                recipe.dsnot == nil
                ? nil : Matrix(rows: weights.rows, columns: weights.columns, storage: weights.storage.map { abs($0) })
            return (mask, nil, score, nil)
        case .wanda:
            let s = try required(statistics, layer: layer, method: "wanda")
            let scores = Wanda.scores(weights: weights, scalerRow: s.scalerRow)
            return (Wanda.maskFromScores(scores, pattern: pattern), nil, scores, nil)
        case .sparsegpt:
            let s = try required(statistics, layer: layer, method: "sparsegpt")
            guard let h = s.hessian else {
                throw PruningError.missingStatistic(layer: layer, statistic: "hessian", method: "sparsegpt")
            }
            let r = try SparseGPT.prune(
                weights: weights,
                hessian: h,
                pattern: pattern,
                settings: recipe.sparseGPT,
                layer: layer
            )
            return (r.mask, r.weights, nil, r.dampeningUsed)
        }
    }

    /// Sparsity and, when a Hessian is at hand, the relative output error of the base and final results.
    static func metrics(
        dense: Matrix,
        base: (PruneMask, Matrix?),
        final: (PruneMask, Matrix?),
        hessian: Matrix?,
        metricRows: Int
    ) -> LayerMetrics {
        var perRow = (min: Int.max, max: 0)
        for r in 0..<final.0.rows {
            let n = final.0.prunedCount(row: r)
            perRow = (min(perRow.min, n), max(perRow.max, n))
        }
        var errors: [Double?] = [nil, nil]
        var sampled = 0
        if let h = hessian {
            // Without a refinement the final layer is the base one: measured once.
            let same = final.0 == base.0 && final.1 == base.1
            let candidates = (same ? [base] : [base, final]).map {
                ReconstructionError.Candidate(mask: $0.0, weights: $0.1)
            }
            let e = ReconstructionError.relative(dense: dense, candidates: candidates, hessian: h, maxRows: metricRows)
            errors = [e[0], e[same ? 0 : 1]]
            sampled = ReconstructionError.sampledRows(rows: dense.rows, maxRows: metricRows).count
        }
        return LayerMetrics(
            achievedSparsity: final.0.sparsity,
            prunedPerRowMin: perRow.min,
            prunedPerRowMax: perRow.max,
            baseSparsity: base.0.sparsity,
            baseRelativeError: errors[0],
            finalRelativeError: errors[1],
            errorRowsSampled: sampled,
            dsnot: nil,
            skippedByDSnoT: false,
            dampeningUsed: nil
        )
    }
}
