// SPDX-License-Identifier: Apache-2.0
// SparseGPT tests: golden masks (a handful of near-tie flips allowed) and W_pruned within 5e-5 on agreeing rows (D6).

import DSnoTCore
import SafeTensors
import Testing

@Suite struct SparseGPTTests {
    /// Compares a result with a golden case; returns (mask mismatches, max |ΔW| on rows whose masks agree).
    static func compare(_ result: SparseGPT.Result, _ golden: GoldenCase) throws -> (Int, Float) {
        let f = try GoldenFixture.file("cases/\(golden.id).safetensors")
        let mask = try GoldenFixture.mask(f)
        let w = try GoldenFixture.matrix(f, "W_pruned")
        var worst: Float = 0
        for r in 0..<w.rows {
            var agree = true
            for c in 0..<w.columns where mask[r, c] != result.mask[r, c] { agree = false }
            guard agree else { continue }
            for c in 0..<w.columns { worst = max(worst, abs(w[r, c] - result.weights[r, c])) }
        }
        return (result.mask.mismatches(mask), worst)
    }

    @Test(arguments: GoldenCase.all(prefix: "sparsegpt_"))
    func goldenCaseFromTheStoredHessian(_ golden: GoldenCase) throws {
        let layer = try GoldenFixture.layer(golden.data)
        let h = try #require(layer.stored.hessian)
        let result = try SparseGPT.prune(weights: layer.weights, hessian: h, pattern: golden.pattern)
        let (flips, worst) = try Self.compare(result, golden)
        // Golden README: near-ties may flip a few entries (2 of 65,536 against float64); W within 5e-5.
        #expect(flips <= 4)
        #expect(worst <= 5e-5)
        #expect(result.dampeningUsed == 0.01)
        for i in 0..<result.mask.count where result.mask.bytes[i] != 0 { #expect(result.weights.storage[i] == 0) }
    }

    @Test(arguments: GoldenCase.all(prefix: "sparsegpt_"))
    func goldenCaseFromOurOwnHessian(_ golden: GoldenCase) throws {
        let layer = try GoldenFixture.layer(golden.data)
        let stats = GoldenFixture.recomputed(layer, hessian: true)
        let result = try SparseGPT.prune(
            weights: layer.weights,
            hessian: try #require(stats.hessian),
            pattern: golden.pattern
        )
        let (flips, worst) = try Self.compare(result, golden)
        // Our Gram differs from the reference's at fp32 round-off, by a summation order that depends on
        // the CPU's BLAS kernels, and SparseGPT's column updates carry that into its near-ties: at most
        // 4 flips on the machines this suite ran on before, 12 of 65,536 in `sparsegpt_2of4_C` on an AMD
        // EPYC where OpenBLAS 0.3.21 picks its Haswell kernels. Allow 0.05 % of the entries; the weights
        // still agree where the masks do.
        #expect(flips <= result.mask.count / 2000)
        #expect(worst <= 5e-5)
    }

    @Test func inverseCholeskyFactorMatchesTheReference() throws {
        // Hinv_chol_upper: the matrix fasterprune's column loop uses (fp32 round-off: 1e-4 of its largest entry).
        for id in ["A", "B", "C"] {
            let layer = try GoldenFixture.layer(id)
            let h = try #require(layer.stored.hessian)
            let expected = try layer.file.floats(named: "Hinv_chol_upper")
            let n = h.rows
            var mean = 0.0
            for j in 0..<n { mean += Double(h[j, j]) }
            let u = try #require(SparseGPT.inverseCholeskyFactor(hessian: h, damp: Float(0.01 * mean / Double(n))))
                .storage
            let scale = expected.map { abs($0) }.max() ?? 1
            var worst: Float = 0
            for i in 0..<u.count { worst = max(worst, abs(u[i] - expected[i])) }
            #expect(worst / scale < 1e-4)
        }
    }

    @Test func deadColumnsAreZeroedAndPruned() throws {
        var rng = SplitMix64(seed: 5)
        let w = Matrix(rows: 4, columns: 8, storage: (0..<32).map { _ in rng.normal() })
        var x = Matrix(rows: 64, columns: 8, storage: (0..<512).map { _ in rng.normal() })
        for t in 0..<64 { x[t, 3] = 0 }  // feature 3 never fires: H_33 = 0
        var stats = LayerStatistics(inputFeatures: 8, accumulateHessian: true)
        stats.accumulate(sequence: x)
        let result = try SparseGPT.prune(weights: w, hessian: try #require(stats.hessian), pattern: .nOfM(2, 4))
        #expect(result.deadColumns == [3])
        for r in 0..<4 {
            #expect(result.mask[r, 3])
            #expect(result.weights[r, 3] == 0)
        }
    }

    @Test func choleskyFailureAfterRetriesIsAClearError() {
        // An indefinite "Hessian" (negative diagonal): no dampening of 1e-2 … 1e1 · mean(diag) can fix it.
        let n = 4
        var h = Matrix(rows: n, columns: n)
        for j in 0..<n { h[j, j] = j == 0 ? -100 : 1 }
        let w = Matrix(rows: 2, columns: n, storage: [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(throws: PruningError.self) {
            _ = try SparseGPT.prune(weights: w, hessian: h, pattern: .unstructured(0.5), layer: "mlp.down_proj")
        }
        do {
            _ = try SparseGPT.prune(weights: w, hessian: h, pattern: .unstructured(0.5), layer: "mlp.down_proj")
        } catch let error as PruningError {
            guard case .choleskyFailed(let layer, let attempts, _, _) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(layer == "mlp.down_proj")
            #expect(attempts == 4)
            #expect(error.description.contains("Cholesky"))
        } catch {
            Issue.record("unexpected error type \(error)")
        }
    }

    @Test func dampeningRetryRescuesASingularHessian() throws {
        // A rank-one H (one token) is singular; the dampened H + λI is positive definite at the first attempt.
        var stats = LayerStatistics(inputFeatures: 8, accumulateHessian: true)
        stats.accumulate(sequence: Matrix(rows: 1, columns: 8, storage: [1, 2, 3, 4, 5, 6, 7, 8]))
        let w = Matrix(rows: 2, columns: 8, storage: (0..<16).map { Float($0) - 8 })
        let result = try SparseGPT.prune(weights: w, hessian: try #require(stats.hessian), pattern: .unstructured(0.5))
        #expect(result.dampeningUsed >= 0.01)
        #expect(result.mask.prunedCount >= 8)
    }
}
