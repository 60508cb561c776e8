// SPDX-License-Identifier: Apache-2.0
// prune → sparse + LZ4 → unpack: bit-exact for fp32/fp16/bf16 × unstructured/2:4, and interop with lz4 and Python.

import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@testable import SparseFormat

@Suite struct SparseCheckpointRoundTripTests {
    static let dtypes: [DType] = [.f32, .f16, .bf16]

    @Test(arguments: dtypes, SparsityStructure.allCases)
    func unpackDenseRestoresEveryTensorBitForBit(dtype: DType, structure: SparsityStructure) throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: dtype, structure: structure, in: dir)
        let dense = dir.file("dense")
        let summary = try SparseUnpacker.unpack(outputDirectory: fixture.output, destination: dense, mode: .dense)
        #expect(summary.files == CheckpointFixture.shardNames)
        #expect(try CheckpointFixture.readTensors(in: dense) == fixture.expected)
        // No sparsity metadata left; the index maps the dense names.
        let config = try SparseCheckpointWriter.jsonObject(try Tool.read(dense + "/config.json"), what: "config")
        #expect(config["quantization_config"] == nil)
        #expect(config["model_type"] as? String == "llama")
        let index = try SparseCheckpointWriter.jsonObject(
            try Tool.read(dense + "/model.safetensors.index.json"),
            what: "index"
        )
        let map = try #require(index["weight_map"] as? [String: String])
        #expect(Set(map.keys) == Set(CheckpointFixture.tensors.map(\.name)))
        #expect(try Tool.read(dense + "/tokenizer.json") == Tool.read(dir.file("tokenizer.json")))
        #expect(!FileIO.exists(dense + "/" + OutputManifest.reportFileName))
    }

    /// `unpack --dense` writes a shard while it is decoded when every group's columns follow from
    /// its other members (2:4; unstructured with a multiple of 8 columns), and writes it again from
    /// a scratch file otherwise (shard 1 holds an unstructured `[8, 12]` down_proj). Both give the
    /// bytes of the path that decodes the whole shard to a file first, with the default window and
    /// with the smallest one (the largest group's span: the decoder moves bytes to the window's
    /// front, plain tensors larger than the window are written in pieces).
    @Test(arguments: dtypes, SparsityStructure.allCases)
    func denseShardIsStreamedWhenItsShapesFollowAndRewrittenOtherwise(
        dtype: DType,
        structure: SparsityStructure
    ) throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: dtype, structure: structure, in: dir)
        for (index, shard) in CheckpointFixture.shardNames.enumerated() {
            let frame = fixture.output + "/" + shard + ".lz4"
            try SparseUnpacker.decompressShard(at: frame, to: dir.file("sparse-\(index)"))
            let reference = try SparseUnpacker.densify(
                sparseFile: dir.file("sparse-\(index)"),
                to: dir.file("whole-\(index)")
            )
            for window in [SparseUnpacker.minimumWindow, 1] {
                let path = dir.file("streamed-\(index)-\(window)")
                let (layout, streamed) = try SparseUnpacker.densify(
                    frame: frame,
                    to: path,
                    scratch: dir.path,
                    minimumWindow: window
                )
                #expect(streamed == (structure == .twoFour || index == 1), "\(shard) \(structure)")
                #expect(layout == reference)
                #expect(try Tool.read(path) == Tool.read(dir.file("whole-\(index)")))
                let file = try SafeTensorsFile(path: path)
                for info in file.header.tensors {
                    #expect(Array(file.rawBytes(of: info)) == fixture.expected[info.name])
                }
            }
        }
    }

    @Test(arguments: SparsityStructure.allCases)
    func outputLayoutFollowsCompressedTensors(structure: SparsityStructure) throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .bf16, structure: structure, in: dir)
        let names = try FileIO.listDirectory(fixture.output)
        #expect(
            names == [
                "config.json", "dsnot-report.json", "model-00001-of-00002.safetensors.lz4",
                "model-00002-of-00002.safetensors.lz4", "model.safetensors.index.json", "tokenizer.json",
            ]
        )
        let unpacked = dir.file("ct")
        try SparseUnpacker.unpack(outputDirectory: fixture.output, destination: unpacked, mode: .compressedTensors)
        let file = try SafeTensorsFile(path: unpacked + "/model-00001-of-00002.safetensors")
        let q = "model.layers.0.self_attn.q_proj"
        #expect(file.info(ifPresent: q + ".weight") == nil)
        #expect(try file.info(named: q + ".bitmask").shape == [8, 1])
        #expect(try file.info(named: q + ".bitmask").dtype == .u8)
        #expect(try file.integers(named: q + ".shape") == [8, 8])
        #expect(try file.info(named: "model.embed_tokens.weight").dtype == .bf16)
        switch structure {
        case .unstructured:
            #expect(try file.info(named: q + ".shape").shape == [2])
            #expect(try file.info(named: q + ".compressed").shape.count == 1)
            #expect(try file.info(named: q + ".row_offsets").shape == [8])
        case .twoFour:
            #expect(try file.info(named: q + ".shape").shape == [2, 1])
            #expect(try file.info(named: q + ".compressed").shape == [8, 4])
            #expect(file.info(ifPresent: q + ".row_offsets") == nil)
        }
        let config = try SparseCheckpointWriter.jsonObject(
            try Tool.read(fixture.output + "/config.json"),
            what: "config"
        )
        let quantization = try #require(config["quantization_config"] as? [String: Any])
        #expect(quantization["quant_method"] as? String == "compressed-tensors")
        let sparsity = try #require(quantization["sparsity_config"] as? [String: Any])
        #expect(sparsity["format"] as? String == structure.formatName)
        #expect(sparsity["sparsity_structure"] as? String == structure.rawValue)
        #expect(Set(sparsity["targets"] as? [String] ?? []) == Set(fixture.manifest.targets))
        #expect(fixture.manifest.targets.count == 3)
        let global = try #require(sparsity["global_sparsity"] as? Double)
        #expect(abs(global - 0.5) < 0.15, "about half the weights pruned (tolerance 0.15 on 296 weights)")
    }

    @Test func lz4CLIValidatesAndRestoresEachShardByteForByte() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .f16, structure: .unstructured, in: dir)
        let unpacked = dir.file("ct")
        try SparseUnpacker.unpack(outputDirectory: fixture.output, destination: unpacked, mode: .compressedTensors)
        for shard in CheckpointFixture.shardNames {
            let frame = fixture.output + "/" + shard + ".lz4"
            #expect(try ExternalProcess.run(command: ["lz4", "-t", "-q", frame]).status == 0)
            #expect(try ExternalProcess.run(command: ["lz4", "-d", "-q", frame, dir.file(shard)]).status == 0)
            #expect(try Tool.read(dir.file(shard)) == Tool.read(unpacked + "/" + shard))
        }
    }

    @Test func verifyAcceptsTheOutputAndReportHasEveryChecksum() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .bf16, structure: .twoFour, in: dir)
        let report = try SparseVerifier.verify(directory: fixture.output)
        #expect(report.filesChecked == 5)
        #expect(report.shardsChecked == 2)
        #expect(report.sparseTensorsChecked == 3)
        let object = try SparseCheckpointWriter.jsonObject(
            try Tool.read(fixture.output + "/" + OutputManifest.reportFileName),
            what: "report"
        )
        #expect((object["recipe"] as? [String: Any])?["method"] as? String == "magnitude")
        for file in fixture.manifest.files {
            let (status, output) = try ExternalProcess.run(command: ["sha256sum", fixture.output + "/" + file.name])
            #expect(status == 0 && output.hasPrefix(file.sha256))
        }
        let frames = fixture.manifest.files.filter { $0.name.hasSuffix(".lz4") }
        #expect(fixture.manifest.compression.lz4Bytes == frames.reduce(0) { $0 + $1.bytes })
        #expect(fixture.manifest.shards.map(\.name) == CheckpointFixture.shardNames.map { $0 + ".lz4" })
    }

    @Test func inspectReportsLayoutSparsityAndBytes() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: .f32, structure: .twoFour, in: dir)
        let report = try SparseInspector.inspect(path: fixture.output)
        let tensors = report.files.flatMap(\.tensors)
        #expect(Set(tensors.map(\.name)) == Set(CheckpointFixture.tensors.map(\.name)))
        let q = try #require(tensors.first { $0.name == "model.layers.0.self_attn.q_proj.weight" })
        #expect(q.layout == "sparse-24-bitmask" && q.pattern == "2:4" && q.shape == [8, 8] && q.dtype == "F32")
        #expect(q.sparsity == 0.5)  // exact: 2 of every 4 stored
        #expect(q.denseBytes == 256 && q.storedBytes == 128 + 8 + 16)
        let norm = try #require(tensors.first { $0.name == "model.norm.weight" })
        #expect(norm.layout == "dense" && norm.pattern == nil && norm.sparsity == 0)
        #expect(report.fileBytes == fixture.manifest.compression.lz4Bytes)
        let json = try JSONEncoder().encode(report)
        #expect(try JSONDecoder().decode(SparseInspector.Report.self, from: json) == report)
        #expect(
            SparseInspector.render(report).contains(
                "model.layers.0.self_attn.q_proj.weight  F32 [8, 8]  sparse-24-bitmask 2:4"
            )
        )
    }

    /// Python `safetensors` (the reference reader) loads both unpacked forms, and expanding the
    /// bitmask with numpy (`unpackbits(bitorder="little")`, as compressed-tensors does) gives the dense tensors.
    @Test(
        .enabled(
            if: ExternalProcess.python != nil,
            "DSNOT_PYTHON is not set: the Python safetensors peer is unavailable"
        ),
        arguments: [DType.f32, .f16],
        SparsityStructure.allCases
    )
    func pythonSafetensorsLoadsAndExpandsTheBitmask(dtype: DType, structure: SparsityStructure) throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: dtype, structure: structure, in: dir)
        try SparseUnpacker.unpack(
            outputDirectory: fixture.output,
            destination: dir.file("ct"),
            mode: .compressedTensors
        )
        try SparseUnpacker.unpack(outputDirectory: fixture.output, destination: dir.file("dense"), mode: .dense)
        let script = """
            import sys, glob, numpy as np
            from safetensors.numpy import load_file
            ct, dense = {}, {}
            for f in sorted(glob.glob(sys.argv[1] + "/*.safetensors")): ct.update(load_file(f))
            for f in sorted(glob.glob(sys.argv[2] + "/*.safetensors")): dense.update(load_file(f))
            checked = 0
            for name in [k[:-len(".bitmask")] for k in ct if k.endswith(".bitmask")]:
                rows, cols = (int(v) for v in ct[name + ".shape"].reshape(-1))
                mask = np.unpackbits(ct[name + ".bitmask"], axis=-1, count=cols, bitorder="little").astype(bool)
                out = np.zeros((rows, cols), dtype=ct[name + ".compressed"].dtype)
                out[mask] = ct[name + ".compressed"].reshape(-1)
                assert out.view(np.uint8).tobytes() == dense[name + ".weight"].view(np.uint8).tobytes(), name
                checked += 1
            for k, v in ct.items():
                if not k.rsplit(".", 1)[-1] in ("shape", "compressed", "bitmask", "row_offsets"):
                    assert v.tobytes() == dense[k].tobytes(), k
            print("checked", checked)
            """
        try Tool.write(dir.file("check.py"), Array(script.utf8))
        let (status, output) = try ExternalProcess.run(command: [
            ExternalProcess.python!, dir.file("check.py"), dir.file("ct"), dir.file("dense"),
        ])
        #expect(status == 0, "\(output)")
        #expect(output.contains("checked 3"))
    }
}
