// SPDX-License-Identifier: Apache-2.0
// Hostile output directories: unpack/inspect/verify fail with a clear SparseFormatError and leave no partial output.

import DSnoTSupport
import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@testable import SparseFormat

@Suite struct HostileOutputTests {
    enum Corruption: String, CaseIterable {
        case wrongMagic, truncatedFrame, checksumMismatch, lyingContentSize
        case popcountDisagrees, rowOffsetsInconsistent, shapeOverflow, missingBitmask, notSafeTensors
    }

    static let shard = "model-00001-of-00002.safetensors"
    static let module = "model.layers.0.self_attn.q_proj"

    /// Applies `kind` to the first shard of a valid bf16 unstructured output.
    static func corrupt(_ output: String, _ kind: Corruption) throws {
        let framePath = output + "/" + shard + ".lz4"
        var frame = try Tool.read(framePath)
        var content = try decompress(framePath)
        let dataStart = 8 + Int(content.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        let scratch = try TemporaryDirectory("sparseformat-test")
        defer { scratch.remove() }
        try Tool.write(scratch.file("c.safetensors"), content)
        let file = try SafeTensorsFile(path: scratch.file("c.safetensors"))
        func offset(_ suffix: String) throws -> Int {
            dataStart + (try file.info(named: module + suffix)).dataOffsets.lowerBound
        }
        switch kind {
        case .wrongMagic: frame[1] ^= 0x55
        case .truncatedFrame: frame.removeLast(frame.count / 3)
        case .checksumMismatch: frame[frame.count - 2] ^= 0x10
        case .lyingContentSize:
            let size = UInt64(content.count) + 8
            for i in 0..<8 { frame[6 + i] = UInt8(truncatingIfNeeded: size >> UInt64(8 * i)) }
            frame[14] = UInt8(truncatingIfNeeded: XXH32.hash(Array(frame[4..<14])) >> 8)
        case .popcountDisagrees:
            let at = try offset(".bitmask")
            let byte = try #require((0..<8).first { content[at + $0] != 0xFF })
            let bit = try #require((0..<8).first { content[at + byte] & (1 << $0) == 0 })
            content[at + byte] |= 1 << bit
        case .rowOffsetsInconsistent: content[try offset(".row_offsets") + 8] &+= 1
        case .shapeOverflow:
            let at = try offset(".shape")
            for i in 0..<8 { content[at + i] = i == 7 ? 0x7F : 0xFF }
        case .missingBitmask:
            let name = Array((module + ".bitmask").utf8)
            let at = try #require(content.firstRange(of: name)).lowerBound
            content[at + name.count - 1] = UInt8(ascii: "x")  // "….bitmasx"
        case .notSafeTensors: content[8] = UInt8(ascii: "[")
        }
        if [.popcountDisagrees, .rowOffsetsInconsistent, .shapeOverflow, .missingBitmask, .notSafeTensors].contains(
            kind
        ) {
            let sink = MemorySink()
            let writer = try LZ4FrameWriter(sink: sink, contentSize: UInt64(content.count))
            try content.withUnsafeBytes { try writer.write($0) }
            frame = try writer.finish().bytes
        }
        try FileIO.removeTree(framePath)
        try Tool.write(framePath, frame)
    }

    static func decompress(_ path: String) throws -> [UInt8] {
        var sink = MemorySink()
        try LZ4FrameReader(path: path).decompress(into: &sink)
        return sink.bytes
    }

    static func expected(_ kind: Corruption, _ error: SparseFormatError) -> Bool {
        switch (kind, error) {
        case (.wrongMagic, .notLZ4Frame), (.truncatedFrame, .truncatedFrame),
            (.checksumMismatch, .frameChecksumMismatch),
            (.lyingContentSize, .contentSizeMismatch), (.popcountDisagrees, .popcountMismatch),
            (.rowOffsetsInconsistent, .rowOffsetsInconsistent), (.shapeOverflow, .invalidShape),
            (.missingBitmask, .invalidSparseTensor), (.notSafeTensors, .safeTensors):
            true
        default: false
        }
    }

    @Test(arguments: Corruption.allCases)
    func unpackRejectsAndLeavesNothing(_ kind: Corruption) throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .bf16, structure: .unstructured, in: dir)
        try Self.corrupt(fixture.output, kind)
        for mode in [SparseUnpacker.Mode.dense, .compressedTensors] {
            let destination = dir.file("unpacked-\(mode.rawValue)")
            do {
                try SparseUnpacker.unpack(outputDirectory: fixture.output, destination: destination, mode: mode)
                Issue.record("\(kind) accepted by unpack \(mode)")
            } catch let error as SparseFormatError {
                #expect(Self.expected(kind, error), "\(kind), \(mode): got \(error)")
                #expect(error.description.contains(Self.shard), "the message names the file: \(error)")
            }
            #expect(!FileIO.exists(destination))
        }
        #expect(try FileIO.listDirectory(dir.path).filter { $0.hasPrefix(AtomicPublisher.stagingPrefix) }.isEmpty)
    }

    /// A frame that fails its checksum is reported as such, even when the content it carries would
    /// fail first as a safetensors file (`unpack --dense` reads the header while the frame decodes).
    @Test func aFrameChecksumFailureWinsOverTheContentsOwnError() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .bf16, structure: .unstructured, in: dir)
        try Self.corrupt(fixture.output, .notSafeTensors)
        let framePath = fixture.output + "/" + Self.shard + ".lz4"
        var frame = try Tool.read(framePath)
        frame[frame.count - 2] ^= 0x10
        try FileIO.removeTree(framePath)
        try Tool.write(framePath, frame)
        let destination = dir.file("unpacked")
        #expect {
            try SparseUnpacker.unpack(outputDirectory: fixture.output, destination: destination, mode: .dense)
        } throws: { error in
            guard case SparseFormatError.frameChecksumMismatch = error else { return false }
            return true
        }
        #expect(!FileIO.exists(destination))
    }

    @Test(arguments: Corruption.allCases)
    func inspectRejects(_ kind: Corruption) throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .bf16, structure: .unstructured, in: dir)
        try Self.corrupt(fixture.output, kind)
        do {
            _ = try SparseInspector.inspect(
                path: fixture.output + "/" + Self.shard + ".lz4",
                scratchDirectory: dir.path
            )
            // Inspect reads headers and shapes only: bitmask/row-offset contents are verify's job.
            #expect([.popcountDisagrees, .rowOffsetsInconsistent].contains(kind), "\(kind) accepted by inspect")
        } catch let error as SparseFormatError {
            #expect(Self.expected(kind, error), "\(kind): got \(error)")
        }
        #expect(try FileIO.listDirectory(dir.path).filter { $0.hasPrefix(".dsnot-scratch-") }.isEmpty)
    }

    @Test func verifyRejectsAChangedFileByChecksum() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .bf16, structure: .unstructured, in: dir)
        try Self.corrupt(fixture.output, .popcountDisagrees)
        #expect(throws: SparseFormatError.self) { try SparseVerifier.verify(directory: fixture.output) }
        do {
            try SparseVerifier.verify(directory: fixture.output)
        } catch SparseFormatError.checksumMismatch(let file, _, _) {
            #expect(file.hasSuffix(Self.shard + ".lz4"))
        }
    }

    /// With the manifest's checksum updated to match, the structural check still catches the bitmask.
    @Test func verifyRejectsStructureEvenWithMatchingChecksum() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .bf16, structure: .unstructured, in: dir)
        try Self.corrupt(fixture.output, .rowOffsetsInconsistent)
        let reportPath = fixture.output + "/" + OutputManifest.reportFileName
        var report = try SparseCheckpointWriter.jsonObject(try Tool.read(reportPath), what: "report")
        var output = try #require(report["output"] as? [String: Any])
        var files = try #require(output["files"] as? [[String: Any]])
        for i in files.indices where files[i]["name"] as? String == Self.shard + ".lz4" {
            let path = fixture.output + "/" + Self.shard + ".lz4"
            files[i]["sha256"] = try SHA256.hash(fileAt: path).hex
            files[i]["bytes"] = try FileIO.fileSize(path)
        }
        output["files"] = files
        report["output"] = output
        try FileIO.removeTree(reportPath)
        try Tool.write(reportPath, try SparseCheckpointWriter.encode(report))
        do {
            try SparseVerifier.verify(directory: fixture.output, scratchDirectory: dir.path)
            Issue.record("verify accepted inconsistent row_offsets")
        } catch let error as SparseFormatError {
            guard case .rowOffsetsInconsistent(_, let tensor, let row, _, _) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(tensor == Self.module && row == 1)
        }
    }
}
