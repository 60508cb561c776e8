// SPDX-License-Identifier: Apache-2.0
// ReconstructionError: the true output error ‖(W − Ŵ)X‖²_F / ‖WX‖²_F of a pruned layer, from the Gram matrix.
// Shapes: W, Ŵ (out, in); H ∝ Σ x xᵀ (in, in). ‖ΔW X‖²_F = tr(ΔW (XXᵀ) ΔWᵀ), so the scale of H cancels.

/// Relative output reconstruction error of pruned layers, computed as `Σ_r Δ_r H Δ_rᵀ / Σ_r W_r H W_rᵀ`
/// over a deterministic, evenly spaced subset of at most `maxRows` output rows (all rows when the
/// layer has fewer). Cost: one `sgemm` of `(rows·(1 + k), in) × (in, in)` for `k` candidates.
public enum ReconstructionError {
    /// The rows used for a layer with `rows` outputs.
    public static func sampledRows(rows: Int, maxRows: Int) -> [Int] {
        guard rows > maxRows, maxRows > 0 else { return Array(0..<rows) }
        return (0..<maxRows).map { $0 * rows / maxRows }
    }

    /// A candidate `Ŵ`: `weights` when the pruner changed values (SparseGPT), else the dense `W` under `mask`.
    public struct Candidate {
        public var mask: PruneMask
        public var weights: Matrix?

        public init(mask: PruneMask, weights: Matrix?) {
            self.mask = mask
            self.weights = weights
        }
    }

    /// Relative errors of each candidate `Ŵ` against the dense `W`. Only the sampled rows of a masked
    /// candidate are formed (`Δ_r = W_r` where pruned, `0` where kept: what `W_r − Ŵ_r` gives exactly),
    /// never the whole `Ŵ`.
    /// - Parameters:
    ///   - dense: `W (out, in)`.
    ///   - candidates: the sparse layers to measure, each of `W`'s shape.
    ///   - hessian: `H ∝ Σ x xᵀ (in, in)`.
    ///   - maxRows: row sample size.
    /// - Returns: one relative error per candidate (0 when `W H Wᵀ` is 0).
    public static func relative(dense: Matrix, candidates: [Candidate], hessian: Matrix, maxRows: Int = 128)
        -> [Double]
    {
        let c = dense.columns
        precondition(hessian.rows == c && hessian.columns == c, "ReconstructionError: H shape differs from C_in")
        for candidate in candidates {
            precondition(
                candidate.mask.rows == dense.rows && candidate.mask.columns == c
                    && candidate.weights.map { $0.rows == dense.rows && $0.columns == c } ?? true,
                "ReconstructionError: candidate shape differs"
            )
        }
        let rows = sampledRows(rows: dense.rows, maxRows: maxRows)
        let blocks = 1 + candidates.count
        // Stack W_S and every Δ_S = W_S − Ŵ_S: ((1 + k)·|S|, in).
        var stacked = Matrix(rows: blocks * rows.count, columns: c)
        for (i, r) in rows.enumerated() {
            for j in 0..<c { stacked[i, j] = dense[r, j] }
            for (k, candidate) in candidates.enumerated() {
                let row = (k + 1) * rows.count + i
                if let weights = candidate.weights {
                    for j in 0..<c { stacked[row, j] = dense[r, j] - weights[r, j] }
                } else {
                    for j in 0..<c where candidate.mask[r, j] { stacked[row, j] = dense[r, j] }
                }
            }
        }
        let product = Linalg.matmul(stacked, hessian)  // ((1 + k)·|S|, in)
        var quad = [Double](repeating: 0, count: blocks)
        for b in 0..<blocks {
            for i in 0..<rows.count {
                let row = b * rows.count + i
                var s = 0.0
                for j in 0..<c { s += Double(product[row, j]) * Double(stacked[row, j]) }
                quad[b] += s
            }
        }
        let denominator = quad[0]
        return (1..<blocks).map { denominator == 0 ? 0 : quad[$0] / denominator }
    }
}
