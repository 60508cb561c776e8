// SPDX-License-Identifier: Apache-2.0
// Reference: naive kernels, the algorithmic ground truth the BLAS paths are tested against.

/// Naive, obviously-correct kernels (llm.c's `matmul_forward_naive`). Slow; for tests only.
public enum Reference {
    /// `A · B` (or `A · Bᵀ`), accumulated in `Double`.
    public static func matmul(_ a: Matrix, _ b: Matrix, transposeB: Bool = false) -> Matrix {
        let n = transposeB ? b.rows : b.columns
        var c = Matrix(rows: a.rows, columns: n)
        for i in 0..<a.rows {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<a.columns {
                    let bv = transposeB ? b[j, p] : b[p, j]
                    sum += Double(a[i, p]) * Double(bv)
                }
                c[i, j] = Float(sum)
            }
        }
        return c
    }
}
