// SPDX-License-Identifier: Apache-2.0
// RadixSelect: the k-th smallest Float of a large array in two histogram passes, without sorting or copying it.

/// Order statistics over Float keys (through `StableArgsort.orderedBits`, so `-0.0 == +0.0`, NaN
/// last), for whole-matrix thresholds where a full sort of `C_out · C_in` values would need
/// gigabytes of scratch on 7B-class layers.
enum RadixSelect {
    /// The ordered key of the `k`-th smallest value (0-based) of `values[0..<count]`.
    /// - Precondition: `0 ≤ k < count`.
    static func kthSmallestKey(_ values: UnsafeBufferPointer<Float>, k: Int) -> UInt32 {
        precondition(k >= 0 && k < values.count, "RadixSelect: k out of range")
        // Pass 1: histogram of the high 16 bits.
        var high = [Int](repeating: 0, count: 65536)
        for v in values { high[Int(StableArgsort.orderedBits(v) >> 16)] += 1 }
        var rank = k
        var bin = 0
        while rank >= high[bin] {
            rank -= high[bin]
            bin += 1
        }
        // Pass 2: histogram of the low 16 bits inside that bin.
        var low = [Int](repeating: 0, count: 65536)
        let top = UInt32(bin)
        for v in values {
            let key = StableArgsort.orderedBits(v)
            if key >> 16 == top { low[Int(key & 0xFFFF)] += 1 }
        }
        var lowBin = 0
        while rank >= low[lowBin] {
            rank -= low[lowBin]
            lowBin += 1
        }
        return top << 16 | UInt32(lowBin)
    }

    /// Marks in `mask` the `k` smallest values (ties by index), as a stable sort followed by taking
    /// the first `k` would.
    static func markSmallest(
        _ values: UnsafeBufferPointer<Float>,
        count k: Int,
        into mask: UnsafeMutableBufferPointer<UInt8>
    ) {
        guard k > 0 else { return }
        guard k < values.count else {
            for i in 0..<values.count { mask[i] = 1 }
            return
        }
        let pivot = kthSmallestKey(values, k: k - 1)
        var below = 0
        for v in values where StableArgsort.orderedBits(v) < pivot { below += 1 }
        var tiesLeft = k - below
        for i in 0..<values.count {
            let key = StableArgsort.orderedBits(values[i])
            if key < pivot {
                mask[i] = 1
            } else if key == pivot, tiesLeft > 0 {
                mask[i] = 1
                tiesLeft -= 1
            }
        }
    }

    /// Marks every value `≤` the value at sorted index `index` (the reference's threshold rule).
    static func markAtMostSortedIndex(
        _ values: UnsafeBufferPointer<Float>,
        index: Int,
        into mask: UnsafeMutableBufferPointer<UInt8>
    ) {
        guard index < values.count else { return }
        let pivot = kthSmallestKey(values, k: index)
        for i in 0..<values.count where StableArgsort.orderedBits(values[i]) <= pivot { mask[i] = 1 }
    }
}
