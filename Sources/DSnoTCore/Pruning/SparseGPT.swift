// SPDX-License-Identifier: Apache-2.0
// SparseGPT (Frantar & Alistarh, 2023; ALGORITHM.md D6, B§4.3); reference IST-DASLab/sparsegpt sparsegpt.py fasterprune.
// Shapes: W (out, in), H (in, in), U = chol_upper(H⁻¹) (in, in); blocks of `blockSize` input columns.

/// SparseGPT: mask selection plus the OBS update of the surviving weights, block by block.
///
/// ```swift
/// let result = try SparseGPT.prune(weights: w, hessian: stats.hessian!, pattern: .unstructured(0.5))
/// // result.weights: pruned entries exactly 0, the others updated (round back to the checkpoint dtype)
/// ```
public enum SparseGPT {
    /// The knobs of `fasterprune` plus dsnot's dampening retries.
    public struct Settings: Sendable, Equatable, Hashable, Codable {
        /// Columns per block (reference 128).
        public var blockSize: Int = 128
        /// Relative dampening `percdamp`: `λ = percdamp · mean(diag H)` (reference 0.01).
        public var dampening: Float = 0.01
        /// Retries with ten times the dampening each when the Cholesky factorisation fails.
        public var maxRetries: Int = 3
        public init(blockSize: Int = 128, dampening: Float = 0.01, maxRetries: Int = 3) {
            self.blockSize = blockSize
            self.dampening = dampening
            self.maxRetries = maxRetries
        }

        enum CodingKeys: String, CodingKey {
            case blockSize = "block_size"
            case dampening
            case maxRetries = "max_retries"
        }
    }

    /// The outcome of one layer.
    public struct Result: Sendable {
        /// 1 = pruned (dead input columns included).
        public var mask: PruneMask
        /// Updated weights, `(out, in)`: pruned entries 0.
        public var weights: Matrix
        /// The relative dampening that succeeded (`settings.dampening · 10^retries`).
        public var dampeningUsed: Float
        /// Input columns with `H_jj = 0`, zeroed outright.
        public var deadColumns: [Int]
    }

    /// Prunes one layer.
    /// - Parameters:
    ///   - weights: `W (out, in)` in fp32.
    ///   - hessian: `H = (2/N) Σ x xᵀ`, `(in, in)`.
    ///   - pattern: unstructured (threshold per block over all rows, `≤`, as the reference) or N:M.
    /// - Throws: `PruningError.choleskyFailed` after `maxRetries` retries; pattern/shape errors.
    public static func prune(
        weights: Matrix,
        hessian: Matrix,
        pattern: SparsityPattern,
        settings: Settings = Settings(),
        layer: String = ""
    ) throws -> Result {
        let rows = weights.rows
        let n = weights.columns
        guard rows > 0, n > 0 else { throw PruningError.emptyLayer(layer: layer, rows: rows, columns: n) }
        try pattern.validate(columns: n, layer: layer)
        guard hessian.rows == n, hessian.columns == n else {
            throw PruningError.statisticShapeMismatch(
                layer: layer,
                statistic: "hessian",
                expected: n * n,
                got: hessian.count
            )
        }
        guard settings.blockSize > 0 else {
            throw PruningError.invalidSetting(name: "block_size", expected: "> 0", got: "\(settings.blockSize)")
        }
        var w = weights
        var h = hessian.storage
        // Dead inputs: H_jj = 0 → H_jj = 1 and W[:, j] = 0.
        var dead: [Int] = []
        for j in 0..<n where h[j * n + j] == 0 {
            dead.append(j)
            h[j * n + j] = 1
            for r in 0..<rows { w[r, j] = 0 }
        }
        var diagMean = 0.0
        for j in 0..<n { diagMean += Double(h[j * n + j]) }
        diagMean /= Double(n)
        var relative = settings.dampening
        var attempt = 0
        var factor: [Float]? = nil
        var lastInfo = 0
        while true {
            let result = inverseCholeskyUpper(hessian: h, size: n, damp: relative * Float(diagMean))
            if let f = result.factor {
                factor = f
                break
            }
            lastInfo = result.info
            guard attempt < settings.maxRetries else {
                throw PruningError.choleskyFailed(
                    layer: layer,
                    attempts: attempt + 1,
                    lastDampening: relative,
                    info: lastInfo
                )
            }
            attempt += 1
            relative *= 10
        }
        var mask = PruneMask(rows: rows, columns: n)
        pruneBlocks(weights: &w, mask: &mask, factor: factor ?? [], pattern: pattern, blockSize: settings.blockSize)
        for j in dead { for r in 0..<rows { mask[r, j] = true } }
        return Result(mask: mask, weights: w, dampeningUsed: relative, deadColumns: dead)
    }
}
