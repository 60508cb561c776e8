// SPDX-License-Identifier: Apache-2.0
// DSnoT+Refine: the row-parallel driver of the mask refinement (B§5.2, B§5.3 with the guarded rules of B§5.7).
// Shapes: dense W and current Wc (out, in); mask (out, in); μ̃ = sumRow, v = variance, scalerRow (in); H (in, in).

import DSnoTSupport

#if canImport(Glibc)
    import Glibc
#endif

extension DSnoT {
    /// One layer's data for `refine`.
    public struct Input: Sendable {
        /// Dense weights `W (out, in)`.
        public var dense: Matrix
        /// The base method's weights on kept entries (`Ws` of SparseGPT for D9), or `nil` = `dense`.
        public var current: Matrix?
        /// The base mask (1 = pruned).
        public var baseMask: PruneMask
        /// N:M only: the base score ranking kept weights inside a group (Wanda `S` or `|W|`);
        /// `nil` = the Wanda score of the current weights.
        public var baseScore: Matrix?
        /// `(1/N) Σ x²` (ranks unstructured pruning candidates by Wanda).
        public var scalerRow: [Float]
        /// `μ̃ = (1/N) Σ x`.
        public var sumRow: [Float]
        /// Mean per-sequence variance `v`.
        public var variance: [Float]
        /// `H ∝ Σ x xᵀ (in, in)`, needed for `accept: .trueError`.
        public var hessian: Matrix?
        /// The pattern the base mask follows.
        public var pattern: SparsityPattern

        public init(
            dense: Matrix,
            current: Matrix? = nil,
            baseMask: PruneMask,
            baseScore: Matrix? = nil,
            scalerRow: [Float],
            sumRow: [Float],
            variance: [Float],
            hessian: Matrix? = nil,
            pattern: SparsityPattern
        ) {
            self.dense = dense
            self.current = current
            self.baseMask = baseMask
            self.baseScore = baseScore
            self.scalerRow = scalerRow
            self.sumRow = sumRow
            self.variance = variance
            self.hessian = hessian
            self.pattern = pattern
        }
    }

    /// The refined layer.
    public struct Output: Sendable {
        /// Final mask (1 = pruned).
        public var mask: PruneMask
        /// D9 only (`current` given): kept entries from `current`, regrown entries back at their
        /// dense value, pruned entries 0. `nil` when the weights are the dense ones under `mask`.
        public var weights: Matrix?
        public var record: LayerRecord
    }

    /// Refines `input.baseMask` row by row (rows in parallel; deterministic).
    /// - Throws: `PruningError` for mismatched shapes, a missing Hessian with `.trueError`, or bad settings.
    public static func refine(_ input: Input, settings: Settings, layer: String = "") throws -> Output {
        try settings.validate()
        let rows = input.dense.rows
        let c = input.dense.columns
        try input.pattern.validate(columns: c, layer: layer)
        for (name, v) in [("scaler_row", input.scalerRow), ("sum_row", input.sumRow), ("variance", input.variance)]
        where v.count != c {
            throw PruningError.statisticShapeMismatch(layer: layer, statistic: name, expected: c, got: v.count)
        }
        guard input.baseMask.rows == rows, input.baseMask.columns == c else {
            throw PruningError.statisticShapeMismatch(
                layer: layer,
                statistic: "base_mask",
                expected: rows * c,
                got: input.baseMask.count
            )
        }
        if let cur = input.current, cur.rows != rows || cur.columns != c {
            throw PruningError.statisticShapeMismatch(
                layer: layer,
                statistic: "current_weights",
                expected: rows * c,
                got: cur.count
            )
        }
        if settings.accept == .trueError {
            guard let h = input.hessian else {
                throw PruningError.missingStatistic(
                    layer: layer,
                    statistic: "hessian",
                    method: "dsnot accept=true-error"
                )
            }
            guard h.rows == c, h.columns == c else {
                throw PruningError.statisticShapeMismatch(
                    layer: layer,
                    statistic: "hessian",
                    expected: c * c,
                    got: h.count
                )
            }
        }
        let current = input.current ?? input.dense
        let wanda = Wanda.scores(weights: current, scalerRow: input.scalerRow)
        let baseScore = input.baseScore ?? wanda
        // v^γ with the zero-variance guard of B§5.7 (a zero variance uses 1e-12).
        let divisor: [Float] = input.variance.map { v in
            let guarded: Float = v == 0 ? 1e-12 : v
            if settings.variancePower == 0 { return 1 }
            return settings.variancePower == 1 ? guarded : Float(pow(Double(guarded), settings.variancePower))
        }
        let kernel = RowKernel(
            columns: c,
            cycles: settings.maxCycles.cycles(columns: c),
            threshold: Float(settings.updateThreshold),
            sameSign: settings.sameSign,
            group: input.pattern.group,
            divide: settings.variancePower != 0
        )
        var mask = input.baseMask
        let results = UnsafeMutablePointer<RowKernel.RowResult>.allocate(capacity: max(1, rows))
        defer { results.deallocate() }
        let hessian = settings.accept == .trueError ? input.hessian?.storage : nil
        // Read-only layer data, in `RowKernel.Shared` order; the Hessian last, when the rule needs it.
        let operands = [input.dense.storage, current.storage, wanda.storage, baseScore.storage, input.sumRow, divisor]
        withBaseAddresses(operands + (hessian.map { [$0] } ?? [])) { p in
            let shared = RowKernel.Shared(
                dense: p[0],
                current: p[1],
                wanda: p[2],
                base: p[3],
                mu: p[4],
                divisor: p[5],
                hessian: p.count > 6 ? p[6] : nil
            )
            mask.bytes.withUnsafeMutableBufferPointer { mb in
                let mBase = mb.baseAddress!
                // Rows are independent: the result does not depend on the split.
                Parallel.forEachChunk(0..<rows, units: rows * c) { range in
                    let scratch = RowKernel.Scratch(columns: c, cycles: kernel.cycles)
                    for r in range {
                        results[r] = kernel.run(row: r, shared: shared, mask: mBase + r * c, scratch: scratch)
                    }
                }
            }
        }
        var weightsOut: Matrix? = nil
        if let cur = input.current {
            // D9: pruned → 0, regrown (pruned in the base, kept now) → dense value, else the base method's value.
            var w = cur
            for i in 0..<w.count {
                if mask.bytes[i] != 0 {
                    w.storage[i] = 0
                } else if input.baseMask.bytes[i] != 0 {
                    w.storage[i] = input.dense.storage[i]
                }
            }
            weightsOut = w
        }
        let buffer = UnsafeBufferPointer(start: results, count: rows)
        let record = LayerRecord(
            cycles: kernel.cycles,
            swapsPerRow: buffer.map { Int32($0.swaps) },
            rowErrorBefore: buffer.map { Float($0.errorBefore) },
            rowErrorAfter: buffer.map { Float($0.errorAfter) },
            errorBefore: buffer.reduce(0) { $0 + $1.errorBefore },
            errorAfter: buffer.reduce(0) { $0 + $1.errorAfter },
            rowsRejected: buffer.reduce(0) { $0 + ($1.rejected ? 1 : 0) }
        )
        return Output(mask: mask, weights: weightsOut, record: record)
    }
}
