// SPDX-License-Identifier: Apache-2.0
// StableArgsort: ascending argsort of Float keys, ties by index, via packed 64-bit sort keys.

/// Stable ascending argsort (ties keep index order), as `torch.sort(stable=True)`.
///
/// Each `(key, index)` pair is packed into one `UInt64` whose unsigned order equals the order of
/// `(key, index)`, so an ordinary (unstable, fast) sort yields a stable result. `-0.0` sorts with
/// `+0.0` by index, as in torch; NaN sorts last.
enum StableArgsort {
    /// Order-preserving map of a Float to UInt32 (`-0.0` and `+0.0` map to the same value).
    @inline(__always)
    static func orderedBits(_ x: Float) -> UInt32 {
        if x.isNaN { return UInt32.max }
        let v = x == 0 ? 0 : x  // fold -0.0 into +0.0
        let b = v.bitPattern
        return (b & 0x8000_0000) != 0 ? ~b : b | 0x8000_0000
    }

    /// Indices into `keys[0..<count]` in stable ascending order, written into `out`.
    /// - Parameters:
    ///   - keys: `count` keys.
    ///   - scratch: at least `count` UInt64 of scratch space.
    ///   - out: receives `count` indices.
    static func argsort(
        _ keys: UnsafePointer<Float>,
        count: Int,
        scratch: UnsafeMutablePointer<UInt64>,
        into out: UnsafeMutablePointer<Int32>
    ) {
        for i in 0..<count { scratch[i] = UInt64(orderedBits(keys[i])) << 32 | UInt64(UInt32(i)) }
        var buffer = UnsafeMutableBufferPointer(start: scratch, count: count)
        buffer.sort()
        for i in 0..<count { out[i] = Int32(truncatingIfNeeded: scratch[i] & 0xFFFF_FFFF) }
    }

    /// Convenience over arrays.
    static func argsort(_ keys: [Float]) -> [Int32] {
        var scratch = [UInt64](repeating: 0, count: keys.count)
        var out = [Int32](repeating: 0, count: keys.count)
        keys.withUnsafeBufferPointer { k in
            scratch.withUnsafeMutableBufferPointer { s in
                out.withUnsafeMutableBufferPointer { o in
                    if let kb = k.baseAddress, let sb = s.baseAddress, let ob = o.baseAddress {
                        argsort(kb, count: keys.count, scratch: sb, into: ob)
                    }
                }
            }
        }
        return out
    }

    /// `(key, index)` packed so that unsigned order = ascending key, then ascending index.
    @inline(__always)
    static func pack(_ key: Float, _ index: Int) -> UInt64 { UInt64(orderedBits(key)) << 32 | UInt64(UInt32(index)) }

    /// `(key, index)` packed so that unsigned order = descending key, then descending index (the
    /// order in which a cursor walking a stable ascending sort from its end meets the entries).
    @inline(__always)
    static func packDescending(_ key: Float, _ index: Int) -> UInt64 {
        UInt64(~orderedBits(key)) << 32 | UInt64(~UInt32(index))
    }

    /// The index stored by `pack` / `packDescending`.
    @inline(__always)
    static func index(_ packed: UInt64, descending: Bool = false) -> Int32 {
        let low = UInt32(truncatingIfNeeded: packed)
        return Int32(bitPattern: descending ? ~low : low)
    }

    /// Rearranges `a[0..<count]` so that `a[0..<k]` holds the `k` smallest values (in any order)
    /// and everything after is larger (quickselect, median of three; O(count) on average). Packed
    /// keys are unique, so the resulting set does not depend on pivot choices.
    static func select(_ a: UnsafeMutablePointer<UInt64>, count: Int, k: Int) {
        guard k > 0, k < count else { return }
        var lo = 0
        var hi = count - 1
        let target = k - 1  // position whose final value bounds the prefix
        while hi > lo {
            let mid = lo + (hi - lo) / 2
            if a[mid] < a[lo] { a.swapAt(mid, lo) }
            if a[hi] < a[lo] { a.swapAt(hi, lo) }
            if a[hi] < a[mid] { a.swapAt(hi, mid) }
            let pivot = a[mid]
            var i = lo
            var j = hi
            while i <= j {
                while a[i] < pivot { i += 1 }
                while a[j] > pivot { j -= 1 }
                if i <= j {
                    a.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if target <= j {
                hi = j
            } else if target >= i {
                lo = i
            } else {
                return
            }
        }
    }

    /// Sorts the `length` smallest of `a[0..<count]` into `a[0..<min(length, count)]`; returns that length.
    static func sortedPrefix(_ a: UnsafeMutablePointer<UInt64>, count: Int, length: Int) -> Int {
        let m = min(length, count)
        guard m > 0 else { return 0 }
        select(a, count: count, k: m)
        var prefix = UnsafeMutableBufferPointer(start: a, count: m)
        prefix.sort()
        return m
    }
}

extension UnsafeMutablePointer where Pointee == UInt64 {
    @inline(__always)
    fileprivate func swapAt(_ i: Int, _ j: Int) {
        let t = self[i]
        self[i] = self[j]
        self[j] = t
    }
}
