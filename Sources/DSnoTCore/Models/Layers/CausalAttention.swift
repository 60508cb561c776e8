// SPDX-License-Identifier: Apache-2.0
// CausalAttention: multi-head / grouped-query scaled dot-product attention with a causal mask, fp32.

import Foundation

/// The attention core shared by every architecture: `softmax(scale · Q Kᵀ + causal mask) V` per head,
/// with query head `h` reading key/value head `h / (heads / kvHeads)` (grouped-query attention).
public struct CausalAttention: Sendable, Equatable {
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    /// Multiplies `Q Kᵀ` (usually `1/sqrt(headDim)`).
    public let scale: Float
    /// When set, query `i` sees only keys `j` with `i − j < slidingWindow` (Mistral).
    public let slidingWindow: Int?

    /// - Precondition: `heads` is a positive multiple of `kvHeads` (the config loader validates it).
    public init(heads: Int, kvHeads: Int, headDim: Int, scale: Float, slidingWindow: Int? = nil) {
        precondition(
            heads > 0 && kvHeads > 0 && heads % kvHeads == 0,
            "CausalAttention: heads must be a multiple of kvHeads"
        )
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.scale = scale
        self.slidingWindow = slidingWindow
    }

    /// - Parameters:
    ///   - q: `(L, heads · d)`.
    ///   - k, v: `(L, kvHeads · d)`.
    /// - Returns: `(L, heads · d)`, heads concatenated (the input of `o_proj`).
    public func callAsFunction(q: Matrix, k: Matrix, v: Matrix) -> Matrix {
        let length = q.rows
        let d = headDim
        precondition(
            q.columns == heads * d && k.columns == kvHeads * d && v.columns == kvHeads * d,
            "attention: widths"
        )
        precondition(k.rows == length && v.rows == length, "attention: lengths differ")
        var out = Matrix(rows: length, columns: heads * d)
        guard length > 0 else { return out }
        var scores = [Float](repeating: 0, count: length * length)  // (L, L), reused per head
        let group = heads / kvHeads
        q.storage.withUnsafeBufferPointer { pq in
            k.storage.withUnsafeBufferPointer { pk in
                v.storage.withUnsafeBufferPointer { pv in
                    out.storage.withUnsafeMutableBufferPointer { po in
                        scores.withUnsafeMutableBufferPointer { ps in
                            for h in 0..<heads {
                                let kv = h / group
                                // S = scale · Q_h K_hᵀ: (L, d) × (d, L).
                                Linalg.gemm(
                                    m: length,
                                    n: length,
                                    k: d,
                                    alpha: scale,
                                    a: pq.baseAddress! + h * d,
                                    lda: heads * d,
                                    b: pk.baseAddress! + kv * d,
                                    ldb: kvHeads * d,
                                    transposeB: true,
                                    c: ps.baseAddress,
                                    ldc: length
                                )
                                softmaxCausalRows(ps, length: length)
                                // O_h = P V_h: (L, L) × (L, d).
                                Linalg.gemm(
                                    m: length,
                                    n: d,
                                    k: length,
                                    a: ps.baseAddress,
                                    lda: length,
                                    b: pv.baseAddress! + kv * d,
                                    ldb: kvHeads * d,
                                    c: po.baseAddress! + h * d,
                                    ldc: heads * d
                                )
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Row `i` of `s`: numerically stable softmax over the visible keys, zero elsewhere.
    func softmaxCausalRows(_ s: UnsafeMutableBufferPointer<Float>, length: Int) {
        for i in 0..<length {
            let row = s.baseAddress! + i * length
            let first = slidingWindow.map { max(0, i - $0 + 1) } ?? 0
            var maximum = -Float.infinity
            for j in first...i { maximum = max(maximum, row[j]) }
            var sum: Float = 0
            for j in first...i {
                let e = Foundation.exp(row[j] - maximum)
                row[j] = e
                sum += e
            }
            let inverse = 1 / sum
            for j in 0..<first { row[j] = 0 }
            for j in first...i { row[j] *= inverse }
            for j in (i + 1)..<length { row[j] = 0 }
        }
    }
}
