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

    /// Query rows per tile: tile `[r0, r1)` only multiplies keys `0..<r1`, so the masked upper
    /// triangle is never computed beyond the diagonal tiles.
    static let tileRows = 128

    /// The row tiles of a sequence of `length`.
    static func tiles(length: Int) -> [Range<Int>] {
        stride(from: 0, to: length, by: tileRows).map { $0..<min(length, $0 + tileRows) }
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
        // One tile of scores (tileRows, L) with leading dimension L, reused for every tile and head.
        var scores = [Float](repeating: 0, count: min(length, Self.tileRows) * length)
        let group = heads / kvHeads
        q.storage.withUnsafeBufferPointer { pq in
            k.storage.withUnsafeBufferPointer { pk in
                v.storage.withUnsafeBufferPointer { pv in
                    out.storage.withUnsafeMutableBufferPointer { po in
                        scores.withUnsafeMutableBufferPointer { ps in
                            for h in 0..<heads {
                                let kv = h / group
                                for tile in Self.tiles(length: length) {
                                    let keys = tile.upperBound  // keys 0..<r1 are visible to some row of the tile
                                    // S = scale · Q_h[r0..<r1] K_h[0..<r1]ᵀ: (T, d) × (d, r1).
                                    Linalg.gemm(
                                        m: tile.count,
                                        n: keys,
                                        k: d,
                                        alpha: scale,
                                        a: pq.baseAddress! + tile.lowerBound * heads * d + h * d,
                                        lda: heads * d,
                                        b: pk.baseAddress! + kv * d,
                                        ldb: kvHeads * d,
                                        transposeB: true,
                                        c: ps.baseAddress,
                                        ldc: length
                                    )
                                    softmaxCausalRows(ps, rows: tile, stride: length)
                                    // O_h[r0..<r1] = P V_h[0..<r1]: (T, r1) × (r1, d).
                                    Linalg.gemm(
                                        m: tile.count,
                                        n: d,
                                        k: keys,
                                        a: ps.baseAddress,
                                        lda: length,
                                        b: pv.baseAddress! + kv * d,
                                        ldb: kvHeads * d,
                                        c: po.baseAddress! + tile.lowerBound * heads * d + h * d,
                                        ldc: heads * d
                                    )
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// Tile row `t` (query `i = rows.lowerBound + t`) of `s`: numerically stable softmax over the
    /// visible keys, zero for the other keys `< rows.upperBound`. Rows are interleaved over the
    /// workers (row `i` costs `i + 1` exponentials).
    func softmaxCausalRows(_ s: UnsafeMutableBufferPointer<Float>, rows: Range<Int>, stride rowStride: Int) {
        let keys = rows.upperBound
        ParallelRows.run(units: 4 * rows.count * keys) { chunk, chunks in
            for t in Swift.stride(from: chunk, to: rows.count, by: chunks) {
                let i = rows.lowerBound + t
                let row = s.baseAddress! + t * rowStride
                let first = slidingWindow.map { max(0, i - $0 + 1) } ?? 0
                for j in 0..<first { row[j] = 0 }
                VectorMath.softmax(row + first, count: i + 1 - first)
                for j in (i + 1)..<keys { row[j] = 0 }
            }
        }
    }

    /// The GEMMs `(m, n, k, transposeB)` one head performs on a sequence of `length` (for benchmarks).
    static func gemmShapes(length: Int, headDim d: Int) -> [(m: Int, n: Int, k: Int, transposeB: Bool)] {
        tiles(length: length).flatMap { tile in
            [(tile.count, tile.upperBound, d, true), (tile.count, d, tile.upperBound, false)]
        }
    }
}
