// SPDX-License-Identifier: Apache-2.0
// SparseOutputSource: the model engine on a sparse output gives exactly the perplexity of its `unpack --dense`,
// and a sparse output that disagrees with its config is refused with the model loader's own errors.

import DSnoTCore
import DSnoTSupport
import DSnoTTestSupport
import Foundation
import Logging
import SafeTensors
import SparseFormat
import Testing

@testable import DSnoTPipeline

@Suite struct SparseOutputSourceTests {
    let logger = Logger(label: "test")

    /// Prunes the tiny checkpoint into `<root>/sparse` (Wanda + DSnoT, sparse output).
    static func pruneToSparse(root: String, dtype: DType, pattern: SparsityPattern) throws {
        try TinyCheckpoint.write(to: root + "/in", dtype: dtype)
        try FileManager.default.createDirectory(atPath: root + "/sparse", withIntermediateDirectories: true)
        let options = TinyCheckpoint.options(pattern: pattern, format: .sparse(level: .fast, bytePlanes: false))
        _ = try PruneJob(input: root + "/in", options: options).run(
            into: root + "/sparse",
            logger: Logger(label: "test")
        )
    }

    static func perplexity(_ model: any DecoderModel) throws -> Perplexity.Result {
        let text = try String(contentsOfFile: TinyCheckpoint.text, encoding: .utf8)
        let ids = try Tokenizer(contentsOf: TinyCheckpoint.tokenizer).encode(text).map(Int.init)
        return try Perplexity.evaluate(model: model, tokens: ids, sequenceLength: 64, maxWindows: 6)
    }

    @Test(arguments: [DType.f32, .bf16], [SparsityPattern.unstructured(0.5), .nOfM(2, 4)])
    func perplexityOnTheSparseOutputEqualsPerplexityOnItsDenseUnpack(_ dtype: DType, _ pattern: SparsityPattern)
        throws
    {
        let root = try TemporaryDirectory("dsnot-sparse-source").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.pruneToSparse(root: root, dtype: dtype, pattern: pattern)
        try SparseUnpacker.unpack(outputDirectory: root + "/sparse", destination: root + "/dense", mode: .dense)

        let tensors = try SparseOutputSource.tensors(ofModelDirectory: root + "/sparse")
        #expect(tensors is SparseOutputSource)
        #expect(try SparseOutputSource.tensors(ofModelDirectory: root + "/dense") is Checkpoint)
        let sparse = try Self.perplexity(try ModelRegistry.load(directory: root + "/sparse", tensors: tensors))
        let dense = try Self.perplexity(try ModelRegistry.load(directory: root + "/dense"))
        // Bit for bit: the same weights reach the same kernels in the same order.
        #expect(sparse.windowLosses == dense.windowLosses)
        #expect(sparse.perplexity == dense.perplexity && sparse.perplexity.isFinite)
        #expect(sparse.windowLosses.count == 6)
    }

    /// Replaces `config.json` of the sparse output and re-hashes it in the manifest, so that only the
    /// model loader can object.
    static func replaceConfig(_ output: String, _ edit: (inout [String: Any]) -> Void) throws {
        let configPath = output + "/config.json"
        var config = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as? [String: Any]
        )
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        let reportPath = output + "/dsnot-report.json"
        var report = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: reportPath))) as? [String: Any]
        )
        var section = try #require(report["output"] as? [String: Any])
        var files = try #require(section["files"] as? [[String: Any]])
        let index = try #require(files.firstIndex { $0["name"] as? String == "config.json" })
        let bytes = try Data(contentsOf: URL(fileURLWithPath: configPath))
        files[index]["bytes"] = bytes.count
        var hasher = SHA256()
        bytes.withUnsafeBytes { hasher.update($0) }
        files[index]["sha256"] = hasher.finalize().hex
        section["files"] = files
        report["output"] = section
        try JSONSerialization.data(withJSONObject: report).write(to: URL(fileURLWithPath: reportPath))
    }

    @Test func aSparseOutputThatDisagreesWithItsConfigIsRefusedNamingTheTensor() throws {
        let root = try TemporaryDirectory("dsnot-sparse-source").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.pruneToSparse(root: root, dtype: .bf16, pattern: .unstructured(0.5))
        let output = root + "/sparse"

        try Self.replaceConfig(output) { $0["intermediate_size"] = 48 }
        do {
            _ = try ModelRegistry.load(directory: output, tensors: try SparseOutputSource(directory: output))
            Issue.record("a 48-wide MLP config accepted over 64-wide weights")
        } catch let error as ModelLoadError {
            #expect(
                error
                    == .shapeMismatch(
                        tensor: "model.layers.0.mlp.gate_proj.weight",
                        expected: [48, 32],
                        got: [64, 32]
                    )
            )
        }

        try Self.replaceConfig(output) {
            $0["intermediate_size"] = 64
            $0["num_hidden_layers"] = 3
        }
        do {
            _ = try ModelRegistry.load(directory: output, tensors: try SparseOutputSource(directory: output))
            Issue.record("a three-block config accepted over two blocks")
        } catch let error as ModelLoadError {
            guard case .missingTensor(let name, let source) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(name.hasPrefix("model.layers.2.") && source == output)
        }
    }

    // A sparse output written with an integer norm (the writer copies unpruned tensors as they come):
    // the loader refuses it by name, as it would the same dense checkpoint.
    @Test func anIntegerTensorInASparseOutputIsRefusedNamingIt() throws {
        let root = try TemporaryDirectory("dsnot-sparse-source").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try TinyCheckpoint.write(to: root + "/in", dtype: .bf16)
        let input = try Checkpoint(directory: root + "/in")
        try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
        let writer = try SparseCheckpointWriter(
            directory: root + "/out",
            plan: OutputPlan(shards: [.init(fileName: "model.safetensors", tensors: input.tensorNames)]),
            structure: .unstructured
        )
        for name in input.tensorNames {
            let info = try input.info(named: name)
            if name == "model.norm.weight" {
                let ints = [Int32](repeating: 1, count: info.elementCount).withUnsafeBytes { Array($0) }
                try ints.withUnsafeBytes {
                    try writer.write(name: name, dtype: .i32, shape: info.shape, bytes: $0, pruned: false)
                }
            } else {
                try writer.write(
                    name: name,
                    dtype: info.dtype,
                    shape: info.shape,
                    bytes: try input.rawBytes(named: name),
                    pruned: false
                )
            }
        }
        _ = try writer.finish(
            inputConfig: Array(try Data(contentsOf: URL(fileURLWithPath: root + "/in/config.json"))),
            report: Array(#"{"recipe": {}}"#.utf8)
        )
        let source = try SparseOutputSource(directory: root + "/out")
        #expect(source.tensorInfo(named: "model.norm.weight")?.dtype == .i32)
        #expect(throws: ModelLoadError.unsupportedDType(tensor: "model.norm.weight", dtype: "I32")) {
            _ = try ModelRegistry.load(directory: root + "/out", tensors: source)
        }
    }
}
