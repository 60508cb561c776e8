// SPDX-License-Identifier: Apache-2.0
// LayerPruner: one linear layer through a Recipe (base pruner, optional DSnoT, metrics). Pure and synchronous.
// Shapes: W (out, in); statistics over the layer's inputs (in); results in W's layout.

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
    public var metrics: LayerMetrics

    /// The sparse weights: `weights`, or `dense` under `mask`.
    public func sparseWeights(dense: Matrix) -> Matrix { weights ?? mask.applied(to: dense) }
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
    /// - Throws: `PruningError` (pattern vs width, missing or mis-shaped statistics, Cholesky failure).
    public static func prune(
        weights: Matrix, statistics: LayerStatistics?, recipe: Recipe, layer: String, metricRows: Int = 128
    ) throws -> LayerPruningResult {
        let c = weights.columns
        guard weights.rows > 0, c > 0 else { throw PruningError.emptyLayer(layer: layer, rows: weights.rows, columns: c) }
        try recipe.validate(layer: layer, columns: c)
        if let s = statistics, s.inputFeatures != c {
            throw PruningError.statisticShapeMismatch(layer: layer, statistic: "statistics", expected: c, got: s.inputFeatures)
        }
        let pattern = recipe.pattern
        let dsnotSettings = recipe.dsnot
        let runsDSnoT = dsnotSettings.map { !$0.skips(layer: layer) } ?? false
        func require() throws -> LayerStatistics {
            guard let s = statistics else {
                throw PruningError.missingStatistic(layer: layer, statistic: "calibration statistics", method: recipe.method.rawValue)
            }
            return s
        }
        // 1. Base method.
        var baseMask: PruneMask
        var baseWeights: Matrix? = nil
        var baseScore: Matrix? = nil
        var dampening: Float? = nil
        switch recipe.method {
        case .magnitude:
            let scope: Magnitude.Scope = dsnotSettings == nil ? recipe.magnitudeScope : .row
            baseMask = try Magnitude.mask(weights: weights, pattern: pattern, scope: scope, layer: layer)
            baseScore = Matrix(rows: weights.rows, columns: c, storage: weights.storage.map { abs($0) })
        case .wanda:
            let s = try require()
            let scores = Wanda.scores(weights: weights, scalerRow: s.scalerRow)
            baseMask = Wanda.maskFromScores(scores, pattern: pattern)
            baseScore = scores
        case .sparsegpt:
            let s = try require()
            guard let h = s.hessian else {
                throw PruningError.missingStatistic(layer: layer, statistic: "hessian", method: "sparsegpt")
            }
            let r = try SparseGPT.prune(weights: weights, hessian: h, pattern: pattern, settings: recipe.sparseGPT, layer: layer)
            baseMask = r.mask
            baseWeights = r.weights
            dampening = r.dampeningUsed
        }
        // 2. DSnoT.
        var finalMask = baseMask
        var finalWeights = baseWeights
        var record: DSnoT.LayerRecord? = nil
        if runsDSnoT, let settings = dsnotSettings {
            let s = try require()
            let input = DSnoT.Input(
                dense: weights, current: baseWeights, baseMask: baseMask, baseScore: baseWeights == nil ? baseScore : nil,
                scalerRow: s.scalerRow, sumRow: s.sumRow, variance: s.variance, hessian: s.hessian, pattern: pattern)
            let out = try DSnoT.refine(input, settings: settings, layer: layer)
            finalMask = out.mask
            if baseWeights != nil { finalWeights = out.weights }
            record = out.record
        }
        // 3. Metrics.
        var perRow = (min: Int.max, max: 0)
        for r in 0..<finalMask.rows {
            let n = finalMask.prunedCount(row: r)
            perRow = (min(perRow.min, n), max(perRow.max, n))
        }
        var errors: [Double?] = [nil, nil]
        var sampled = 0
        if let h = statistics?.hessian {
            let base = baseWeights ?? baseMask.applied(to: weights)
            let final = finalWeights ?? finalMask.applied(to: weights)
            let e = ReconstructionError.relative(dense: weights, candidates: [base, final], hessian: h, maxRows: metricRows)
            errors = [e[0], e[1]]
            sampled = ReconstructionError.sampledRows(rows: weights.rows, maxRows: metricRows).count
        }
        let metrics = LayerMetrics(
            achievedSparsity: finalMask.sparsity, prunedPerRowMin: perRow.min, prunedPerRowMax: perRow.max,
            baseSparsity: baseMask.sparsity, baseRelativeError: errors[0], finalRelativeError: errors[1],
            errorRowsSampled: sampled, dsnot: record, skippedByDSnoT: dsnotSettings != nil && !runsDSnoT,
            dampeningUsed: dampening)
        return LayerPruningResult(mask: finalMask, weights: finalWeights, baseMask: baseMask, metrics: metrics)
    }
}
