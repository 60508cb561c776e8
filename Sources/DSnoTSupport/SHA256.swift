// SPDX-License-Identifier: Apache-2.0
// SHA256: the project's one SHA-256, swift-crypto's, behind the small API the formats and ids use.

import Crypto

/// Streaming SHA-256 (FIPS 180-4), computed by swift-crypto; this module is the one place that
/// knows the hashing library. Used for output manifests, recipe hashes, input fingerprints, job ids.
///
/// ```swift
/// var hasher = SHA256()
/// hasher.update(chunk)
/// let digest = hasher.finalize()          // digest.hex: 64 lower-case hex digits
/// let id = SHA256.hex(Array("key".utf8))
/// ```
public struct SHA256 {
    private var hasher = Crypto.SHA256()

    public init() {}

    /// Hashes `bytes`.
    public mutating func update(_ bytes: [UInt8]) { hasher.update(data: bytes) }

    /// Hashes `bytes`.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }

    /// The digest of everything hashed so far.
    public mutating func finalize() -> Digest { Digest(bytes: Array(hasher.finalize())) }

    /// The digest of `bytes`.
    public static func hash(_ bytes: [UInt8]) -> Digest { Digest(bytes: Array(Crypto.SHA256.hash(data: bytes))) }

    /// The digest of `message` in lower-case hex.
    public static func hex(_ message: [UInt8]) -> String { hash(message).hex }

    /// A 32-byte SHA-256 digest.
    public struct Digest: Sendable, Equatable, Hashable {
        /// The 32 bytes.
        public let bytes: [UInt8]

        /// Lower-case hex, 64 characters.
        public var hex: String {
            let digits = Array("0123456789abcdef".utf8)
            var out: [UInt8] = []
            out.reserveCapacity(64)
            for byte in bytes {
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0xF)])
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
