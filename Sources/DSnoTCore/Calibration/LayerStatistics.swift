// SPDX-License-Identifier: Apache-2.0
// LayerStatistics: the per-input-feature calibration statistics of one linear layer (ALGORITHM.md D1, B§3).
// Shapes: one call receives X (tokens, in) for one calibration sequence; every statistic is (in).

import DSnoTSupport

/// Calibration statistics of one linear layer, accumulated one sequence at a time.
///
/// With `N` sequences of `L` tokens (`x_{n,t} ∈ R^{C_in}`), exactly as the reference wrappers:
/// * `scalerRow_j = (1/N) Σ_{n,t} x²` (Wanda, DSnoT),
/// * `sumRow_j = (1/N) Σ_{n,t} x = L · mean` (DSnoT's `sum_metric_row`; `update_threshold` is in these units),
/// * `variance_j` = the token-weighted mean of each sequence's population variance (DSnoT's `var`),
/// * optionally `hessian = (2/N) Σ x xᵀ` (SparseGPT; also DSnoT's `accept: .trueError`).
///
/// The sums are kept in `Double` (cheap: `C_in` entries); the Hessian is summed in `Float`: the upper
/// triangle of `XᵀX` per sequence, in row panels of fixed height (`ssyrk` on the diagonal block, `sgemm`
/// to its right) spread over the cores, mirrored when read; `C_in²` floats, so it is only kept when
/// asked for.
///
/// ```swift
/// var stats = LayerStatistics(inputFeatures: 4096, accumulateHessian: false)
/// stats.accumulate(sequence: x)        // x: Matrix (tokens, 4096), once per calibration sequence
/// let s = stats.scalerRow              // [Float] (4096)
/// ```
public struct LayerStatistics: Sendable {
    /// Input width `C_in`.
    public let inputFeatures: Int
    /// Number of sequences accumulated (`N`).
    public private(set) var sequenceCount: Int = 0
    /// Number of tokens accumulated over all sequences (`N · L` for equal lengths).
    public private(set) var tokenCount: Int = 0

    private var sumOfSquares: [Double]
    private var sum: [Double]
    private var weightedVariance: [Double]  // Σ_n L_n · Var_t(x_n)
    private var hessianSum: [Float]?  // Σ x xᵀ, row-major (in, in); already final when `hessianIsFinal`
    private var hessianIsFinal = false

    /// Empty statistics for a layer with `inputFeatures` inputs.
    /// - Parameter accumulateHessian: also accumulate `Σ x xᵀ` (needs `inputFeatures²` floats).
    public init(inputFeatures: Int, accumulateHessian: Bool) {
        precondition(inputFeatures >= 0, "LayerStatistics: negative width")
        self.inputFeatures = inputFeatures
        sumOfSquares = [Double](repeating: 0, count: inputFeatures)
        sum = sumOfSquares
        weightedVariance = sumOfSquares
        hessianSum = accumulateHessian ? [Float](repeating: 0, count: inputFeatures * inputFeatures) : nil
    }

    /// Empty statistics holding exactly what `recipe` needs (the Hessian only for SparseGPT or
    /// DSnoT's true-error acceptance).
    public init(inputFeatures: Int, recipe: Recipe) {
        self.init(inputFeatures: inputFeatures, accumulateHessian: recipe.needsHessian)
    }

    /// Statistics from stored values (golden files, resumed jobs). `hessian` is the final
    /// `(2/N) Σ x xᵀ`, row-major `(in, in)`.
    /// - Throws: `PruningError.statisticShapeMismatch` when a length differs from `scalerRow.count`.
    public init(
        scalerRow: [Float],
        sumRow: [Float],
        variance: [Float],
        hessian: [Float]?,
        sequenceCount: Int,
        tokenCount: Int
    ) throws {
        let c = scalerRow.count
        for (name, n) in [("sum_row", sumRow.count), ("variance", variance.count)] where n != c {
            throw PruningError.statisticShapeMismatch(layer: "(stored)", statistic: name, expected: c, got: n)
        }
        if let h = hessian, h.count != c * c {
            throw PruningError.statisticShapeMismatch(
                layer: "(stored)",
                statistic: "hessian",
                expected: c * c,
                got: h.count
            )
        }
        guard sequenceCount > 0, tokenCount >= sequenceCount else {
            throw PruningError.invalidSetting(
                name: "sequence_count/token_count",
                expected: "N > 0 and N·L ≥ N",
                got: "\(sequenceCount)/\(tokenCount)"
            )
        }
        inputFeatures = c
        self.sequenceCount = sequenceCount
        self.tokenCount = tokenCount
        let n = Double(sequenceCount)
        sumOfSquares = scalerRow.map { Double($0) * n }
        sum = sumRow.map { Double($0) * n }
        weightedVariance = variance.map { Double($0) * Double(tokenCount) }
        hessianSum = hessian
        hessianIsFinal = true
    }

    /// Whether the Hessian is being accumulated.
    public var hasHessian: Bool { hessianSum != nil }

