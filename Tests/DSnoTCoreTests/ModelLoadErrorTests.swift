// SPDX-License-Identifier: Apache-2.0
// ModelLoadError tests: a table of hand-made bad checkpoints, each a clear error and never a crash.

import DSnoTCore
import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

/// Bad checkpoints derived from the `llama_gqa_tied` fixture (llama.cpp `test-gguf.cpp` style).
@Suite struct ModelLoadErrorTests {
    static let base = "llama_gqa_tied"

    /// Writes a checkpoint whose tensors and config are the fixture's, edited.
    static func checkpoint(
        tensors edit: (inout [RawTensor]) -> Void = { _ in },
        config configEdit: (inout [String: Any]) -> Void = { _ in }
    ) throws -> String {
        let directory = try TemporaryDirectory("dsnot-model-tests").path
        var tensors = try RawTensor.all(in: SafeTensorsFile(path: ModelFixtures.path(base, "model.safetensors")))
        edit(&tensors)
        try RawTensor.write(tensors, to: directory + "/model.safetensors")
        let data = try Data(contentsOf: URL(fileURLWithPath: ModelFixtures.path(base, "config.json")))
        var config = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        configEdit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: directory + "/config.json"))
        return directory
    }

    static func poison(_ tensors: inout [RawTensor], _ name: String, element: Int, with value: Float) {
        guard let i = tensors.firstIndex(where: { $0.name == name }) else { return }
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes in
            for b in 0..<4 { tensors[i].bytes[4 * element + b] = bytes[b] }
        }
    }

    @Test func missingTensorIsNamed() throws {
        let dir = try Self.checkpoint(tensors: { $0.removeAll { $0.name == "model.layers.1.mlp.up_proj.weight" } })
        #expect(
            throws: ModelLoadError.missingTensor(
                name: "model.layers.1.mlp.up_proj.weight",
                source: dir + "/model.safetensors"
            )
        ) {
            try ModelRegistry.load(directory: dir)
        }
    }

    @Test func wrongShapeIsReportedWithBothShapes() throws {
        let name = "model.layers.0.self_attn.k_proj.weight"
        let dir = try Self.checkpoint(tensors: { tensors in
            tensors.removeAll { $0.name == name }
            tensors.append(.f32(name, shape: [64, 64], values: [Float](repeating: 0.5, count: 64 * 64)))
        })
        let error = #expect(throws: ModelLoadError.self) { try ModelRegistry.load(directory: dir) }
        #expect(error == .shapeMismatch(tensor: name, expected: [32, 64], got: [64, 64]))
        #expect(
            error?.description == "tensor '\(name)': expected shape [32, 64] from the config, checkpoint has [64, 64]"
        )
    }

    @Test func integerTensorIsRejected() throws {
        let name = "model.layers.0.input_layernorm.weight"
        let dir = try Self.checkpoint(tensors: { tensors in
            guard let i = tensors.firstIndex(where: { $0.name == name }) else { return }
            tensors[i].dtype = .i32
        })
        #expect(throws: ModelLoadError.unsupportedDType(tensor: name, dtype: "I32")) {
            try ModelRegistry.load(directory: dir)
        }
    }

    @Test(arguments: [Float.nan, .infinity, -.infinity])
    func nonFiniteBlockWeightFailsWhenTheBlockLoads(_ value: Float) throws {
        let name = "model.layers.1.mlp.down_proj.weight"
        let dir = try Self.checkpoint(tensors: { Self.poison(&$0, name, element: 5, with: value) })
        let model = try ModelRegistry.load(directory: dir)  // headers are fine: opening succeeds
        _ = try model.loadBlock(0)
        let error = #expect(throws: ModelLoadError.self) { try model.loadBlock(1) }
        guard case .nonFiniteWeight(let tensor, let index, _) = error else {
            Issue.record("expected nonFiniteWeight, got \(String(describing: error))")
            return
        }
        #expect(tensor == name && index == 5)
    }

    @Test func nonFiniteEmbeddingRowFailsOnlyWhenUsed() throws {
        let dir = try Self.checkpoint(tensors: {
            Self.poison(&$0, "model.embed_tokens.weight", element: 7 * 64 + 3, with: .nan)
        })
        let model = try ModelRegistry.load(directory: dir)
        _ = try model.embed(tokens: [1, 2, 3])
        let error = #expect(throws: ModelLoadError.self) { try model.embed(tokens: [1, 7]) }
        guard case .nonFiniteWeight("model.embed_tokens.weight", 7 * 64 + 3, _) = error else {
            Issue.record("expected nonFiniteWeight at element 451, got \(String(describing: error))")
            return
        }
        // The tied LM head reads the same table: its chunk check reports the same element.
        #expect(throws: ModelLoadError.self) { try model.finalLogits(Matrix(rows: 1, columns: 64)) }
    }

    static let contradictions: [(String, @Sendable (inout [String: Any]) -> Void, ModelLoadError)] = [
        (
            "fewer layers than the checkpoint", { $0["num_hidden_layers"] = 1 },
            .configContradictsTensors(
                reason: "num_hidden_layers is 1 but the checkpoint has tensors of block 1 ('model.layers.1.…')"
            )
        ),
        (
            "another hidden size",
            {
                $0["hidden_size"] = 32; $0["head_dim"] = 8
            },
            .shapeMismatch(tensor: "model.embed_tokens.weight", expected: [128, 32], got: [128, 64])
        ),
        (
            "untied without lm_head", { $0["tie_word_embeddings"] = false },
            .missingTensor(name: "lm_head.weight", source: "")
        ),
    ]

    @Test(arguments: 0..<contradictions.count)
    func configContradictingTheTensorsIsAnError(_ i: Int) throws {
        let (label, edit, expected) = Self.contradictions[i]
        let dir = try Self.checkpoint(config: edit)
        let error = #expect(throws: ModelLoadError.self, "\(label)") { try ModelRegistry.load(directory: dir) }
        if case .missingTensor(let name, _) = expected {
            guard case .missingTensor(name, _) = error else {
                Issue.record("\(label): got \(String(describing: error))")
                return
            }
        } else {
            #expect(error == expected, "\(label)")
        }
    }

    @Test func unreadableOrMalformedConfigIsAnError() throws {
        let dir = try TemporaryDirectory("dsnot-model-tests").path
        try FileManager.default.copyItem(
            atPath: ModelFixtures.path(Self.base, "model.safetensors"),
            toPath: dir + "/model.safetensors"
        )
        let absent = #expect(throws: ModelLoadError.self) { try ModelRegistry.load(directory: dir) }
        guard case .unreadableConfig(dir + "/config.json", _) = absent else {
            Issue.record("expected unreadableConfig, got \(String(describing: absent))")
            return
        }
        try Data("{\"model_type\": \"llama\", ".utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let error = #expect(throws: ModelLoadError.self) { try ModelRegistry.load(directory: dir) }
        guard case .invalidConfig = error else {
            Issue.record("expected invalidConfig, got \(String(describing: error))")
            return
        }
    }

    @Test func tokenOutsideTheVocabularyIsRefused() throws {
        let model = try ModelRegistry.load(directory: ModelFixtures.path(Self.base))
        #expect(throws: ModelLoadError.tokenOutOfRange(token: -1, position: 2, vocabularySize: 128)) {
            try model.embed(tokens: [1, 2, -1])
        }
        let opt = try ModelRegistry.load(directory: ModelFixtures.path("opt_pre_ln"))
        #expect(throws: ModelLoadError.sequenceTooLong(length: 65, maximum: 64)) {
            try opt.embed(tokens: [Int](repeating: 1, count: 65))
        }
    }
}
