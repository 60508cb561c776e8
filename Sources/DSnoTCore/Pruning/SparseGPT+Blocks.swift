// SPDX-License-Identifier: Apache-2.0
// SparseGPT+Blocks: the column-block loop of `fasterprune` (mask selection, OBS update, lazy sgemm update).
// Shapes: W (out, in) row-major; U (in, in) upper; a block is W[:, i1:i2] copied to W1 (out, width).

import DSnoTSupport

extension SparseGPT {
    /// The block loop of `fasterprune`, given `U (in, in)`. Rows are independent inside a block, so
    /// they run in parallel (the result does not depend on the chunking); the lazy update of the
    /// later columns is one `sgemm`.
    static func pruneBlocks(
        weights w: inout Matrix,
        mask: inout PruneMask,
        factor u: [Float],
        pattern: SparsityPattern,
        blockSize: Int
    ) {
        let rows = w.rows
        let n = w.columns
        var i1 = 0
        while i1 < n {
            let i2 = min(i1 + blockSize, n)
            let width = i2 - i1
            // W1 (rows, width): copy of the block; Err (rows, width); diag(U1) (width).
            var w1 = [Float](repeating: 0, count: rows * width)
            for r in 0..<rows { for c in 0..<width { w1[r * width + c] = w[r, i1 + c] } }
            var err = [Float](repeating: 0, count: rows * width)
            var diag = [Float](repeating: 0, count: width)
            for c in 0..<width { diag[c] = u[(i1 + c) * n + i1 + c] }
            var blockMask =
                pattern.group == nil
                ? blockThresholdMask(w1: w1, diag: diag, ratio: pattern.ratio)
                : [UInt8](repeating: 0, count: rows * width)
            let group = pattern.group
            withBaseAddresses([u, diag]) { p in
                let (u1, d) = (p[0] + i1 * n + i1, p[1])
                w1.withUnsafeMutableBufferPointer { w1p in
                    err.withUnsafeMutableBufferPointer { ep in
                        blockMask.withUnsafeMutableBufferPointer { mp in
                            let (w1b, eb, mb) = (w1p.baseAddress!, ep.baseAddress!, mp.baseAddress!)
                            // Each row's OBS update costs O(width²).
                            Parallel.forEachChunk(0..<rows, units: rows * width * width) { range in
                                for r in range {
                                    pruneBlockRow(
                                        w1b + r * width,
                                        mask: mb + r * width,
                                        err: eb + r * width,
                                        width: width,
                                        diag: d,
                                        u1: u1,
                                        ldu: n,
                                        group: group
                                    )
                                }
                            }
                        }
                    }
                }
            }
            // W[:, i1:i2] ← Q (held in W1: each column was overwritten by q when it was visited).
            for r in 0..<rows {
                for c in 0..<width {
                    w[r, i1 + c] = w1[r * width + c]
                    if blockMask[r * width + c] != 0 { mask[r, i1 + c] = true }
                }
            }
            // W[:, i2:] -= Err (rows, width) · U[i1:i2, i2:] (width, n − i2).
            if i2 < n {
                err.withUnsafeBufferPointer { ep in
                    u.withUnsafeBufferPointer { up in
                        w.storage.withUnsafeMutableBufferPointer { wp in
                            Linalg.gemm(
                                m: rows,
                                n: n - i2,
                                k: width,
                                alpha: -1,
                                a: ep.baseAddress,
                                lda: width,
                                b: up.baseAddress! + i1 * n + i2,
                                ldb: n,
                                beta: 1,
                                c: wp.baseAddress! + i2,
                                ldc: n
                            )
                        }
                    }
                }
            }
            i1 = i2
        }
    }

    /// Unstructured: one threshold over the whole block, chosen from the weights as updated by
    /// earlier blocks: `score = W1² / diag(U1)²`, prune `score ≤ sorted(score)[floor(numel·s)]`.
    static func blockThresholdMask(w1: [Float], diag: [Float], ratio: Double) -> [UInt8] {
        let width = diag.count
        var score = [Float](repeating: 0, count: w1.count)
        for i in 0..<w1.count {
            let x = w1[i]
            let d = diag[i % width]
            score[i] = (x * x) / (d * d)
        }
        var mask = [UInt8](repeating: 0, count: w1.count)
        let index = Int((Double(score.count) * ratio).rounded(.down))
        score.withUnsafeBufferPointer { sp in
            mask.withUnsafeMutableBufferPointer { RadixSelect.markAtMostSortedIndex(sp, index: index, into: $0) }
        }
        return mask
    }

    /// One row of one block: for each column `c`, (N:M: pick the group's N smallest `W1²/d²` from
    /// the row as updated so far), `q` = masked `w`, `err = (w − q)/U1[c,c]`, and the OBS update
    /// `W1[c:] -= err · U1[c, c:]`. On return the row holds `Q` and `err` holds `Err`.
    @inline(__always)
    static func pruneBlockRow(
        _ row: UnsafeMutablePointer<Float>,
        mask: UnsafeMutablePointer<UInt8>,
        err: UnsafeMutablePointer<Float>,
        width: Int,
        diag: UnsafePointer<Float>,
        u1: UnsafePointer<Float>,
        ldu: Int,
        group: (n: Int, m: Int)?
    ) {
        var idx: (Int, Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0, 0)
        var score: (Float, Float, Float, Float, Float, Float, Float, Float) = (0, 0, 0, 0, 0, 0, 0, 0)
        for c in 0..<width {
            if let g = group, c % g.m == 0 {
                withUnsafeMutableBytes(of: &idx) { ib in
                    withUnsafeMutableBytes(of: &score) { sb in
                        let order = ib.bindMemory(to: Int.self)
                        let s = sb.bindMemory(to: Float.self)
                        for k in 0..<g.m {
                            let x = row[c + k]
                            s[k] = (x * x) / (diag[c + k] * diag[c + k])
                        }
                        // Stable insertion sort of the group's positions by score (m ≤ 8).
                        for k in 0..<g.m {
                            var p = k
                            while p > 0 && s[order[p - 1]] > s[k] {
                                order[p] = order[p - 1]
                                p -= 1
                            }
                            order[p] = k
                        }
                        for k in 0..<g.n { mask[c + order[k]] = 1 }
                    }
                }
            }
            let x = row[c]
            let q: Float = mask[c] != 0 ? 0 : x
            let e = (x - q) / diag[c]
            let uRow = u1 + c * ldu
            for k in c..<width { row[k] -= e * uRow[k] }
            row[c] = q
            err[c] = e
        }
    }
}
