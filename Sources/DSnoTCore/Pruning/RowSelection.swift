// SPDX-License-Identifier: Apache-2.0
// RowSelection: the shared "prune the smallest scores" kernels (per row, per N:M group), parallel over rows.
// Shapes: scores (out, in) row-major, like the weight they rank.

import DSnoTSupport

/// Mask kernels shared by the score-based pruners (magnitude, Wanda, DSnoT's base mask).
enum RowSelection {
    /// Per row, prune the `count` columns with the smallest score (as a stable ascending sort would: ties by index).
    static func smallestPerRow(scores: Matrix, count: Int) -> PruneMask {
        var mask = PruneMask(rows: scores.rows, columns: scores.columns)
        let c = scores.columns
        guard count > 0, c > 0 else { return mask }
        scores.storage.withUnsafeBufferPointer { s in
            mask.bytes.withUnsafeMutableBufferPointer { m in
                let sBase = s.baseAddress!
                let mBase = m.baseAddress!
                Parallel.forEachChunk(0..<scores.rows, units: scores.count) { range in
                    // Only the set of the `count` smallest (score, index) pairs matters: quickselect, O(C_in).
                    let scratch = UnsafeMutablePointer<UInt64>.allocate(capacity: c)
                    defer { scratch.deallocate() }
                    let k = min(count, c)
                    for r in range {
                        for j in 0..<c { scratch[j] = StableArgsort.pack(sBase[r * c + j], j) }
                        StableArgsort.select(scratch, count: c, k: k)
                        for i in 0..<k { mBase[r * c + Int(StableArgsort.index(scratch[i]))] = 1 }
                    }
                }
            }
        }
        return mask
    }

    /// Per row and aligned group of `m` columns, prune the `n` smallest scores (ties by index).
    static func smallestPerGroup(scores: Matrix, n: Int, m: Int) -> PruneMask {
        precondition(m > 0 && n >= 0 && n <= m && scores.columns % m == 0, "smallestPerGroup: bad N:M for width")
        var mask = PruneMask(rows: scores.rows, columns: scores.columns)
        let c = scores.columns
        scores.storage.withUnsafeBufferPointer { s in
            mask.bytes.withUnsafeMutableBufferPointer { mb in
                let sBase = s.baseAddress!
                let mBase = mb.baseAddress!
                Parallel.forEachChunk(0..<scores.rows, units: scores.count) { range in
                    var idx = [Int](repeating: 0, count: m)
                    for r in range {
                        var g = 0
                        while g < c {
                            let base = r * c + g
                            // Insertion sort of the group's indices by (score, index): m ≤ 8.
                            for i in 0..<m {
                                idx[i] = i
                                var k = i
                                while k > 0 && sBase[base + idx[k - 1]] > sBase[base + i] {
                                    idx[k] = idx[k - 1]
                                    k -= 1
                                }
                                idx[k] = i
                            }
                            for i in 0..<n { mBase[base + idx[i]] = 1 }
                            g += m
                        }
                    }
                }
            }
        }
        return mask
    }
}
