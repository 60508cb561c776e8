// SPDX-License-Identifier: Apache-2.0
// Inconsistent configs of the newer families: each fails with the key, the value and what was expected,
// never a crash (the ModelLoadErrorTests style, on the qwen3 / gemma / phi3 fixtures).

import DSnoTCore
import Foundation
import SafeTensors
import Testing

@Suite struct ModelFamilyConfigErrorTests {
    typealias Edit = @Sendable (inout [String: Any]) -> Void

    static let cases: [(fixture: String, label: String, edit: Edit, expected: ModelLoadError)] = [
        (
            "gemma3_text_tied", "layer_types of the wrong length",
            { $0["layer_types"] = ["sliding_attention", "full_attention"] },
            .invalidValue(
                key: "layer_types",
                value: "a list of 2 entries",
                expected: "one entry per layer (num_hidden_layers = 3)"
            )
        ),
        (
            "gemma2_tied", "an unknown layer type",
            { $0["layer_types"] = ["sliding_attention", "full_attention", "chunked_attention", "full_attention"] },
            .unsupportedOption(
                key: "layer_types[2]",
                value: "chunked_attention",
                supported: ["sliding_attention", "full_attention"]
            )
        ),
        (
            "gemma3_text_tied", "an unknown rope type on global layers",
            { $0["rope_parameters"] = ["full_attention": ["rope_type": "yarn", "factor": 4.0]] },
            .unsupportedOption(
                key: "rope_parameters.full_attention.rope_type",
                value: "yarn",
                supported: ["default", "linear", "llama3"]
            )
        ),
        (
            "qwen3_untied", "an unknown rope_scaling type",
            {
                $0["rope_parameters"] = nil
                $0["rope_scaling"] = ["type": "dynamic", "factor": 2.0]
            },
            .unsupportedOption(
                key: "rope_scaling.rope_type",
                value: "dynamic",
                supported: ["default", "linear", "llama3"]
            )
        ),
        (
            "phi3_longrope", "an unknown rope type",
            { $0["rope_parameters"] = ["rope_type": "dynamic", "factor": 2.0] },
            .unsupportedOption(
                key: "rope_parameters.rope_type",
                value: "dynamic",
                supported: ["default", "linear", "llama3", "longrope"]
            )
        ),
        (
            "phi3_longrope", "longrope factors of the wrong length",
            {
                $0["rope_parameters"] = [
                    "rope_type": "longrope", "partial_rotary_factor": 0.5, "short_factor": [1.0, 1.0, 1.0],
                    "long_factor": [1.0, 2.0, 3.0, 4.0],
                ]
            },
            .invalidValue(
                key: "rope_parameters.short_factor",
                value: "a list of 3 numbers",
                expected: "4 numbers (one per rotated pair of a head)"
            )
        ),
        (
            "phi3_longrope", "a partial rotary factor leaving an odd width",
            { $0["rope_parameters"] = ["rope_type": "default", "partial_rotary_factor": 0.2] },
            .invalidValue(
                key: "partial_rotary_factor",
                value: "0.2",
                expected: "head_dim (16) × partial_rotary_factor to be a positive even number, got 3"
            )
        ),
        (
            "phi3_longrope", "fused qkv_proj that does not split",
            { $0["num_key_value_heads"] = 4 },
            .configContradictsTensors(
                reason: "fused tensor 'model.layers.0.self_attn.qkv_proj.weight' has shape [128, 64] but the config "
                    + "splits it as [192, 64] = q 4×16 + k 4×16 + v 4×16 rows (num_attention_heads, "
                    + "num_key_value_heads × head_dim)"
            )
        ),
        (
            "phi3_tied_bf16", "fused gate_up_proj that does not split",
            { $0["intermediate_size"] = 96 },
            .configContradictsTensors(
                reason: "fused tensor 'model.layers.0.mlp.gate_up_proj.weight' has shape [256, 64] but the config "
                    + "splits it as [192, 64] = gate 96 + up 96 rows (intermediate_size)"
            )
        ),
        (
            "gemma2_tied", "another activation",
            { $0["hidden_activation"] = "relu" },
            .unsupportedOption(key: "hidden_activation", value: "relu", supported: ["gelu_pytorch_tanh"])
        ),
        (
            "gemma3_text_tied", "bidirectional attention",
            { $0["use_bidirectional_attention"] = true },
            .unsupportedOption(key: "use_bidirectional_attention", value: "true", supported: ["false"])
        ),
        (
            "qwen3_untied", "q_norm of another width",
            { $0["head_dim"] = 16 },
            .shapeMismatch(tensor: "model.layers.0.self_attn.q_norm.weight", expected: [16], got: [32])
        ),
    ]

    @Test(arguments: 0..<cases.count)
    func inconsistentConfigIsAClearError(_ i: Int) throws {
        let c = Self.cases[i]
        let directory = try ModelFamilyQuirkTests.edited(c.fixture, c.edit)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let error = #expect(throws: ModelLoadError.self, "\(c.label)") { try ModelRegistry.load(directory: directory) }
        #expect(error == c.expected, "\(c.label): \(String(describing: error))")
    }
}
