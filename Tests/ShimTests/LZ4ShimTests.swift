// SPDX-License-Identifier: Apache-2.0
// Smoke test of the CLZ4 shim: a frame written through liblz4 is accepted and restored by the lz4 CLI.

import CLZ4
import DSnoTTestSupport
import Foundation
import Testing

@Suite struct LZ4ShimTests {
    @Test func frameWrittenThroughShimRoundTripsThroughLZ4CLI() throws {
        // 3 MiB of compressible but not trivial data.
        var state: UInt32 = 12345
        let input = (0..<(3 << 20)).map { i -> UInt8 in
            state = state &* 1_103_515_245 &+ 12345
            return i % 7 == 0 ? UInt8(truncatingIfNeeded: state >> 16) : UInt8(i % 251 / 16)
        }
        var prefs = LZ4F_preferences_t()
        prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        prefs.frameInfo.blockMode = LZ4F_blockIndependent
        prefs.frameInfo.blockSizeID = LZ4F_max4MB
        prefs.frameInfo.contentSize = UInt64(input.count)
        let bound = LZ4F_compressFrameBound(input.count, &prefs)
        var output = [UInt8](repeating: 0, count: bound)
        let written = LZ4F_compressFrame(&output, bound, input, input.count, &prefs)
        #expect(LZ4F_isError(written) == 0)
        #expect(written < input.count)

        let dir = try TemporaryDirectory("lz4shim")
        defer { dir.remove() }
        let framePath = dir.file("data.lz4")
        let restoredPath = dir.file("data")
        try Data(output[0..<written]).write(to: URL(fileURLWithPath: framePath))

        #expect(try Self.run("lz4", "-t", framePath) == 0)
        #expect(try Self.run("lz4", "-d", "-f", "-q", framePath, restoredPath) == 0)
        let restored = try Data(contentsOf: URL(fileURLWithPath: restoredPath))
        #expect(restored == Data(input))
    }

    static func run(_ arguments: String...) throws -> Int32 {
        try ExternalProcess.run(command: arguments).status
    }
}
