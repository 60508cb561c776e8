// SPDX-License-Identifier: Apache-2.0
// Linalg tests: the BLAS matmul against the naive reference on odd shapes.

import DSnoTCore
import Testing

@Suite struct LinalgTests {
    static func random(_ rows: Int, _ columns: Int, seed: UInt64) -> Matrix {
        var rng = SplitMix64(seed: seed)
        return Matrix(rows: rows, columns: columns, storage: (0..<(rows * columns)).map { _ in rng.normal() })
    }

    @Test(arguments: [(1, 1, 1), (17, 64, 48), (33, 130, 7)])
    func blasMatmulMatchesReference(_ shape: (Int, Int, Int)) {
        let (m, k, n) = shape
        let a = Self.random(m, k, seed: 42)
        let b = Self.random(k, n, seed: 43)
        // NMSE of fp32 accumulation against a Double reference: ≈ k · 2⁻⁴⁸; 1e-10 leaves a wide margin.
        #expect(Linalg.matmul(a, b).normalizedMeanSquaredError(to: Reference.matmul(a, b)) < 1e-10)
        let bt = b.transposed()
        #expect(Linalg.matmul(a, bt, transposeB: true).normalizedMeanSquaredError(to: Reference.matmul(a, b)) < 1e-10)
    }

    /// `syrkAccumulate` sums `Aᵀ A` into the upper triangle over several calls; mirrored, it is the
    /// full Gram matrix (odd widths exercise the kernels' edge tiles).
    @Test(arguments: [(1, 1), (37, 5), (130, 67)])
    func syrkAccumulatesTheGramMatrix(_ shape: (Int, Int)) {
        let (k, n) = shape
        let a = Self.random(k, n, seed: 7)
        let b = Self.random(k, n, seed: 8)
        var c = [Float](repeating: 0, count: n * n)
        c.withUnsafeMutableBufferPointer { pc in
            for x in [a, b] {
                x.storage.withUnsafeBufferPointer { px in
                    Linalg.syrkAccumulate(n: n, k: k, a: px.baseAddress, lda: n, c: pc.baseAddress, ldc: n)
                }
            }
            Linalg.mirrorUpperTriangle(pc, n: n)
        }
        let at = a.transposed()
        let bt = b.transposed()
        let expected = Reference.matmul(at, a).storage.indices.map {
            Reference.matmul(at, a).storage[$0] + Reference.matmul(bt, b).storage[$0]
        }
        let gram = Matrix(rows: n, columns: n, storage: c)
        #expect(gram.normalizedMeanSquaredError(to: Matrix(rows: n, columns: n, storage: expected)) < 1e-10)
        #expect(gram == gram.transposed())
    }

    /// The tiled mirror equals the definition on widths around the 64-wide tiles.
    @Test(arguments: [0, 1, 2, 63, 64, 65, 130])
    func mirrorCopiesTheUpperTriangleDown(_ n: Int) {
        let upper = (0..<(n * n)).map { Float($0 % n >= $0 / n ? $0 : -1) }  // lower triangle: -1
        var c = upper
        c.withUnsafeMutableBufferPointer { Linalg.mirrorUpperTriangle($0, n: n) }
        for i in 0..<n {
            for j in 0..<n { #expect(c[i * n + j] == upper[min(i, j) * n + max(i, j)]) }
        }
    }

    @Test func splitMixIsTheDocumentedSequence() {
        // First outputs of SplitMix64 seeded with 0 (the published reference values).
        var rng = SplitMix64(seed: 0)
        #expect(rng.next() == 0xE220_A839_7B1D_CDAF)
        #expect(rng.next() == 0x6E78_9E6A_A1B9_65F4)
    }
}
