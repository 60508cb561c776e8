// SPDX-License-Identifier: Apache-2.0
// Forward kernel tests: SIMD exp/softmax and the tiled causal attention against naive references.

import Foundation
import Testing

@testable import DSnoTCore

@Suite struct ForwardKernelTests {
    @Test func vectorExpIsWithinFourULPOfLibm() {
        var worst = 0.0
        for i in 0...16_000 {
            let x = Float(-80 + Double(i) * 0.01)
            let exact = Foundation.exp(Double(x))
            worst = max(worst, abs(Double(VectorMath.exp(x)) - exact) / exact)
        }
        // Cephes expf is about 2 ulp; 4 ulp of fp32 = 4 · 2⁻²³ ≈ 4.8e-7 relative.
        #expect(worst <= 4.8e-7, "worst relative error \(worst)")
    }

    @Test(arguments: [1, 7, 8, 37])
    func softmaxMatchesTheDoubleReference(_ count: Int) {
        var rng = SplitMix64(seed: UInt64(count))
        var values = (0..<count).map { _ in 5 * rng.normal() }
        let m = Double(values.max() ?? 0)
        let total = values.reduce(0.0) { $0 + Foundation.exp(Double($1) - m) }
        let expected = values.map { Foundation.exp(Double($0) - m) / total }
        values.withUnsafeMutableBufferPointer { VectorMath.softmax($0.baseAddress!, count: count) }
        // Probabilities: 1e-6 absolute.
        for (got, want) in zip(values, expected) { #expect(abs(Double(got) - want) <= 1e-6) }
    }

    /// The norms' lane-parallel sums against Double, over empty input, the scalar tail alone, whole
    /// vectors and a mix: a float sum of `n` terms is within about `n · 2⁻²⁴ · Σ |terms|` of the exact one.
    @Test(arguments: [0, 1, 15, 16, 17, 576, 1037])
    func laneSumsMatchTheDoubleReference(_ count: Int) {
        var rng = SplitMix64(seed: 7 + UInt64(count))
        let values = (0..<count).map { _ in 3 * rng.normal() + 1 }
        let shift: Float = 0.75
        let sum = values.reduce(0.0) { $0 + Double($1) }
        let squares = values.reduce(0.0) { $0 + (Double($1) - Double(shift)) * (Double($1) - Double(shift)) }
        let magnitude = values.reduce(0.0) { $0 + abs(Double($1)) }
        let bound = Double(count + 1) * 0x1p-24
        // A NaN past the end: a kernel that read beyond `count` would return NaN.
        (values + [.nan]).withUnsafeBufferPointer { p in
            #expect(abs(Double(VectorMath.sum(p.baseAddress!, count: count)) - sum) <= bound * magnitude)
            let got = VectorMath.sumOfSquares(p.baseAddress!, count: count, shift: shift)
            #expect(abs(Double(got) - squares) <= 2 * bound * squares)
        }
    }

    /// Gemma's kernels against libm in Double: GeGLU's `gelu_pytorch_tanh` and soft-capping, over the
    /// vector body and the scalar tail (3 201 values, not a multiple of 8).
    @Test func geluTanhAndSoftCapMatchLibm() {
        let xs = (0...3200).map { Float(-40 + Double($0) * 0.025) }
        var up = [Float](repeating: 1.5, count: xs.count)
        xs.withUnsafeBufferPointer { g in
            up.withUnsafeMutableBufferPointer { u in
                VectorMath.geluTanhMultiply(gate: g.baseAddress!, up: u.baseAddress!, range: 0..<xs.count)
            }
        }
        var capped = xs
        capped.withUnsafeMutableBufferPointer { VectorMath.softCap($0.baseAddress!, count: $0.count, cap: 5) }
        for (i, x) in xs.enumerated() {
            let d = Double(x)
            let gelu = 0.5 * d * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d)))
            // A few ulp of max(|x|, 1): the product and the cap keep fp32 rounding of their inputs.
            #expect(abs(Double(up[i]) - 1.5 * gelu) <= 2e-6 * max(1, abs(d)), "gelu_tanh(\(x))")
            #expect(abs(Double(capped[i]) - 5 * Foundation.tanh(d / 5)) <= 2e-6 * 5, "softcap(\(x))")
        }
    }

    /// Naive attention in Double: softmax(scale · q kᵀ) v over the visible keys.
    static func naive(_ q: Matrix, _ k: Matrix, _ v: Matrix, _ a: CausalAttention) -> Matrix {
        let d = a.headDim
        var out = Matrix(rows: q.rows, columns: a.heads * d)
        for h in 0..<a.heads {
            let kv = h / (a.heads / a.kvHeads)
            for i in 0..<q.rows {
                let first = a.slidingWindow.map { max(0, i - $0 + 1) } ?? 0
                var scores: [Double] = []
                for j in first...i {
                    var dot = 0.0
                    for c in 0..<d { dot += Double(q[i, h * d + c]) * Double(k[j, kv * d + c]) }
                    scores.append(dot * Double(a.scale))
                }
                let m = scores.max() ?? 0
                let weights = scores.map { Foundation.exp($0 - m) }
                let total = weights.reduce(0, +)
                for c in 0..<d {
                    var acc = 0.0
                    for (t, j) in (first...i).enumerated() { acc += weights[t] / total * Double(v[j, kv * d + c]) }
                    out[i, h * d + c] = Float(acc)
                }
            }
        }
        return out
    }

    /// L = 300 spans three 128-row tiles, so the causal tiling (keys `0..<r1` per tile) is exercised.
    @Test(arguments: [nil, 50] as [Int?])
    func tiledAttentionMatchesTheNaiveReference(_ window: Int?) {
        var rng = SplitMix64(seed: 3)
        func random(_ columns: Int) -> Matrix {
            Matrix(rows: 300, columns: columns, storage: (0..<(300 * columns)).map { _ in rng.normal() })
        }
        let attention = CausalAttention(heads: 4, kvHeads: 2, headDim: 8, scale: 0.35, slidingWindow: window)
        let (q, k, v) = (random(32), random(16), random(16))
        let fast = attention(q: q, k: k, v: v)
        let reference = Self.naive(q, k, v, attention)
        let worst = zip(fast.storage, reference.storage).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
        // fp32 GEMMs over ≤ 300 terms against Double: 1e-5 of the largest output.
        #expect(worst <= 1e-5 * reference.maxAbs, "max |Δ| = \(worst)")
    }
}
