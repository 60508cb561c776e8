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
        _ keys: UnsafePointer<Float>, count: Int, scratch: UnsafeMutablePointer<UInt64>,
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
}
