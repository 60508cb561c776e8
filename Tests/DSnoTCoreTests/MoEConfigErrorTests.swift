// SPDX-License-Identifier: Apache-2.0
// Inconsistent configs and checkpoints of the MoE families: each fails with the key (or tensor), the value
// and what was expected, never a crash (the ModelFamilyConfigErrorTests style, on the MoE fixtures).

import DSnoTCore
import Foundation
import SafeTensors
import Testing

@Suite struct MoEConfigErrorTests {
    typealias Edit = @Sendable (inout [String: Any]) -> Void

    static let cases: [(fixture: String, label: String, edit: Edit, expected: ModelLoadError)] = [
        (
            "mixtral_untied", "more experts per token than experts",
            { $0["num_experts_per_tok"] = 5 },
            .invalidValue(key: "num_experts_per_tok", value: "5", expected: "at most num_local_experts (4)")
        ),
        (
            "qwen3_moe_untied", "more experts per token than experts",
            { $0["num_experts_per_tok"] = 9 },
            .invalidValue(key: "num_experts_per_tok", value: "9", expected: "at most num_local_experts (8)")
        ),
        (
            "qwen3_moe_untied", "num_experts contradicting its alias num_local_experts",
            { $0["num_experts"] = 6 },
            .invalidValue(key: "num_experts", value: "6", expected: "equal to num_local_experts (8), its alias")
        ),
        (
            "qwen2_moe_untied", "more experts per token than experts (Qwen2-MoE's key)",
            { $0["num_experts_per_tok"] = 5 },
            .invalidValue(key: "num_experts_per_tok", value: "5", expected: "at most num_experts (4)")
        ),
        (
            "mixtral_untied", "no experts",
            { $0["num_local_experts"] = 0 },
            .invalidValue(key: "num_local_experts", value: "0", expected: "a positive integer")
        ),
        (
            "qwen2_moe_untied", "an mlp_only_layers index past the last layer",
            { $0["mlp_only_layers"] = [1, 3] },
            .invalidValue(
                key: "mlp_only_layers",
                value: "[1, 3] (3)",
                expected: "layer indices in 0..<3 (num_hidden_layers)"
            )
        ),
        (
            "qwen2_moe_untied", "a negative mlp_only_layers index",
            { $0["mlp_only_layers"] = [-1] },
            .invalidValue(
                key: "mlp_only_layers",
                value: "[-1] (-1)",
                expected: "layer indices in 0..<3 (num_hidden_layers)"
            )
        ),
        (
            "qwen2_moe_tied_bf16", "a zero decoder_sparse_step",
            { $0["decoder_sparse_step"] = 0 },
            .invalidValue(key: "decoder_sparse_step", value: "0", expected: "a positive integer")
        ),
        (
            "qwen2_moe_untied", "a sparse layer whose checkpoint has a dense MLP",
            { $0["mlp_only_layers"] = [Int]() },
            .missingTensor(name: "model.layers.1.mlp.gate.weight", source: "model.safetensors")
        ),
        (
            "qwen3_moe_untied", "a router for another expert count (the Hub's key)",
            {
                $0["num_local_experts"] = nil
                $0["num_experts"] = 6
            },
            .shapeMismatch(tensor: "model.layers.0.mlp.gate.weight", expected: [6, 64], got: [8, 64])
        ),
        (
            "qwen3_moe_untied", "experts of another width",
            { $0["moe_intermediate_size"] = 16 },
            .shapeMismatch(tensor: "model.layers.0.mlp.experts.0.gate_proj.weight", expected: [16, 64], got: [32, 64])
        ),
        (
            "qwen2_moe_untied", "a shared expert of width 0",
            { $0["shared_expert_intermediate_size"] = 0 },
            .invalidValue(key: "shared_expert_intermediate_size", value: "0", expected: "a positive integer")
        ),
        (
            "mixtral_untied", "another activation",
            { $0["hidden_act"] = "gelu" },
            .unsupportedOption(key: "hidden_act", value: "gelu", supported: ["silu"])
        ),
    ]

    @Test(arguments: 0..<cases.count)
    func inconsistentConfigIsAClearError(_ i: Int) throws {
        let c = Self.cases[i]
        let directory = try ModelFamilyQuirkTests.edited(c.fixture, c.edit)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let error = #expect(throws: ModelLoadError.self, "\(c.label)") { try ModelRegistry.load(directory: directory) }
        // Missing tensors name the file they were looked up in: compare its last component.
        if case .missingTensor(let name, let source) = error, case .missingTensor(let want, let file) = c.expected {
            #expect(name == want && source.hasSuffix("/" + file), "\(c.label): \(String(describing: error))")
        } else {
            #expect(error == c.expected, "\(c.label): \(String(describing: error))")
        }
    }

    /// A checkpoint missing one expert's projection fails to open, naming the tensor.
    @Test(arguments: [
        ("mixtral_untied", "model.layers.1.block_sparse_moe.experts.3.w2.weight"),
        ("qwen2_moe_untied", "model.layers.2.mlp.shared_expert.up_proj.weight"),
        ("qwen3_moe_tied_bf16", "model.layers.0.mlp.experts.2.down_proj.weight"),
    ])
    func missingExpertTensorIsAClearError(_ fixture: String, _ tensor: String) throws {
        let directory = try ModelFamilyQuirkTests.edited(fixture) { _ in }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try SafeTensorsFile(path: ModelFixtures.path(fixture, "model.safetensors"))
        let kept = try RawTensor.all(in: file).filter { $0.name != tensor }
        #expect(kept.count == file.tensorNames.count - 1)
        try RawTensor.write(kept, to: directory + "/model.safetensors")
        let error = #expect(throws: ModelLoadError.self) { try ModelRegistry.load(directory: directory) }
        guard case .missingTensor(let name, _) = error else {
            Issue.record("expected a missing tensor, got \(String(describing: error))")
            return
        }
        #expect(name == tensor)
    }
}
