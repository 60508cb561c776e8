// SPDX-License-Identifier: Apache-2.0
// SparseOutputReader: every tensor bit-identical to `unpack --dense`, and hostile outputs rejected with a clear error.

import DSnoTSupport
import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@testable import SparseFormat

@Suite struct SparseOutputReaderTests {
    struct Variant: CustomStringConvertible, Sendable {
        var dtype: DType
        var structure: SparsityStructure
        var bytePlanes: Bool
        var description: String { "\(dtype.rawValue) \(structure.rawValue)\(bytePlanes ? " planes" : "")" }
    }

    static let variants: [Variant] = [DType.bf16, .f16, .f32].flatMap { dtype in
        SparsityStructure.allCases.flatMap { structure in
            [false, true].map { Variant(dtype: dtype, structure: structure, bytePlanes: $0) }
        }
    }

    /// Reads every tensor of the reader, in `order`, as arrays.
    static func readAll(_ reader: SparseOutputReader, order: [String]) throws -> [String: [UInt8]] {
        var result: [String: [UInt8]] = [:]
        for name in order { result[name] = try reader.withDenseBytes(named: name) { Array($0) } }
        return result
    }

    // The eval path reads tensors out of data order (a block's norms after its linears, the tied LM
    // head after the last block), so forward, backward and repeated reads must all give the same bytes.
    @Test(arguments: variants, [0, SparseOutputReader.residentTensorLimit])
    func everyTensorMatchesUnpackDenseBitForBit(_ variant: Variant, _ residentLimit: Int) throws {
        let dir = try TemporaryDirectory("sparse-reader")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(
            dtype: variant.dtype,
            structure: variant.structure,
            in: dir,
            bytePlanes: variant.bytePlanes
        )
        let unpacked = dir.file("dense")
        try SparseUnpacker.unpack(outputDirectory: fixture.output, destination: unpacked, mode: .dense)
        var denseInfos: [String: TensorInfo] = [:]
        for name in try FileIO.listDirectory(unpacked) where name.hasSuffix(".safetensors") {
            for info in try SafeTensorsFile(path: unpacked + "/" + name).header.tensors { denseInfos[info.name] = info }
        }
        let dense = try CheckpointFixture.readTensors(in: unpacked)

        let reader = try SparseOutputReader(directory: fixture.output, residentTensorLimit: residentLimit)
        #expect(Set(reader.tensorNames) == Set(dense.keys))
        #expect(reader.tensorNames.count == CheckpointFixture.tensors.count)
        for name in reader.tensorNames {
            #expect(reader.info(named: name) == denseInfos[name], "\(name): header entry as unpack --dense writes it")
        }
        let forward = try Self.readAll(reader, order: reader.tensorNames)
        let backward = try Self.readAll(reader, order: reader.tensorNames.reversed())
        #expect(forward == dense)
        #expect(backward == dense)
        #expect(forward == fixture.expected, "the dense bytes the pipeline wrote")
        // Cached, released, then read again.
        let name = CheckpointFixture.tensors[1].name
        let first = try reader.withDenseBytes(named: name) { Array($0) }
        let again = try reader.withDenseBytes(named: name) { Array($0) }
        reader.release(named: name)
        let reread = try reader.withDenseBytes(named: name) { Array($0) }
        #expect(first == dense[name] && again == dense[name] && reread == dense[name])
    }

