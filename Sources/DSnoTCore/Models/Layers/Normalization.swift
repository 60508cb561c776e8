// SPDX-License-Identifier: Apache-2.0
// Normalization: RMSNorm (LLaMA) and LayerNorm (OPT), row-wise over the hidden dimension, fp32.

import DSnoTSupport
import Foundation

/// Root-mean-square normalisation as in Hugging Face `LlamaRMSNorm`:
/// `y = w ⊙ x / sqrt(mean(x²) + eps)`.
public struct RMSNorm: Sendable, Equatable {
    /// `[hidden]`.
    public var weight: [Float]
    public var epsilon: Float

    public init(weight: [Float], epsilon: Float) {
        self.weight = weight
        self.epsilon = epsilon
    }

    /// - Parameter x: `(L, hidden)`. Returns `(L, hidden)`.
    public func callAsFunction(_ x: Matrix) -> Matrix {
        let n = x.columns
        precondition(n == weight.count, "RMSNorm: width \(n) differs from weight length \(weight.count)")
        let epsilon = epsilon
        // Every element is written below: no zero fill.
        return Matrix(rows: x.rows, columns: n) { py in
            withBaseAddresses([x.storage, weight]) { p in
                let (px, pw) = (p[0], p[1])
                Parallel.forEachChunk(0..<x.rows, units: 3 * x.count) { rows in
                    for r in rows {
                        let row = px + r * n
                        let sumSquares = VectorMath.sumOfSquares(row, count: n)
                        let scale = 1 / (sumSquares / Float(n) + epsilon).squareRoot()
                        for c in 0..<n { py[r * n + c] = pw[c] * (row[c] * scale) }
                    }
                }
            }
        }
    }
}

extension RMSNorm {
    /// Normalises every `weight.count`-wide head of `x` on its own (Qwen3 and Gemma 3 `q_norm` / `k_norm`).
    /// - Parameter x: `(L, heads · d)` with `d = weight.count`. Returns `(L, heads · d)`.
    public func perHead(_ x: Matrix) -> Matrix {
        let d = weight.count
        precondition(d > 0 && x.columns % d == 0, "RMSNorm.perHead: width \(x.columns) is not a multiple of \(d)")
        let heads = self(Matrix(rows: x.rows * (x.columns / d), columns: d, storage: x.storage))
        return Matrix(rows: x.rows, columns: x.columns, storage: heads.storage)
    }
}

/// Layer normalisation as `torch.nn.LayerNorm` (population variance, elementwise affine).
public struct LayerNorm: Sendable, Equatable {
    /// `[hidden]`.
    public var weight: [Float]
    /// `[hidden]`.
    public var bias: [Float]
    public var epsilon: Float

    public init(weight: [Float], bias: [Float], epsilon: Float) {
        precondition(weight.count == bias.count, "LayerNorm: weight and bias lengths differ")
        self.weight = weight
        self.bias = bias
        self.epsilon = epsilon
    }

    /// - Parameter x: `(L, hidden)`. Returns `(L, hidden)`.
    public func callAsFunction(_ x: Matrix) -> Matrix {
        let n = x.columns
        precondition(n == weight.count, "LayerNorm: width \(n) differs from weight length \(weight.count)")
        let epsilon = epsilon
        // Every element is written below: no zero fill.
        return Matrix(rows: x.rows, columns: n) { py in
            withBaseAddresses([x.storage, weight, bias]) { p in
                let (px, pw, pb) = (p[0], p[1], p[2])
                Parallel.forEachChunk(0..<x.rows, units: 4 * x.count) { rows in
                    for r in rows {
                        let row = px + r * n
                        let mean = VectorMath.sum(row, count: n) / Float(n)
                        let sumSquares = VectorMath.sumOfSquares(row, count: n, shift: mean)
                        let scale = 1 / (sumSquares / Float(n) + epsilon).squareRoot()
                        for c in 0..<n { py[r * n + c] = (row[c] - mean) * scale * pw[c] + pb[c] }
                    }
                }
            }
        }
    }
}

/// Element-wise activations.
enum Activation {
    /// `h ← silu(gate) ⊙ up`, the SwiGLU product (HF `act_fn(gate_proj(x)) * up_proj(x)`).
    static func swiGLU(gate: Matrix, up: consuming Matrix) -> Matrix {
        precondition(gate.rows == up.rows && gate.columns == up.columns, "swiGLU: shapes differ")
        var h = up  // `up` is consumed: the product overwrites it without a copy
        h.storage.withUnsafeMutableBufferPointer { ph in
            gate.storage.withUnsafeBufferPointer { pg in
                Parallel.forEachChunk(0..<ph.count, units: 8 * ph.count, alignment: VectorMath.lanes) { range in
                    VectorMath.siluMultiply(gate: pg.baseAddress!, up: ph.baseAddress!, range: range)
                }
            }
        }
        return h
    }

    /// `h ← gelu_tanh(gate) ⊙ up`, the GeGLU product of Gemma (`gelu_pytorch_tanh`).
    static func gegluTanh(gate: Matrix, up: consuming Matrix) -> Matrix {
        precondition(gate.rows == up.rows && gate.columns == up.columns, "gegluTanh: shapes differ")
        var h = up
        h.storage.withUnsafeMutableBufferPointer { ph in
            gate.storage.withUnsafeBufferPointer { pg in
                Parallel.forEachChunk(0..<ph.count, units: 30 * ph.count, alignment: VectorMath.lanes) { range in
                    VectorMath.geluTanhMultiply(gate: pg.baseAddress!, up: ph.baseAddress!, range: range)
                }
            }
        }
        return h
    }

    /// `x ← cap · tanh(x / cap)` (Gemma 2 `final_logit_softcapping`).
    static func softCap(_ x: inout Matrix, cap: Float) {
        x.storage.withUnsafeMutableBufferPointer { p in
            guard let base = p.baseAddress else { return }
            VectorMath.softCap(base, count: p.count, cap: cap)
        }
    }

    /// `x ← max(x, 0)`.
    static func relu(_ x: inout Matrix) {
        x.storage.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count where p[i] < 0 { p[i] = 0 }
        }
    }

    /// `a ← a + b` (the residual connection).
    static func add(_ a: inout Matrix, _ b: Matrix) {
        precondition(a.rows == b.rows && a.columns == b.columns, "residual add: shapes differ")
        a.storage.withUnsafeMutableBufferPointer { pa in
            b.storage.withUnsafeBufferPointer { pb in
                Parallel.forEachChunk(0..<pa.count, units: pa.count) { range in
                    for i in range { pa[i] += pb[i] }
                }
            }
        }
    }
}
