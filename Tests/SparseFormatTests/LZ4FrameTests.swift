// SPDX-License-Identifier: Apache-2.0
// LZ4 frames: interop with the lz4 CLI both ways, bounded streaming, and a table of corrupt frames.

import DSnoTSupport
import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@testable import SparseFormat

@Suite struct LZ4FrameTests {
    /// 9 MiB + 5 bytes: three 4 MiB blocks, the last one partial; compressible but not trivial.
    static func sample() -> [UInt8] {
        var factory = TensorFactory(seed: 11)
        let count = (9 << 20) + 5
        var bytes = [UInt8](repeating: 0, count: count)
        for i in 0..<count {
            bytes[i] = i % 5 == 0 ? UInt8(truncatingIfNeeded: factory.next()) : UInt8(i % 199 / 8)
        }
        return bytes
    }

    static func writeFrame(_ data: [UInt8], to path: String, level: LZ4Level = .fast, sliceSize: Int = 300_001) throws {
        let writer = try LZ4FrameWriter(sink: FileSink(creating: path), contentSize: UInt64(data.count), level: level)
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let end = min(raw.count, offset + sliceSize)
                try writer.write(UnsafeRawBufferPointer(rebasing: raw[offset..<end]))
                offset = end
            }
        }
        try writer.finish().syncAndClose()
    }

    @Test(arguments: [LZ4Level.fast, .hc(9)])
    func frameIsValidForLZ4CLIAndRestoresByteForByte(level: LZ4Level) throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let data = Self.sample()
        try Self.writeFrame(data, to: dir.file("data.lz4"), level: level)
        #expect(try ExternalProcess.run(command: ["lz4", "-t", "-q", dir.file("data.lz4")]).status == 0)
        #expect(
            try ExternalProcess.run(command: ["lz4", "-d", "-q", dir.file("data.lz4"), dir.file("data")]).status == 0
        )
        #expect(try Tool.read(dir.file("data")) == data)
        // `lz4 --list` shows the recorded content size, the 4 MiB block size and the checksum flag.
        let listing = try ExternalProcess.run(command: ["lz4", "--list", "-v", dir.file("data.lz4")]).output
        #expect(listing.contains("B7"))
        #expect(listing.contains("XXH32"))
        #expect(try FileIO.fileSize(dir.file("data.lz4")) < UInt64(data.count))
    }

    /// The parallel writer's frame is byte for byte the frame of liblz4's streaming API as the
    /// `lz4` CLI drives it (same block size, independent blocks, content size and checksum), for the
    /// fast, accelerated and HC compressors, and its SHA-256 is that of the file (`sha256sum`).
    @Test(arguments: [(LZ4Level.fast, "-1"), (.accelerated(3), "--fast=3"), (.hc(9), "-9")])
    func frameEqualsTheCLIsFrameByteForByte(level: LZ4Level, flag: String) throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let data = Self.sample() + [UInt8](repeating: 7, count: 3 << 20)
        try Tool.write(dir.file("data"), data)
        let status = try ExternalProcess.run(command: [
            "lz4", "-q", flag, "-B7", "-BI", "--content-size", dir.file("data"), dir.file("cli.lz4"),
        ]).status
        #expect(status == 0)
        let writer = try LZ4FrameWriter(
            sink: FileSink(creating: dir.file("ours.lz4")),
            contentSize: UInt64(data.count),
            level: level
        )
        try data.withUnsafeBytes { try writer.write($0) }
        try writer.finish().close()
        #expect(try Tool.read(dir.file("ours.lz4")) == Tool.read(dir.file("cli.lz4")))
        let (_, sums) = try ExternalProcess.run(command: ["sha256sum", dir.file("ours.lz4")])
        #expect(sums.hasPrefix(try #require(writer.digest).hex))
    }

    /// XXH32 of every length 0…40 and of a long input fed in uneven slices equals the checksum
    /// the lz4 CLI stores at the end of a frame of the same bytes.
    @Test func xxh32EqualsTheCLIsContentChecksum() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let sample = Self.sample()
        for count in Array(0...40) + [sample.count] {
            let data = Array(sample.prefix(count))
            try Tool.write(dir.file("d\(count)"), data)
            let status = try ExternalProcess.run(command: [
                "lz4", "-q", "-f", "-BI", "--content-size", dir.file("d\(count)"), dir.file("d.lz4"),
            ]).status
            #expect(status == 0)
            let frame = try Tool.read(dir.file("d.lz4"))
            let stored = frame.suffix(4).reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            var hasher = XXH32()
            data.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let end = min(raw.count, offset + 1 + offset % 37 * 1013)
                    hasher.update(UnsafeRawBufferPointer(rebasing: raw[offset..<end]))
                    offset = end
                }
            }
            #expect(hasher.finalize() == stored, "length \(count)")
            #expect(XXH32.hash(data) == stored)
        }
    }

    @Test func readerRestoresWhatTheCLICompressed() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let data = Self.sample()
        try Tool.write(dir.file("data"), data)
        let status = try ExternalProcess.run(command: [
            "lz4", "-q", "-B7", "-BI", "--content-size", dir.file("data"), dir.file("data.lz4"),
        ])
        #expect(status.status == 0)
        let reader = try LZ4FrameReader(path: dir.file("data.lz4"))
        #expect(reader.contentSize == UInt64(data.count))
        var sink = MemorySink()
        try reader.decompress(into: &sink)
        #expect(sink.bytes == data)
        #expect(reader.isFinished)
    }

    /// Every block layout the CLI writes decodes: independent blocks of each size (the parallel
    /// decoder), with block checksums, and linked blocks (liblz4's sequential decoder); a block whose
    /// data changed is refused by its block checksum.
    @Test(arguments: [["-B4", "-BI"], ["-B5", "-BI"], ["-B6", "-BI"], ["-B7", "-BI", "-BX"], ["-B5", "-BD"]])
    func readerRestoresEveryBlockLayoutOfTheCLI(flags: [String]) throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let data = Self.sample()
        try Tool.write(dir.file("data"), data)
        let status = try ExternalProcess.run(
            command: ["lz4", "-q"] + flags + ["--content-size", dir.file("data"), dir.file("data.lz4")]
        ).status
        #expect(status == 0)
        let reader = try LZ4FrameReader(path: dir.file("data.lz4"))
        var sink = MemorySink()
        try reader.decompress(into: &sink)
        #expect(sink.bytes == data)
        #expect(reader.isFinished && reader.bytesOut == UInt64(data.count))
        guard flags.contains("-BX") else { return }
        var frame = try Tool.read(dir.file("data.lz4"))
        frame[frame.count / 2] ^= 0x10
        try FileIO.removeTree(dir.file("data.lz4"))
        try Tool.write(dir.file("data.lz4"), frame)
        #expect(throws: SparseFormatError.frameChecksumMismatch(file: dir.file("data.lz4"))) {
            var sink = MemorySink()
            try LZ4FrameReader(path: dir.file("data.lz4")).decompress(into: &sink)
        }
    }

    @Test func writerRejectsMoreOrFewerBytesThanDeclared() throws {
        let writer = try LZ4FrameWriter(sink: MemorySink(), contentSize: 4)
        let five: [UInt8] = [1, 2, 3, 4, 5]
        #expect(throws: SparseFormatError.contentSizeMismatch(file: "<lz4 frame>", declared: 4, actual: 5)) {
            try five.withUnsafeBytes { try writer.write($0) }
        }
        try five.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[0..<3])) }
        #expect(throws: SparseFormatError.contentSizeMismatch(file: "<lz4 frame>", declared: 4, actual: 3)) {
            _ = try writer.finish()
        }
    }

    enum CorruptFrame: String, CaseIterable {
        case empty, wrongMagic, truncatedHeader, truncatedBlock, checksumMismatch, contentSizeTooLarge
        case contentSizeTooSmall, trailingGarbage, noContentSize
    }

    /// One row per way a frame on disk can be wrong (llama.cpp test-gguf style hand-made files).
    @Test(arguments: CorruptFrame.allCases)
    func readerRejectsCorruptFrame(_ kind: CorruptFrame) throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let data = Array(Self.sample().prefix(5 << 20))
        let path = dir.file("frame.lz4")
        try Self.writeFrame(data, to: path)
        var frame = try Tool.read(path)
        // Header: magic(4) FLG(1) BD(1) content size(8) HC(1) = 15 bytes.
        func setContentSize(_ size: UInt64) {
            for i in 0..<8 { frame[6 + i] = UInt8(truncatingIfNeeded: size >> UInt64(8 * i)) }
            frame[14] = UInt8(truncatingIfNeeded: XXH32.hash(Array(frame[4..<14])) >> 8)
        }
        switch kind {
        case .empty: frame = []
        case .wrongMagic: frame[0] ^= 0xFF
        case .truncatedHeader: frame = Array(frame.prefix(9))
        case .truncatedBlock: frame = Array(frame.prefix(frame.count / 2))
        case .checksumMismatch: frame[frame.count - 1] ^= 0x01
        case .contentSizeTooLarge: setContentSize(UInt64(data.count) + 1)
        case .contentSizeTooSmall: setContentSize(UInt64(data.count) - 1)
        case .trailingGarbage: frame += [1, 2, 3]
        case .noContentSize:
            try Tool.write(dir.file("plain"), data)
            #expect(try ExternalProcess.run(command: ["lz4", "-q", "-f", dir.file("plain"), path]).status == 0)
            frame = try Tool.read(path)
        }
        try FileIO.removeTree(path)
        try Tool.write(path, frame)
        var sink = MemorySink()
        do {
            let reader = try LZ4FrameReader(path: path)
            try reader.decompress(into: &sink)
            Issue.record("corrupt frame (\(kind)) was accepted")
        } catch let error as SparseFormatError {
            #expect(Self.matches(error, kind), "\(kind): got \(error)")
            #expect(!error.description.isEmpty)
        }
        // A frame whose header reads fails the same way when decoded in the background into a window
        // smaller than it: asking for its last byte returns or throws (never waits for bytes that
        // will not come), `finish` throws.
        guard let reader = try? LZ4FrameReader(path: path), let size = Int(exactly: reader.contentSize) else { return }
        let decoder = BackgroundFrameDecoder(reader: reader, size: size, from: 0, window: 1 << 20)
        _ = try? decoder.bytes(max(0, size - 1)..<size)
        do {
            try decoder.finish()
            Issue.record("corrupt frame (\(kind)) was accepted by the background decoder")
        } catch let error as SparseFormatError {
            #expect(Self.matches(error, kind), "\(kind), background: got \(error)")
        }
    }

    /// The background decoder restores a frame of several blocks (the last partial) through a window
    /// of 1 MiB: ranges asked in order, overlapping, each as the frame has it while the decoder moves
    /// bytes to the window's front.
    @Test func backgroundDecoderServesRangesInOrderThroughASmallWindow() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let data = Self.sample()
        try Self.writeFrame(data, to: dir.file("frame.lz4"))
        let window = 1 << 20
        let decoder = BackgroundFrameDecoder(
            reader: try LZ4FrameReader(path: dir.file("frame.lz4")),
            size: data.count,
            from: 0,
            window: window
        )
        var ranges = [0..<10, 5..<(window + 5)]
        for start in stride(from: window, to: data.count - window, by: 700_001) {
            ranges.append(start..<(start + window - start % 3))
        }
        ranges.append((data.count - window)..<data.count)
        for range in ranges {
            let bytes = try decoder.bytes(range)
            #expect(Array(bytes) == Array(data[range]), "\(range)")
        }
        try decoder.finish()
    }

    /// A range before one asked earlier (given up) or longer than the window is refused, and the
    /// decoder still validates the frame to its end.
    @Test func backgroundDecoderRefusesRangesItCannotServe() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let data = Array(Self.sample().prefix(3 << 20))
        try Self.writeFrame(data, to: dir.file("frame.lz4"))
        let decoder = BackgroundFrameDecoder(
            reader: try LZ4FrameReader(path: dir.file("frame.lz4")),
            size: data.count,
            from: 0,
            window: 1 << 20
        )
        #expect(Array(try decoder.bytes(100..<200)) == Array(data[100..<200]))
        #expect(throws: SparseFormatError.self) { try decoder.bytes(50..<60) }
        #expect(throws: SparseFormatError.self) { try decoder.bytes(200..<(201 + (1 << 20))) }
        #expect(throws: SparseFormatError.self) { try decoder.bytes(200..<(data.count + 1)) }
        try decoder.finish()
    }

    static func matches(_ error: SparseFormatError, _ kind: CorruptFrame) -> Bool {
        switch (kind, error) {
        case (.empty, .truncatedFrame), (.truncatedHeader, .truncatedFrame), (.truncatedBlock, .truncatedFrame): true
        case (.wrongMagic, .notLZ4Frame(_, let magic)): magic != LZ4FrameReader.magic
        case (.checksumMismatch, .frameChecksumMismatch): true
        case (.contentSizeTooLarge, .contentSizeMismatch), (.contentSizeTooSmall, .contentSizeMismatch): true
        case (.trailingGarbage, .trailingData): true
        case (.noContentSize, .contentSizeMissing): true
        default: false
        }
    }
}