    /// Tokens per sequence `L` (the mean when lengths differ; 0 before any sequence).
    public var tokensPerSequence: Int { sequenceCount == 0 ? 0 : tokenCount / sequenceCount }

    /// One sequence's contribution to the per-feature sums: `Σx`, `Σx²` and `L · Var` in `Double`.
    /// Computed from the sequence alone (so on any thread); `accumulate(_:of:)` in sequence order then
    /// gives exactly what `accumulate(sequence:)` in that order gives.
    public struct SequenceSums: Sendable, Equatable {
        public let inputFeatures: Int
        public let tokens: Int
        fileprivate var sum: [Double]
        fileprivate var sumOfSquares: [Double]
        fileprivate var weightedVariance: [Double]  // L · Var_t

        /// The sums of `sequence` `(tokens, inputFeatures)`. The features are split over the cores
        /// (inline on a `Parallel.forEach` worker); each feature's sums keep their order.
        public init(sequence: Matrix) {
            inputFeatures = sequence.columns
            tokens = sequence.rows
            let c = sequence.columns
            // Σx, Σx² and L · Var side by side in one buffer: (3, c).
            var sums = [Double](repeating: 0, count: 3 * c)
            let tokens = tokens
            sequence.storage.withUnsafeBufferPointer { values in
                sums.withUnsafeMutableBufferPointer { sums in
                    guard tokens > 0 else { return }
                    Parallel.forEachChunk(0..<c, units: 4 * tokens * c) { columns in
                        Self.sums(
                            values.baseAddress!,
                            tokens: tokens,
                            width: c,
                            columns: columns,
                            sum: sums.baseAddress!,
                            sumOfSquares: sums.baseAddress! + c,
                            weightedVariance: sums.baseAddress! + 2 * c
                        )
                    }
                }
            }
            sum = Array(sums[0..<c])
            sumOfSquares = Array(sums[c..<(2 * c)])
            weightedVariance = Array(sums[(2 * c)...])
        }

        /// Σx and Σx² per feature in `columns` (Double), then the population variance around this
        /// sequence's mean (times `tokens`): two passes, centred for accuracy.
        private static func sums(
            _ x: UnsafePointer<Float>,
            tokens: Int,
            width c: Int,
            columns: Range<Int>,
            sum: UnsafeMutablePointer<Double>,
            sumOfSquares: UnsafeMutablePointer<Double>,
            weightedVariance: UnsafeMutablePointer<Double>
        ) {
            let count = columns.count
            guard count > 0 else { return }
            let first = columns.lowerBound
            let seqSum = sum + first
            let seqSq = sumOfSquares + first
            let seqVar = weightedVariance + first
            for t in 0..<tokens {
                let row = x + t * c + first
                for j in 0..<count {
                    let v = Double(row[j])
                    seqSum[j] += v
                    seqSq[j] += v * v
                }
            }
            let mean = UnsafeMutablePointer<Double>.allocate(capacity: count)
            defer { mean.deallocate() }
            let invL = 1.0 / Double(tokens)
            for j in 0..<count { mean[j] = seqSum[j] * invL }
            for t in 0..<tokens {
                let row = x + t * c + first
                for j in 0..<count {
                    let d = Double(row[j]) - mean[j]
                    seqVar[j] += d * d
                }
            }
        }
    }

    /// Adds one calibration sequence: its sums and, when kept, its `XᵀX`.
    /// - Parameter sequence: `(tokens, inputFeatures)`, the layer's inputs for that sequence.
    public mutating func accumulate(sequence: Matrix) {
        accumulate(SequenceSums(sequence: sequence), of: sequence)
    }

    /// Adds one calibration sequence whose sums were computed elsewhere (e.g. on the thread that ran
    /// its forward pass): the sums and, when kept, its `XᵀX`.
    /// - Precondition: `sums` are `SequenceSums(sequence: sequence)`.
    public mutating func accumulate(_ sums: SequenceSums, of sequence: Matrix) {
        accumulate([(sums, sequence)])
    }

    /// Adds several calibration sequences, in order: their sums and, when kept, their `XᵀX`. The Gram
    /// work is split into row panels of the upper triangle (`gramPanelRows` rows each, a fixed height,
    /// so the arithmetic does not depend on the core count) that run concurrently; each panel adds the
    /// sequences in the order given, so the result is the same as adding them one call at a time.
    /// - Precondition: each `sums` is `SequenceSums(sequence:)` of its `input`.
    public mutating func accumulate(_ sequences: [(sums: SequenceSums, input: Matrix)]) {
        for s in sequences { add(s.sums) }
        let inputs = sequences.map(\.input).filter { $0.rows > 0 }
        guard hessianSum != nil, !inputs.isEmpty else { return }
        precondition(!hessianIsFinal, "LayerStatistics: stored statistics cannot accumulate more data")
        for x in inputs {
            precondition(
                x.columns == inputFeatures,
                "LayerStatistics: \(x.columns) columns, expected \(inputFeatures)"
            )
        }
        let c = inputFeatures
        let panels = stride(from: 0, to: c, by: Self.gramPanelRows).map { $0..<min(c, $0 + Self.gramPanelRows) }
        hessianSum!.withUnsafeMutableBufferPointer { h in
            let gram = h.baseAddress!
            Parallel.forEach(0..<panels.count) { p in
                for x in inputs {
                    x.storage.withUnsafeBufferPointer {
                        Self.addGramPanel(rows: panels[p], of: $0.baseAddress!, tokens: x.rows, width: c, into: gram)
                    }
                }
            }
        }
    }

