// SPDX-License-Identifier: Apache-2.0
// CausalAttention: multi-head / grouped-query scaled dot-product attention with a causal mask, fp32.

import DSnoTSupport
import Foundation

/// The attention core shared by every architecture: `softmax(scale · Q Kᵀ + causal mask) V` per head,
/// with query head `h` reading key/value head `h / (heads / kvHeads)` (grouped-query attention).
public struct CausalAttention: Sendable, Equatable {
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    /// Multiplies `Q Kᵀ` (usually `1/sqrt(headDim)`).
    public let scale: Float
    /// When set, query `i` sees only keys `j` with `i − j < slidingWindow` (Mistral, Gemma's local layers).
    public let slidingWindow: Int?
    /// When set, every scaled score `s` becomes `softCap · tanh(s / softCap)` before the mask and the
    /// softmax (Gemma 2 `attn_logit_softcapping`).
    public let softCap: Float?

    /// - Precondition: `heads` is a positive multiple of `kvHeads` (the config loader validates it).
    public init(heads: Int, kvHeads: Int, headDim: Int, scale: Float, slidingWindow: Int? = nil, softCap: Float? = nil)
    {
        precondition(
            heads > 0 && kvHeads > 0 && heads % kvHeads == 0,
            "CausalAttention: heads must be a multiple of kvHeads"
        )
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.scale = scale
        self.slidingWindow = slidingWindow
        self.softCap = softCap
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
    ///   - compute: the products' input format: the block's (its query projection's `Linear.compute`).
    ///     In `.bf16`, `Q Kᵀ` and `P V` take bfloat16 inputs with fp32 sums (`CausalAttention+BF16`); the
    ///     scaling, the mask and the softmax stay fp32.
    /// - Returns: `(L, heads · d)`, heads concatenated (the input of `o_proj`).
    ///
    /// The `G = heads / kvHeads` query heads that read one key/value head are stacked, so each row
    /// tile costs two GEMMs of `G·T` rows per key/value head instead of two of `T` rows per query
    /// head: `Q` rows are packed head-major into a scratch tile, and the context rows are scattered
    /// back into `out`.
    public func callAsFunction(q: Matrix, k: Matrix, v: Matrix, compute: ComputeFormat = .fp32) -> Matrix {
        let length = q.rows
        let d = headDim
        precondition(
            q.columns == heads * d && k.columns == kvHeads * d && v.columns == kvHeads * d,
            "attention: widths"
        )
        precondition(k.rows == length && v.rows == length, "attention: lengths differ")
        guard length > 0 else { return Matrix(rows: 0, columns: heads * d) }
        // Should oneDNN fail (out of memory), the call is computed again in fp32, as `Linear` does.
        if compute == .bf16, let context = try? bf16Attention(q: q, k: k, v: v) { return context }
        let group = heads / kvHeads
        let tileCapacity = group * min(length, Self.tileRows)
        // Scratch reused for every tile and key/value head: packed queries and contexts (G·T, d), and
        // the scores (G·T, L) with leading dimension L. None is read before it is written (the GEMMs
        // run with beta = 0), so none is initialised; nor is `out`, whose every element a tile writes.
        let packedQ = UnsafeMutablePointer<Float>.allocate(capacity: tileCapacity * d)
        let packedO = UnsafeMutablePointer<Float>.allocate(capacity: tileCapacity * d)
        let scores = UnsafeMutableBufferPointer<Float>.allocate(capacity: tileCapacity * length)
        defer {
            packedQ.deallocate()
            packedO.deallocate()
            scores.deallocate()
        }
        return Matrix(rows: length, columns: heads * d) { out in
            withBaseAddresses([q.storage, k.storage, v.storage]) { p in
                for kv in 0..<kvHeads {
                    for tile in Self.tiles(length: length) {
                        attendTile(
                            tile,
                            kvHead: kv,
                            q: p[0],
                            k: p[1],
                            v: p[2],
                            out: out.baseAddress!,
                            packedQ: packedQ,
                            packedO: packedO,
                            scores: scores,
                            length: length
                        )
                    }
                }
            }
        }
    }

    /// One row tile `[r0, r1)` of the `G` query heads of key/value head `kv`. Packed row `g·T + t` is
    /// query head `kv·G + g` at position `r0 + t`.
    func attendTile(
        _ tile: Range<Int>,
        kvHead kv: Int,
        q: UnsafePointer<Float>,
        k: UnsafePointer<Float>,
        v: UnsafePointer<Float>,
        out: UnsafeMutablePointer<Float>,
        packedQ: UnsafeMutablePointer<Float>,
        packedO: UnsafeMutablePointer<Float>,
        scores: UnsafeMutableBufferPointer<Float>,
        length: Int
    ) {
        let d = headDim
        let group = heads / kvHeads
        let rows = tile.count
        let qWidth = heads * d
        let keys = tile.upperBound  // keys 0..<r1 are visible to some row of the tile
        for g in 0..<group {
            let head = kv * group + g
            for t in 0..<rows {
                (packedQ + (g * rows + t) * d).update(from: q + (tile.lowerBound + t) * qWidth + head * d, count: d)
            }
        }
        // S = scale · Q_packed K_kv[0..<r1]ᵀ: (G·T, d) × (d, r1).
        Linalg.gemm(
            m: group * rows,
            n: keys,
            k: d,
            alpha: scale,
            a: packedQ,
            lda: d,
            b: k + kv * d,
            ldb: kvHeads * d,
            transposeB: true,
            c: scores.baseAddress,
            ldc: length
        )
        softmaxCausalRows(scores, tile: tile, group: group, stride: length)
        // O_packed = P V_kv[0..<r1]: (G·T, r1) × (r1, d).
        Linalg.gemm(
            m: group * rows,
            n: d,
            k: keys,
            a: scores.baseAddress,
            lda: length,
            b: v + kv * d,
            ldb: kvHeads * d,
            c: packedO,
            ldc: d
        )
        for g in 0..<group {
            let head = kv * group + g
            for t in 0..<rows {
                (out + (tile.lowerBound + t) * qWidth + head * d).update(from: packedO + (g * rows + t) * d, count: d)
            }
        }
    }

    /// Packed row `g·T + t` (query `i = tile.lowerBound + t`) of `s`: numerically stable softmax over
    /// the visible keys, zero for the other keys `< tile.upperBound`. Rows are dealt to the parts in
    /// turn (row `i` costs `i + 1` exponentials).
    func softmaxCausalRows(_ s: UnsafeMutableBufferPointer<Float>, tile: Range<Int>, group: Int, stride rowStride: Int)
    {
        let keys = tile.upperBound
        let rows = group * tile.count
        Parallel.forEachPart(count: rows, units: 4 * rows * keys) { part, parts in
            for r in Swift.stride(from: part, to: rows, by: parts) {
                let i = tile.lowerBound + r % tile.count
                let row = s.baseAddress! + r * rowStride
                let first = slidingWindow.map { max(0, i - $0 + 1) } ?? 0
                if first > 0 { row.update(repeating: 0, count: first) }
                if let softCap { VectorMath.softCap(row + first, count: i + 1 - first, cap: softCap) }
                VectorMath.softmax(row + first, count: i + 1 - first)
                if i + 1 < keys { (row + i + 1).update(repeating: 0, count: keys - i - 1) }
            }
        }
    }

    /// The attention GEMMs `(m, n, k, transposeB)` of one block forward over `length` tokens: per
    /// key/value head and causal row tile `[r0, r1)`, `(G·T, d) × (d, r1)` and `(G·T, r1) × (r1, d)`
    /// (what `dsnot-bench forward` times plain sgemm on).
    public static func gemmShapes(length: Int, heads: Int, kvHeads: Int, headDim d: Int) -> [(
        m: Int, n: Int, k: Int, transposeB: Bool
    )] {
        let group = heads / max(1, kvHeads)
        let perKVHead = tiles(length: length).flatMap { tile in
            [(group * tile.count, tile.upperBound, d, true), (group * tile.count, d, tile.upperBound, false)]
        }
        return (0..<kvHeads).flatMap { _ in perKVHead }
    }
}
