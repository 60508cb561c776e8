// SPDX-License-Identifier: Apache-2.0
// SHA-256 (swift-crypto behind DSnoTSupport) against the FIPS 180-4 / NIST example vectors.

import DSnoTSupport
import Testing

@Suite struct SHA256Tests {
    // NIST CSRC "Examples with intermediate values" for SHA-256.
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        (
            "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        ),
        (
            "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
        ),
    ])
    func matchesFIPSVectors(message: String, expected: String) {
        #expect(SHA256.hash(Array(message.utf8)).hex == expected)
        #expect(SHA256.hex(Array(message.utf8)) == expected)
    }

    @Test func millionAsMatchesFIPSVector() {
        let digest = SHA256.hash([UInt8](repeating: 0x61, count: 1_000_000))
        #expect(digest.hex == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        #expect(digest.bytes.count == 32)
    }

    @Test func chunkedUpdatesEqualOneShot() {
        var state: UInt64 = 7
        let data = (0..<10_000).map { _ -> UInt8 in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        var hasher = SHA256()
        var offset = 0
        for size in [1, 63, 64, 65, 127, 1000, 3] + [Int](repeating: 500, count: 20) where offset < data.count {
            let end = min(data.count, offset + size)
            if size % 2 == 0 {
                data[offset..<end].withUnsafeBytes { hasher.update($0) }
            } else {
                hasher.update(Array(data[offset..<end]))
            }
            offset = end
        }
        hasher.update(Array(data[offset...]))
        #expect(hasher.finalize() == SHA256.hash(data))
    }
}