    /// Rows of the upper-triangle panels the Gram accumulation is split into.
    static let gramPanelRows = 256

    /// Adds rows `rows` of the upper triangle of `XᵀX` into the row-major `(c, c)` `gram`: the diagonal
    /// block by `ssyrk`, the rectangle to its right by `sgemm`.
    /// - Parameter x: `(tokens, c)` row-major.
    private static func addGramPanel(
        rows: Range<Int>,
        of x: UnsafePointer<Float>,
        tokens: Int,
        width c: Int,
        into gram: UnsafeMutablePointer<Float>
    ) {
        let (r0, r1) = (rows.lowerBound, rows.upperBound)
        Linalg.syrkAccumulate(n: rows.count, k: tokens, a: x + r0, lda: c, c: gram + r0 * c + r0, ldc: c)
        Linalg.gemm(
            m: rows.count,
            n: c - r1,
            k: tokens,
            a: x + r0,
            lda: c,
            transposeA: true,
            b: x + r1,
            ldb: c,
            beta: 1,
            c: gram + r0 * c + r1,
            ldc: c
        )
    }

    private mutating func add(_ sums: SequenceSums) {
        precondition(!hessianIsFinal, "LayerStatistics: stored statistics cannot accumulate more data")
        precondition(
            sums.inputFeatures == inputFeatures,
            "LayerStatistics: \(sums.inputFeatures) columns, expected \(inputFeatures)"
        )
        guard sums.tokens > 0 else { return }
        for j in 0..<inputFeatures {
            sum[j] += sums.sum[j]
            sumOfSquares[j] += sums.sumOfSquares[j]
            weightedVariance[j] += sums.weightedVariance[j]
        }
        sequenceCount += 1
        tokenCount += sums.tokens
    }

    /// `(1/N) Σ x²` per feature.
    public var scalerRow: [Float] { perSequence(sumOfSquares) }

    /// `(1/N) Σ x` per feature (`L` times the token mean).
    public var sumRow: [Float] { perSequence(sum) }

    /// The token-weighted mean of the per-sequence population variances.
    public var variance: [Float] {
        guard tokenCount > 0 else { return [Float](repeating: 0, count: inputFeatures) }
        let inv = 1.0 / Double(tokenCount)
        return weightedVariance.map { Float($0 * inv) }
    }

    /// Token mean per feature (recorded for reports; no algorithm uses it).
    public var mean: [Float] {
        guard tokenCount > 0 else { return [Float](repeating: 0, count: inputFeatures) }
        let inv = 1.0 / Double(tokenCount)
        return sum.map { Float($0 * inv) }
    }

    /// Turns the running Gram sum into the final `hessian`, in place, once accumulation is over: every
    /// later read of `hessian` (one per layer sharing these statistics) then wraps the same storage
    /// instead of scaling and mirroring a copy of `C_in²` floats (485 MB at `C_in = 11008`). The values
    /// are exactly what `hessian` computed before. Accumulating afterwards is a programming error, as
    /// for stored statistics.
    public mutating func finishHessian() {
        guard !hessianIsFinal, var h = hessianSum else { return }
        hessianSum = nil  // `h` is then the storage's only reference: finished in place, not copied
        finish(&h)
        hessianSum = h
        hessianIsFinal = true
    }

    /// SparseGPT's `H = (2/N) Σ x xᵀ`, `(in, in)`, or `nil` when not accumulated.
    public var hessian: Matrix? {
        guard var h = hessianSum else { return nil }
        if !hessianIsFinal { finish(&h) }  // on a copy: the running sum stays as it is
        return Matrix(rows: inputFeatures, columns: inputFeatures, storage: h)
    }

    /// The running sum, which holds the upper triangle only (syrk), made the Hessian: scaled by 2/N,
    /// lower triangle mirrored.
    private func finish(_ h: inout [Float]) {
        let scale = sequenceCount == 0 ? 1 : Float(2.0 / Double(sequenceCount))
        h.withUnsafeMutableBufferPointer { full in
            for i in full.indices { full[i] *= scale }
            Linalg.mirrorUpperTriangle(full, n: inputFeatures)
        }
    }

    private func perSequence(_ v: [Double]) -> [Float] {
        guard sequenceCount > 0 else { return [Float](repeating: 0, count: inputFeatures) }
        let inv = 1.0 / Double(sequenceCount)
        return v.map { Float($0 * inv) }
    }
}
