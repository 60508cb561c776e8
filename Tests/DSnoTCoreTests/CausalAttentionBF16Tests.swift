// SPDX-License-Identifier: Apache-2.0
// CausalAttention in bf16 against a float64 reference that rounds the same operands to bfloat16.

import Foundation
import SafeTensors
import Testing

@testable import DSnoTCore

@Suite(.enabled(if: BF16GEMM.isAvailable, "oneDNN runs no bf16 product in this process (BF16GEMM.probe)"))
struct CausalAttentionBF16Tests {
    static func bf16(_ x: Float) -> Double {
        Double(Float(bitPattern: UInt32(FloatConversion.bf16Bits(x)) << 16))
    }

    /// The bf16 path's arithmetic in float64: `scale · q` and `k` rounded to bfloat16, the scores and the
    /// softmax exact, the probabilities and `v` rounded to bfloat16. Returns the output and, per element,
    /// `Σ_j P_j |v_j|` (the scale of what a one-ulp flip of a rounded probability can change).
    static func reference(_ a: CausalAttention, q: Matrix, k: Matrix, v: Matrix) -> (out: [Double], scale: [Double]) {
        let (length, d, group) = (q.rows, a.headDim, a.heads / a.kvHeads)
        var out = [Double](repeating: 0, count: length * a.heads * d)
        var scale = out
        for head in 0..<a.heads {
            let kv = head / group
            for i in 0..<length {
                let first = a.slidingWindow.map { max(0, i - $0 + 1) } ?? 0
                var scores = [Double]()
                for j in first...i {
                    var s = 0.0
                    for c in 0..<d {
                        s += bf16(q[i, head * d + c] * a.scale) * bf16(k[j, kv * d + c])
                    }
                    scores.append(s)
                }
                let top = scores.max()!
                let e = scores.map { Foundation.exp($0 - top) }
                let total = e.reduce(0, +)
                for c in 0..<d {
                    var (sum, magnitude) = (0.0, 0.0)
                    for (n, j) in (first...i).enumerated() {
                        let p = e[n] / total
                        sum += bf16(Float(p)) * bf16(v[j, kv * d + c])
                        magnitude += p * abs(Double(v[j, kv * d + c]))
                    }
                    out[i * a.heads * d + head * d + c] = sum
                    scale[i * a.heads * d + head * d + c] = magnitude
                }
            }
        }
        return (out, scale)
    }

    static func random(_ rows: Int, _ columns: Int, seed: UInt64) -> Matrix {
        var rng = SplitMix64(seed: seed)
        return Matrix(rows: rows, columns: columns, storage: (0..<(rows * columns)).map { _ in rng.normal() })
    }

    /// Grouped-query heads, several row tiles (the last one partial), with and without a sliding window:
    /// every element within one bfloat16 ulp (2⁻⁸) of `Σ_j P_j |v_j|` of the reference, where a wrong head,
    /// tile or key would be off by the size of `v` itself.
    @Test(arguments: [nil, 70] as [Int?])
    func matchesTheRoundedReference(window: Int?) throws {
        let attention = CausalAttention(heads: 4, kvHeads: 2, headDim: 16, scale: 0.25, slidingWindow: window)
        let length = CausalAttention.tileRows * 2 + 37
        let q = Self.random(length, 4 * 16, seed: 1)
        let (k, v) = (Self.random(length, 2 * 16, seed: 2), Self.random(length, 2 * 16, seed: 3))
        let ours = attention(q: q, k: k, v: v, compute: .bf16)
        let (expected, scale) = Self.reference(attention, q: q, k: k, v: v)
        var worst = 0.0
        for i in expected.indices {
            worst = max(worst, abs(Double(ours.storage[i]) - expected[i]) / (scale[i] + 1e-6))
        }
        #expect(worst <= 1.0 / 256, "worst error / Σ P|v|: \(worst)")
        // And it is the fp32 attention up to bfloat16's rounding, not the fp32 result itself.
        let fp32 = attention(q: q, k: k, v: v)
        #expect(fp32.storage != ours.storage)
        #expect(ours.normalizedMeanSquaredError(to: fp32) < 1e-4)
    }
}
