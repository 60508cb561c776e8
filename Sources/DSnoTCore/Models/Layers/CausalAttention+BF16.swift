// SPDX-License-Identifier: Apache-2.0
// CausalAttention+BF16: the attention's two products with bfloat16 inputs and fp32 sums (compute = "bf16").

import DSnoTSupport
import SafeTensors

extension CausalAttention {
    /// The same tiles as the fp32 path (`attendTile`), with `scale · Q Kᵀ` and `P V` through
    /// `BF16GEMM.product`: each key/value head's `K` and `V` rows are rounded to bfloat16 once per call,
    /// each tile's packed queries (times `scale`) and its softmax rows once per tile. The scores and
    /// contexts are fp32, the mask and the softmax are the fp32 path's own (`softmaxCausalRows`).
    /// - Throws: `BF16GEMM.Failure` when oneDNN fails a product (the caller computes in fp32 instead).
    /// - Precondition: the shapes `callAsFunction` checks before calling it, and `q.rows > 0`.
    func bf16Attention(q: Matrix, k: Matrix, v: Matrix) throws(BF16GEMM.Failure) -> Matrix {
        let length = q.rows
        let d = headDim
        let group = heads / kvHeads
        let tileCapacity = group * min(length, Self.tileRows)
        let (qWidth, kvWidth) = (heads * d, kvHeads * d)
        // One thread on a pipeline worker, every core for a lone sequence (as `Linear`).
        let threads = Parallel.isInline ? 1 : Linalg.blasThreads
        // Scratch, none read before written: fp32 packed queries, scores (leading dimension L) and
        // contexts; bfloat16 keys and values of one key/value head, packed queries and probabilities.
        let packedQ = UnsafeMutableBufferPointer<Float>.allocate(capacity: tileCapacity * d)
        let packedO = UnsafeMutablePointer<Float>.allocate(capacity: tileCapacity * d)
        let scores = UnsafeMutableBufferPointer<Float>.allocate(capacity: tileCapacity * length)
        let keys16 = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: length * d)
        let values16 = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: length * d)
        let queries16 = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: tileCapacity * d)
        let probabilities16 = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: tileCapacity * length)
        defer {
            packedQ.deallocate()
            packedO.deallocate()
            scores.deallocate()
            for buffer in [keys16, values16, queries16, probabilities16] { buffer.deallocate() }
        }
        /// `count` fp32 values at `source` into bfloat16 at `target` (round to nearest even).
        func round(_ source: UnsafePointer<Float>, _ count: Int, into target: UnsafeMutablePointer<UInt16>) {
            FloatConversion.f32ToBF16(
                UnsafeBufferPointer(start: source, count: count),
                into: UnsafeMutableBufferPointer(start: target, count: count)
            )
        }
        var failure: BF16GEMM.Failure?
        let out = Matrix(rows: length, columns: qWidth) { out in
            withBaseAddresses([q.storage, k.storage, v.storage]) { p in
                for kv in 0..<kvHeads where failure == nil {
                    for t in 0..<length {
                        round(p[1] + t * kvWidth + kv * d, d, into: keys16.baseAddress! + t * d)
                        round(p[2] + t * kvWidth + kv * d, d, into: values16.baseAddress! + t * d)
                    }
                    for tile in Self.tiles(length: length) where failure == nil {
                        let (rows, visible) = (tile.count, tile.upperBound)
                        for g in 0..<group {
                            let head = kv * group + g
                            for t in 0..<rows {
                                let row = packedQ.baseAddress! + (g * rows + t) * d
                                let query = p[0] + (tile.lowerBound + t) * qWidth + head * d
                                for j in 0..<d { row[j] = query[j] * scale }
                            }
                        }
                        round(packedQ.baseAddress!, group * rows * d, into: queries16.baseAddress!)
                        do throws(BF16GEMM.Failure) {
                            // S = (scale · Q_packed) K_kv[0..<r1]ᵀ: (G·T, d) × (d, r1), leading dimension L.
                            try BF16GEMM.product(
                                m: group * rows,
                                n: visible,
                                k: d,
                                a: queries16.baseAddress!,
                                b: keys16.baseAddress!,
                                transposeB: true,
                                c: scores.baseAddress!,
                                ldc: length,
                                threads: threads
                            )
                            softmaxCausalRows(scores, tile: tile, group: group, stride: length)
                            for r in 0..<(group * rows) {
                                round(
                                    scores.baseAddress! + r * length,
                                    visible,
                                    into: probabilities16.baseAddress! + r * visible
                                )
                            }
                            // O_packed = P V_kv[0..<r1]: (G·T, r1) × (r1, d).
                            try BF16GEMM.product(
                                m: group * rows,
                                n: d,
                                k: visible,
                                a: probabilities16.baseAddress!,
                                b: values16.baseAddress!,
                                transposeB: false,
                                c: packedO,
                                ldc: d,
                                threads: threads
                            )
                        } catch {
                            failure = error
                            break
                        }
                        for g in 0..<group {
                            let head = kv * group + g
                            for t in 0..<rows {
                                (out.baseAddress! + (tile.lowerBound + t) * qWidth + head * d)
                                    .update(from: packedO + (g * rows + t) * d, count: d)
                            }
                        }
                    }
                }
            }
        }
        if let failure { throw failure }
        return out
    }
}
