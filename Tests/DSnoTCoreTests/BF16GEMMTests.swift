// SPDX-License-Identifier: Apache-2.0
// BF16GEMM against cblas_sgemm on the same bfloat16-rounded operands: only the summation order differs.

import DSnoTCore
import Foundation
import SafeTensors
import Synchronization
import Testing

@Suite(.enabled(if: BF16GEMM.isAvailable, "oneDNN runs no bf16 product in this process (BF16GEMM.probe)"))
struct BF16GEMMTests {
    /// `values` rounded to bfloat16 (the checkpoint writer's rounding) and back to fp32.
    static func roundedToBF16(_ m: Matrix) -> Matrix {
        var out = m
        let bytes = m.storage.withUnsafeBufferPointer { FloatConversion.encode($0, as: .bf16) }
        bytes.withUnsafeBytes { raw in
            out.storage.withUnsafeMutableBufferPointer { FloatConversion.convert(raw, dtype: .bf16, into: $0) }
        }
        return out
    }

    static func random(_ rows: Int, _ columns: Int, seed: UInt64, scale: Float = 1) -> Matrix {
        var rng = SplitMix64(seed: seed)
        return Matrix(rows: rows, columns: columns, storage: (0..<(rows * columns)).map { _ in scale * rng.normal() })
    }

    /// Products of two bfloat16 values are exact in fp32, so the bf16 GEMM equals the fp32 GEMM of the
    /// rounded operands up to fp32 summation order: within 1e-5 of Σ|x||w| per element.
    @Test(arguments: [(1, 1, 1), (7, 33, 5), (3, 17, 100), (64, 576, 1536), (130, 1536, 576)])
    func equalsSgemmOfTheRoundedOperands(m: Int, k: Int, n: Int) throws {
        let x = Self.random(m, k, seed: 1)
        let w = Self.random(n, k, seed: 2, scale: 0.05)
        let y = try BF16GEMM.multiply(x, BF16GEMM.Weights(w), threads: 1)
        let (xr, wr) = (Self.roundedToBF16(x), Self.roundedToBF16(w))
        let reference = Linalg.matmul(xr, wr, transposeB: true)
        let magnitude = Linalg.matmul(
            Matrix(rows: m, columns: k, storage: xr.storage.map(abs)),
            Matrix(rows: n, columns: k, storage: wr.storage.map(abs)),
            transposeB: true
        )
        #expect(y.rows == m && y.columns == n)
        var worst = 0.0
        for i in 0..<(m * n) {
            let error = Double(abs(y.storage[i] - reference.storage[i]))
            worst = max(worst, error / max(1e-30, Double(magnitude.storage[i])))
        }
        #expect(worst <= 1e-5, "worst relative error \(worst)")
    }

    /// Against the unrounded fp32 product the difference is bfloat16's rounding of the inputs: a
    /// relative 2⁻⁸ per operand, so within 2 · 2⁻⁸ of Σ|x||w|.
    @Test func staysWithinBF16RoundingOfTheFP32Product() throws {
        let (x, w) = (Self.random(32, 576, seed: 3), Self.random(192, 576, seed: 4, scale: 0.05))
        let y = try BF16GEMM.multiply(x, BF16GEMM.Weights(w))
        let exact = Linalg.matmul(x, w, transposeB: true)
        let magnitude = Linalg.matmul(
            Matrix(rows: 32, columns: 576, storage: x.storage.map(abs)),
            Matrix(rows: 192, columns: 576, storage: w.storage.map(abs)),
            transposeB: true
        )
        for i in 0..<(32 * 192) {
            #expect(abs(y.storage[i] - exact.storage[i]) <= 2 * 0.00390625 * magnitude.storage[i] + 1e-6)
        }
    }

    @Test func anEmptyBatchGivesAnEmptyResult() throws {
        let w = Self.random(8, 4, seed: 5)
        let y = try BF16GEMM.multiply(Matrix(rows: 0, columns: 4), BF16GEMM.Weights(w))
        #expect(y.rows == 0 && y.columns == 8 && y.storage.isEmpty)
    }

    /// Calls from several threads at once (one sequence per core, as the pipeline runs) give each the
    /// single-threaded result.
    @Test func concurrentCallsAgreeWithASerialCall() throws {
        let w = BF16GEMM.Weights(Self.random(96, 64, seed: 6))
        let inputs = (0..<8).map { Self.random(40, 64, seed: 100 + UInt64($0)) }
        let serial = try inputs.map { try BF16GEMM.multiply($0, w, threads: 1) }
        let results = Mutex<[Int: Matrix]>([:])
        DispatchQueue.concurrentPerform(iterations: inputs.count) { i in
            let y = try? BF16GEMM.multiply(inputs[i], w, threads: 1)
            results.withLock { $0[i] = y }
        }
        for i in inputs.indices { #expect(results.withLock { $0[i] } == serial[i]) }
    }
}
