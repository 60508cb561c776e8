// SPDX-License-Identifier: Apache-2.0
// The watcher's checkpoint signature comes from plain `lstat` calls; it must spell sizes and
// modification times exactly as the FileManager-based signature did, or every checkpoint already
// in an inbox would get a new fingerprint (and be pruned again) after an upgrade.

import DSnoTDaemon
import DSnoTTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct CheckpointSignatureTests {
    /// The signature as it was computed before (FileManager attributes, which also resolve owner names).
    static func fileManagerSignature(_ directory: URL) -> String {
        var text = directory.standardizedFileURL.path + "\u{0}"
        let manager = FileManager.default
        for name in ((try? manager.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
        where !CheckpointInspector.isIgnored(name) {
            let attributes = try? manager.attributesOfItem(atPath: directory.appendingPathComponent(name).path)
            let size = (attributes?[.size] as? NSNumber)?.intValue ?? -1
            let mtime = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            text += "\(name)\u{0}\(size)\u{0}\(mtime)\n"
        }
        return text
    }

    /// Sets `path`'s modification time (without following a symbolic link).
    static func setModified(_ path: String, seconds: Int, nanoseconds: Int) throws {
        let times = [
            timespec(tv_sec: seconds, tv_nsec: nanoseconds), timespec(tv_sec: seconds, tv_nsec: nanoseconds),
        ]
        let result = times.withUnsafeBufferPointer { utimensat(AT_FDCWD, path, $0.baseAddress, AT_SYMLINK_NOFOLLOW) }
        #expect(result == 0, "utimensat \(path): errno \(errno)")
    }

    @Test func lstatSignatureSpellsTimesAsFileManagerDid() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        // Nanosecond parts that round differently through Double, whole seconds, old and far-future times.
        var times: [(Int, Int)] = [
            (1_764_870_000, 123_456_789), (1_764_870_000, 999_999_999), (1_764_870_000, 1), (1_764_870_000, 0),
            (0, 500_000_000), (946_684_800, 333_333_333), (4_102_444_800, 987_654_321), (1_700_000_000, 100_000_000),
        ]
        // Plus pseudo-random ones (a fixed LCG): every rounding path of the Double construction.
        var state: UInt64 = 0x5DEE_CE66
        for _ in 0..<48 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            times.append((1_600_000_000 + Int(state >> 40) % 200_000_000, Int(state >> 8) % 1_000_000_000))
        }
        for (i, time) in times.enumerated() {
            let path = try directory.write(
                "shard-\(i).safetensors",
                Array(repeating: UInt8(truncatingIfNeeded: i), count: 17 * (i % 9))
            )
            try Self.setModified(path, seconds: time.0, nanoseconds: time.1)
        }
        try FileManager.default.createSymbolicLink(
            atPath: directory.file("link"),
            withDestinationPath: "shard-1.safetensors"
        )
        try Self.setModified(directory.file("link"), seconds: 1_764_870_001, nanoseconds: 777_777_777)
        try FileManager.default.createDirectory(atPath: directory.file("sub"), withIntermediateDirectories: false)
        try Self.setModified(directory.file("sub"), seconds: 1_764_870_002, nanoseconds: 42)
        _ = try directory.write(".hidden", [1, 2, 3])

        let url = URL(fileURLWithPath: directory.path)
        let ours = CheckpointInspector.signature(url).replacingOccurrences(of: "\u{0}", with: " ")
        let theirs = Self.fileManagerSignature(url).replacingOccurrences(of: "\u{0}", with: " ")
        #expect(ours == theirs)
        // The link is described by itself (lstat), not by its target.
        #expect(CheckpointInspector.signature(url).contains("link\u{0}19\u{0}"))

        let newest = try #require(CheckpointInspector.lastModified(url))
        #expect(newest.timeIntervalSince1970 >= 4_102_444_800)
    }
}