    // The engine reads a block's weights forward through the frame, then the tied LM head from the
    // front: forward reads keep the frame open (no re-decompression), a backward jump does not keep
    // the LZ4 buffers alive afterwards.
    @Test func forwardReadsKeepTheFrameOpenAndABackwardJumpClosesIt() throws {
        let dir = try TemporaryDirectory("sparse-reader")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .bf16, structure: .unstructured, in: dir)
        let reader = try SparseOutputReader(directory: fixture.output, residentTensorLimit: 0)
        let first = reader.tensorNames[0]
        let second = reader.tensorNames[1]
        #expect(reader.info(named: first)?.dataOffsets.lowerBound == 0)
        _ = try reader.withDenseBytes(named: first) { $0.count }
        _ = try reader.withDenseBytes(named: second) { $0.count }
        let open = try #require(reader.state.frame)
        #expect(open.shard == 0 && open.reader.bytesOut > 0)
        _ = try reader.withDenseBytes(named: first) { $0.count }
        #expect(reader.state.frame == nil)
        #expect(reader.state.cached?.name == first)
        reader.release(named: first)
        #expect(reader.state.cached == nil)
    }

    @Test func aSparseOutputIsRecognisedAndACheckpointIsNot() throws {
        let dir = try TemporaryDirectory("sparse-reader")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .bf16, structure: .unstructured, in: dir)
        try SparseUnpacker.unpack(outputDirectory: fixture.output, destination: dir.file("dense"), mode: .dense)
        #expect(SparseOutputReader.isSparseOutput(directory: fixture.output))
        #expect(!SparseOutputReader.isSparseOutput(directory: dir.file("dense")))
        #expect(!SparseOutputReader.isSparseOutput(directory: dir.file("absent")))
    }

    /// Rewrites the manifest entry of `name` (size and SHA-256) to match the file as it now is, so
    /// that a corruption gets past the checksum check and reaches the frame and structure checks.
    static func rehash(_ output: String, _ name: String) throws {
        let path = output + "/" + OutputManifest.reportFileName
        var report = try #require(try JSONSerialization.jsonObject(with: Data(Tool.read(path))) as? [String: Any])
        var outputSection = try #require(report["output"] as? [String: Any])
        var files = try #require(outputSection["files"] as? [[String: Any]])
        let index = try #require(files.firstIndex { $0["name"] as? String == name })
        files[index]["bytes"] = try FileIO.fileSize(output + "/" + name)
        files[index]["sha256"] = try SHA256.hash(fileAt: output + "/" + name).hex
        outputSection["files"] = files
        report["output"] = outputSection
        try Tool.write(path, Array(try JSONSerialization.data(withJSONObject: report)))
    }

    /// Opens the output and reads every tensor; returns the first error.
    static func firstError(_ output: String) -> (any Error)? {
        do {
            let reader = try SparseOutputReader(directory: output, residentTensorLimit: 0)
            _ = try readAll(reader, order: reader.tensorNames)
            return nil
        } catch {
            return error
        }
    }

    // The frame and structure corruptions of `unpack`'s table, with the manifest re-hashed so that the
    // reader's own checks (not the SHA-256) must catch them: the same error as `unpack`, naming the shard.
    @Test(arguments: HostileOutputTests.Corruption.allCases)
    func corruptShardBehindAValidChecksumIsRejected(_ kind: HostileOutputTests.Corruption) throws {
        let dir = try TemporaryDirectory("sparse-reader")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .bf16, structure: .unstructured, in: dir)
        try HostileOutputTests.corrupt(fixture.output, kind)
        try Self.rehash(fixture.output, HostileOutputTests.shard + ".lz4")
        let error = try #require(Self.firstError(fixture.output) as? SparseFormatError, "\(kind) accepted")
        #expect(HostileOutputTests.expected(kind, error), "\(kind): got \(error)")
        #expect(error.description.contains(HostileOutputTests.shard), "the message names the file: \(error)")
    }

    enum Hostile: String, CaseIterable {
        case shardChangedAfterPublishing, configChangedAfterPublishing, listedShardMissing
        case unlistedShard, shardPathEscapes, noManifest, manifestWithoutShards
    }

    @Test(arguments: Hostile.allCases)
    func hostileDirectoryIsRejectedWhenOpened(_ kind: Hostile) throws {
        let dir = try TemporaryDirectory("sparse-reader")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .bf16, structure: .twoFour, in: dir)
        let output = fixture.output
        let shard = HostileOutputTests.shard + ".lz4"
        let report = output + "/" + OutputManifest.reportFileName
        func editManifest(_ edit: (inout [[String: Any]]) -> Void) throws {
            var object = try #require(try JSONSerialization.jsonObject(with: Data(Tool.read(report))) as? [String: Any])
            var section = try #require(object["output"] as? [String: Any])
            var files = try #require(section["files"] as? [[String: Any]])
            edit(&files)
            section["files"] = files
            object["output"] = section
            try Tool.write(report, Array(try JSONSerialization.data(withJSONObject: object)))
        }
        switch kind {
        case .shardChangedAfterPublishing:
            var frame = try Tool.read(output + "/" + shard)
            frame[frame.count / 2] ^= 0x01
            try Tool.write(output + "/" + shard, frame)
        case .configChangedAfterPublishing:
            try Tool.write(output + "/config.json", Array(#"{"model_type": "llama"}"#.utf8))
        case .listedShardMissing: try FileIO.removeTree(output + "/" + shard)
        case .unlistedShard: try FileIO.copy(from: output + "/" + shard, to: output + "/extra.safetensors.lz4")
        case .shardPathEscapes:
            try FileIO.copy(from: output + "/" + shard, to: dir.file(shard))
            try editManifest { files in
                for i in files.indices where files[i]["name"] as? String == shard { files[i]["name"] = "../" + shard }
            }
        case .noManifest: try FileIO.removeTree(report)
        case .manifestWithoutShards:
            try editManifest { files in files.removeAll { ($0["name"] as? String)?.hasSuffix(".lz4") ?? false } }
            for name in try FileIO.listDirectory(output) where name.hasSuffix(".lz4") {
                try FileIO.removeTree(output + "/" + name)
            }
        }
        let error = try #require(Self.firstError(output) as? SparseFormatError, "\(kind) accepted")
        switch (kind, error) {
        case (.shardChangedAfterPublishing, .checksumMismatch(let file, let expected, let found)):
            #expect(file.hasSuffix(shard) && expected != found)
        case (.configChangedAfterPublishing, .invalidOutput(let path, let reason)):
            #expect(path.hasSuffix("config.json") && reason.contains("manifest says"), "\(error)")
        case (.listedShardMissing, .invalidOutput(let path, let reason)):
            #expect(path.hasSuffix(shard) && reason.contains("missing"), "\(error)")
        case (.unlistedShard, .invalidOutput(let path, let reason)):
            #expect(path.hasSuffix("extra.safetensors.lz4") && reason.contains("not listed"), "\(error)")
        case (.shardPathEscapes, .invalidOutput(let path, let reason)):
            #expect(path.hasSuffix(OutputManifest.reportFileName) && reason.contains("../" + shard), "\(error)")
        case (.noManifest, .invalidOutput(let path, let reason)):
            #expect(path.hasSuffix(OutputManifest.reportFileName) && reason == "missing", "\(error)")
        case (.manifestWithoutShards, .invalidOutput(_, let reason)):
            #expect(reason.contains("no *.safetensors.lz4 shard"), "\(error)")
        default:
            Issue.record("\(kind): unexpected \(error)")
        }
    }

    @Test func anUnknownTensorNamesTheDirectoryAndTheTensor() throws {
        let dir = try TemporaryDirectory("sparse-reader")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .f32, structure: .unstructured, in: dir)
        let reader = try SparseOutputReader(directory: fixture.output)
        #expect(reader.info(named: "model.layers.9.mlp.up_proj.weight") == nil)
        #expect(throws: SparseFormatError.self) {
            try reader.withDenseBytes(named: "model.layers.9.mlp.up_proj.weight") { $0.count }
        }
        do {
            _ = try reader.withDenseBytes(named: "model.layers.9.mlp.up_proj.weight") { $0.count }
        } catch let error as SparseFormatError {
            guard case .tensorUnreadable(let file, let tensor, _) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(file == fixture.output && tensor == "model.layers.9.mlp.up_proj.weight")
        }
        // The group members are not tensors of the dense view.
        #expect(reader.info(named: "model.layers.0.self_attn.q_proj.bitmask") == nil)
    }

    // A `.shape` that disagrees with its bitmask: the group is refused when the shard is opened.
    @Test func aShapeThatDisagreesWithTheBitmaskIsRefusedAtOpening() throws {
        let dir = try TemporaryDirectory("sparse-reader")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .bf16, structure: .unstructured, in: dir)
        let framePath = fixture.output + "/" + HostileOutputTests.shard + ".lz4"
        var content = try HostileOutputTests.decompress(framePath)
        let scratch = dir.file("c.safetensors")
        try Tool.write(scratch, content)
        let file = try SafeTensorsFile(path: scratch)
        let shape = try file.info(named: HostileOutputTests.module + ".shape")
        content[file.header.dataStart + shape.dataOffsets.lowerBound] &+= 8  // rows 8 → 16
        let sink = MemorySink()
        let writer = try LZ4FrameWriter(sink: sink, contentSize: UInt64(content.count))
        try content.withUnsafeBytes { try writer.write($0) }
        try FileIO.removeTree(framePath)
        try Tool.write(framePath, try writer.finish().bytes)
        try Self.rehash(fixture.output, HostileOutputTests.shard + ".lz4")
        let error = try #require(Self.firstError(fixture.output) as? SparseFormatError)
        guard case .invalidSparseTensor(let path, let tensor, let reason) = error else {
            Issue.record("unexpected \(error)")
            return
        }
        #expect(path == framePath && tensor == HostileOutputTests.module && reason.contains(".bitmask must be"))
    }
}
