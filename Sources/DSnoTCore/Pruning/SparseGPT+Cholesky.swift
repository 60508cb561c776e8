// SPDX-License-Identifier: Apache-2.0
// SparseGPT+Cholesky: the upper Cholesky factor of the inverse dampened Hessian, via LAPACK spotrf/spotri.
// Shapes: H (in, in) row-major, symmetric; the result U (in, in) row-major, upper triangular, H⁻¹ = UᵀU.

import CBLAS

extension SparseGPT {
    /// `U` with `(H + λI)⁻¹ = UᵀU`, as `fasterprune` computes it (`cholesky` → `cholesky_inverse` →
    /// `cholesky(upper=True)`), or `nil` with the failing LAPACK `info` when `H + λI` is not
    /// positive definite in fp32.
    ///
    /// LAPACK is column-major. A row-major symmetric matrix is the same matrix in column-major, and
    /// a column-major lower factor `L` read row-major is `Lᵀ`, the upper factor we want.
    ///
    /// OpenBLAS factors single- and multi-threaded with different blockings (different last bits), so
    /// the factorisations always run single-threaded: the result does not depend on the core count or
    /// on what else the process is doing (they are `O(n³/3)`, a few milliseconds at n = 4096).
    static func inverseCholeskyUpper(hessian: [Float], size n: Int, damp: Float) -> (factor: [Float]?, info: Int) {
        Linalg.withSingleThreadedBLAS { factor(hessian: hessian, size: n, damp: damp) }
    }

    private static func factor(hessian: [Float], size n: Int, damp: Float) -> (factor: [Float]?, info: Int) {
        var a = hessian
        for j in 0..<n { a[j * n + j] += damp }
        var info: blasint = 0
        var order = blasint(n)
        var lda = blasint(max(1, n))
        var lower = Int8(UInt8(ascii: "L"))
        a.withUnsafeMutableBufferPointer { p in spotrf_(&lower, &order, p.baseAddress, &lda, &info) }
        guard info == 0 else { return (nil, Int(info)) }
        a.withUnsafeMutableBufferPointer { p in spotri_(&lower, &order, p.baseAddress, &lda, &info) }
        guard info == 0 else { return (nil, Int(info)) }
        // Column-major lower of the inverse = row-major upper; mirror it into the row-major lower.
        a.withUnsafeMutableBufferPointer { Linalg.mirrorUpperTriangle($0, n: n) }
        a.withUnsafeMutableBufferPointer { p in spotrf_(&lower, &order, p.baseAddress, &lda, &info) }
        guard info == 0 else { return (nil, Int(info)) }
        // Row-major upper now holds U; clear the row-major strict lower (left-over input).
        for r in 0..<n {
            for c in 0..<r { a[r * n + c] = 0 }
        }
        guard a.allSatisfy({ $0.isFinite }) else { return (nil, -1) }
        return (a, 0)
    }
}

extension SparseGPT {
    /// The matrix `fasterprune`'s column loop uses: `U` with `(H + λI)⁻¹ = UᵀU`, `(in, in)` upper
    /// triangular, or `nil` when `H + λI` is not positive definite in fp32 (no retries here).
    /// - Parameters:
    ///   - hessian: `H (in, in)`, symmetric.
    ///   - damp: the absolute dampening `λ` added to the diagonal.
    public static func inverseCholeskyFactor(hessian: Matrix, damp: Float) -> Matrix? {
        precondition(hessian.rows == hessian.columns, "inverseCholeskyFactor: H must be square")
        guard let u = inverseCholeskyUpper(hessian: hessian.storage, size: hessian.rows, damp: damp).factor else {
            return nil
        }
        return Matrix(rows: hessian.rows, columns: hessian.rows, storage: u)
    }
}
