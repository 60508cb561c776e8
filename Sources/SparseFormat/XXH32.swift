// SPDX-License-Identifier: Apache-2.0
// XXH32: the LZ4 frame format's checksum (xxHash, 32-bit, seed 0), streaming.

/// XXH32 as the LZ4 frame format specifies it (content checksum, header checksum): streaming, any
/// chunking gives the same digest. liblz4 keeps its xxHash private, so the parallel frame writer and
/// reader (`LZ4FrameWriter`, `LZ4FrameReader`), which compress and decompress blocks themselves,
/// compute it here. Reference: Cyan4973/xxHash `xxhash.h` (XXH32); checked against liblz4's own
/// frames (`LZ4FrameTests`) and `lz4 -t`.
struct XXH32 {
    static let p1: UInt32 = 2_654_435_761
    static let p2: UInt32 = 2_246_822_519
    static let p3: UInt32 = 3_266_489_917
    static let p4: UInt32 = 668_265_263
    static let p5: UInt32 = 374_761_393

    private var v1: UInt32
    private var v2: UInt32
    private var v3: UInt32
    private var v4: UInt32
    private var total: UInt64 = 0
    /// Bytes not yet consumed as a 16-byte stripe.
    private var pending: (UInt64, UInt64) = (0, 0)
    private var pendingCount = 0
    private let seed: UInt32

    init(seed: UInt32 = 0) {
        self.seed = seed
        v1 = seed &+ Self.p1 &+ Self.p2
        v2 = seed &+ Self.p2
        v3 = seed
        v4 = seed &- Self.p1
    }

    /// The digest of `bytes` (seed 0).
    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var hasher = XXH32()
        hasher.update(bytes)
        return hasher.finalize()
    }

    /// The digest of `bytes` (seed 0).
    static func hash(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { hash($0) } }

    @inline(__always)
    private static func round(_ acc: UInt32, _ input: UInt32) -> UInt32 {
        let a = acc &+ input &* p2
        return ((a << 13) | (a >> 19)) &* p1
    }

    @inline(__always)
    private static func rotl(_ x: UInt32, _ r: UInt32) -> UInt32 { (x << r) | (x >> (32 - r)) }

    /// Hashes `bytes`.
    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        total += UInt64(bytes.count)
        var offset = 0
        if pendingCount > 0 {
            let take = min(16 - pendingCount, bytes.count)
            withUnsafeMutableBytes(of: &pending) { stripe in
                stripe.baseAddress!.advanced(by: pendingCount).copyMemory(from: base, byteCount: take)
            }
            pendingCount += take
            offset = take
            guard pendingCount == 16 else { return }
            withUnsafeBytes(of: pending) { consume(stripes: $0.baseAddress!, count: 1) }
            pendingCount = 0
        }
        let stripes = (bytes.count - offset) / 16
        if stripes > 0 {
            consume(stripes: base + offset, count: stripes)
            offset += stripes * 16
        }
        let rest = bytes.count - offset
        if rest > 0 {
            withUnsafeMutableBytes(of: &pending) { $0.baseAddress!.copyMemory(from: base + offset, byteCount: rest) }
            pendingCount = rest
        }
    }

    private mutating func consume(stripes base: UnsafeRawPointer, count: Int) {
        var (a, b, c, d) = (v1, v2, v3, v4)
        var p = base
        for _ in 0..<count {
            a = Self.round(a, UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
            b = Self.round(b, UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
            c = Self.round(c, UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self)))
            d = Self.round(d, UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 12, as: UInt32.self)))
            p += 16
        }
        (v1, v2, v3, v4) = (a, b, c, d)
    }

    /// The digest of everything hashed so far.
    func finalize() -> UInt32 {
        var h: UInt32
        if total >= 16 {
            h = Self.rotl(v1, 1) &+ Self.rotl(v2, 7) &+ Self.rotl(v3, 12) &+ Self.rotl(v4, 18)
        } else {
            h = seed &+ Self.p5
        }
        h = h &+ UInt32(truncatingIfNeeded: total)
        withUnsafeBytes(of: pending) { stripe in
            var i = 0
            while i + 4 <= pendingCount {
                h =
                    Self.rotl(
                        h &+ UInt32(littleEndian: stripe.loadUnaligned(fromByteOffset: i, as: UInt32.self)) &* Self.p3,
                        17
                    ) &* Self.p4
                i += 4
            }
            while i < pendingCount {
                h = Self.rotl(h &+ UInt32(stripe[i]) &* Self.p5, 11) &* Self.p1
                i += 1
            }
        }
        h ^= h >> 15
        h = h &* Self.p2
        h ^= h >> 13
        h = h &* Self.p3
        h ^= h >> 16
        return h
    }
}
