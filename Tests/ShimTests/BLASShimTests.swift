// SPDX-License-Identifier: Apache-2.0
// Smoke tests of the CBLAS shim: sgemm and LAPACK Cholesky from the system OpenBLAS.

import CBLAS
import Testing

@Suite struct BLASShimTests {
    /// Deterministic pseudo-random values in [-1, 1).
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)
        }
    }

    // Odd shapes on purpose: they exercise OpenBLAS's edge kernels, not only its main tiles.
    @Test(arguments: [(1, 1, 1), (17, 64, 48), (33, 130, 7), (129, 3, 65)])
    func sgemmMatchesNaiveProduct(_ shape: (Int, Int, Int)) {
        let (m, k, n) = shape
        let a = Self.values(m * k, seed: 1)
        let b = Self.values(k * n, seed: 2)
        var c = [Float](repeating: .nan, count: m * n)
        cblas_sgemm(
            CblasRowMajor,
            CblasNoTrans,
            CblasNoTrans,
            blasint(m),
            blasint(n),
            blasint(k),
            1,
            a,
            blasint(k),
            b,
            blasint(n),
            0,
            &c,
            blasint(n)
        )
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var exact = 0.0
                for p in 0..<k { exact += Double(a[i * k + p]) * Double(b[p * n + j]) }
                worst = max(worst, abs(Double(c[i * n + j]) - exact))
            }
        }
        // Tolerance: k products of values in [-1, 1), each rounded to Float: |error| ≤ k · 2⁻²³ · 2.
        #expect(worst <= Double(k) * 0x1p-22)
    }

    @Test func lapackCholeskyFactorsAndInverts() {
        // A = [[4, 2], [2, 3]] is SPD; its lower Cholesky factor is [[2, 0], [1, √2]].
        var a: [Float] = [4, 2, 2, 3]
        var n: blasint = 2
        var info: blasint = -1
        var uplo = CChar(UInt8(ascii: "L"))
        spotrf_(&uplo, &n, &a, &n, &info)
        #expect(info == 0)
        #expect(abs(a[0] - 2) < 1e-6 && abs(a[1] - 1) < 1e-6 && abs(a[3] - Float(2).squareRoot()) < 1e-6)
        spotri_(&uplo, &n, &a, &n, &info)
        #expect(info == 0)
        // A⁻¹ = 1/8 · [[3, −2], [−2, 4]]; column-major lower triangle holds a[0], a[1], a[3].
        #expect(abs(a[0] - 0.375) < 1e-6 && abs(a[1] + 0.25) < 1e-6 && abs(a[3] - 0.5) < 1e-6)
    }

    @Test func choleskyReportsNonPositiveDefinite() {
        var a: [Float] = [1, 2, 2, 1]  // eigenvalues 3 and −1
        var n: blasint = 2
        var info: blasint = 0
        var uplo = CChar(UInt8(ascii: "L"))
        spotrf_(&uplo, &n, &a, &n, &info)
        #expect(info > 0)
    }
}
