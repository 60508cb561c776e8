// SPDX-License-Identifier: Apache-2.0
// Gemma 3 multimodal (model_type gemma3): both tensor spellings of the language model, the final soft-cap the
// multimodal class does not apply, and a table of hostile configs (key, value, expectation).

import DSnoTCore
import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@Suite struct Gemma3MultimodalTests {
    /// transformers 5.24's save_pretrained writes `language_model.model.…` (the tied fixture); the module's
    /// own state_dict is `model.language_model.…` with `lm_head.weight` (the untied bf16 fixture).
    @Test(arguments: [
        ("gemma3_mm_tied", "language_model.model.layers.", 3),
        ("gemma3_mm_untied_bf16", "model.language_model.layers.", 2),
    ])
    func prunableLayersAreTheLanguageModelsInEitherSpelling(_ fixture: String, _ prefix: String, _ blocks: Int)
        throws
    {
        let model = try ModelRegistry.load(directory: ModelFixtures.path(fixture))
        #expect(model.modelType == "gemma3" && model.blockCount == blocks)
        let checkpoint = try Checkpoint(directory: ModelFixtures.path(fixture))
        var prunable: [String] = []
        for b in 0..<model.blockCount {
            for layer in model.prunableLinearLayers(block: b) {
                #expect(
                    layer.tensorName.hasPrefix("\(prefix)\(b).") && checkpoint.tensorNames.contains(layer.tensorName)
                )
                prunable.append(layer.tensorName)
            }
        }
        #expect(prunable.count == 7 * blocks)
        // The vision tower's own linear layers (`…encoder.layers.0.self_attn.q_proj`) are not among them.
        let vision = checkpoint.tensorNames.filter { $0.contains("vision_tower.") && $0.hasSuffix("_proj.weight") }
        #expect(!vision.isEmpty && Set(vision).isDisjoint(with: prunable))
    }

    /// The tied fixture renamed to the other spelling (every tensor, vision included) gives bit-identical logits.
    @Test func bothSpellingsGiveTheSameLogits() throws {
        let directory = try TemporaryDirectory("dsnot-gemma3mm").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try SafeTensorsFile(path: ModelFixtures.path("gemma3_mm_tied", "model.safetensors"))
        let renamed = try RawTensor.all(in: file).map { tensor -> RawTensor in
            var t = tensor
            if t.name.hasPrefix("language_model.model.") {
                t.name = "model.language_model." + t.name.dropFirst("language_model.model.".count)
            } else {
                t.name = "model." + t.name
            }
            return t
        }
        #expect(renamed.contains { $0.name == "model.language_model.layers.2.mlp.down_proj.weight" })
        try RawTensor.write(renamed, to: directory + "/model.safetensors")
        try FileManager.default.copyItem(
            atPath: ModelFixtures.path("gemma3_mm_tied", "config.json"),
            toPath: directory + "/config.json"
        )
        let (tokens, reference) = try ModelFamilyQuirkTests.referenceLogits("gemma3_mm_tied")
        let legacy = try ModelRegistry.load(directory: ModelFixtures.path("gemma3_mm_tied")).logits(tokens: tokens)
        let current = try ModelRegistry.load(directory: directory).logits(tokens: tokens)
        #expect(current == legacy)
        let (worst, bound) = ModelFamilyQuirkTests.agreement(current, reference)
        #expect(worst <= bound)
    }

    /// `Gemma3ForConditionalGeneration` does not soft-cap its logits even when `text_config` sets
    /// `final_logit_softcapping` (3.0 in the untied fixture): transformers' logits exceed 3, and ours match them.
    @Test func theMultimodalClassIgnoresTheFinalSoftCap() throws {
        let fixture = "gemma3_mm_untied_bf16"
        let config = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: ModelFixtures.path(fixture, "config.json")))
        )
        let text = try #require((config as? [String: Any])?["text_config"] as? [String: Any])
        #expect((text["final_logit_softcapping"] as? Double) == 3.0)
        let (tokens, reference) = try ModelFamilyQuirkTests.referenceLogits(fixture)
        #expect(reference.maxAbs > 3)
        let logits = try ModelRegistry.load(directory: ModelFixtures.path(fixture)).logits(tokens: tokens)
        let (worst, bound) = ModelFamilyQuirkTests.agreement(logits, reference)
        #expect(worst <= bound)
    }

    /// Hostile edits of the tied fixture's config: each `key` (dotted inside objects) set to the JSON `value`,
    /// or removed when `value` is nil; `expected` is the error's text (`<dir>` for the checkpoint
    /// directory), or nil when the edited config must still load.
    static let hostile: [(edits: [(key: String, value: String?)], expected: String?)] = [
        (
            [("text_config", nil)],
            "config 'text_config' = absent or null is invalid: expected an object describing the language model "
                + "(model_type gemma3_text)"
        ),
        (
            [("text_config", "null")],
            "config 'text_config' = absent or null is invalid: expected an object describing the language model "
                + "(model_type gemma3_text)"
        ),
        (
            [("text_config", #""gemma""#)],
            "<dir>/config.json: invalid config: key 'text_config': expected Dictionary<String, Any>"
        ),
        (
            [("text_config", "[1, 2]")],
            "<dir>/config.json: invalid config: key 'text_config': expected Dictionary<String, Any>"
        ),
        (
            [("text_config.model_type", #""gemma2""#)],
            "config 'text_config.model_type' = gemma2 is not supported (supported: gemma3_text)"
        ),
        (
            [("text_config.model_type", #""gemma3""#)],
            "config 'text_config.model_type' = gemma3 is not supported (supported: gemma3_text)"
        ),
        ([("text_config.model_type", nil)], nil),  // transformers reads text_config as Gemma3TextConfig regardless
        (
            [("text_config.hidden_size", #""64""#)],
            "<dir>/config.json: invalid config: key 'text_config.hidden_size': expected Int"
        ),
        (
            [("text_config.hidden_size", "0")],
            "config 'text_config.hidden_size' = 0 is invalid: expected a positive integer"
        ),
        (
            [("text_config.hidden_size", "48")],
            "tensor 'multi_modal_projector.mm_input_projection_weight': expected shape [32, 48] from the config, "
                + "checkpoint has [32, 64]"
        ),
        (
            [("vision_config.hidden_size", "48")],
            "tensor 'multi_modal_projector.mm_input_projection_weight': expected shape [48, 64] from the config, "
                + "checkpoint has [32, 64]"
        ),
        (
            [("vision_config", "5")],
            "<dir>/config.json: invalid config: key 'vision_config': expected Dictionary<String, Any>"
        ),
        (
            [("text_config.num_hidden_layers", "2"), ("text_config.layer_types", nil)],
            "config contradicts the checkpoint: num_hidden_layers is 2 but the checkpoint has tensors of block 2 "
                + "('language_model.model.layers.2.…')"
        ),
        (
            [("text_config.num_hidden_layers", "4"), ("text_config.layer_types", nil)],
            "<dir>/model.safetensors: tensor 'language_model.model.layers.3.input_layernorm.weight' is missing"
        ),
        (
            [("text_config.layer_types", #"["sliding_attention", "full_attention"]"#)],
            "config 'text_config.layer_types' = a list of 2 entries is invalid: expected one entry per layer "
                + "(num_hidden_layers = 3)"
        ),
        (
            [("text_config.num_key_value_heads", "3")],
            "config 'text_config.num_key_value_heads' = 3 is invalid: expected a divisor of num_attention_heads (4)"
        ),
        (
            [("text_config.num_key_value_heads", nil)],
            "tensor 'language_model.model.layers.0.self_attn.k_proj.weight': expected shape [128, 64] from the "
                + "config, checkpoint has [64, 64]"
        ),
        (
            [("text_config.head_dim", "16")],
            "tensor 'language_model.model.layers.0.self_attn.q_norm.weight': expected shape [16] from the config, "
                + "checkpoint has [32]"
        ),
        (
            [("text_config.vocab_size", "100")],
            "tensor 'language_model.model.embed_tokens.weight': expected shape [100, 64] from the config, "
                + "checkpoint has [128, 64]"
        ),
        (
            [("text_config.use_bidirectional_attention", "true")],
            "config 'text_config.use_bidirectional_attention' = true is not supported (supported: false)"
        ),
        (
            [("text_config.rope_parameters", #"{"full_attention": {"rope_type": "yarn", "factor": 4.0}}"#)],
            "config 'text_config.rope_parameters.full_attention.rope_type' = yarn is not supported "
                + "(supported: default, linear, llama3)"
        ),
        (
            [("tie_word_embeddings", "false")],
            "<dir>/model.safetensors: tensor 'language_model.lm_head.weight' is missing"
        ),
        (
            [("mm_tokens_per_image", "0")],
            "config 'mm_tokens_per_image' = 0 is invalid: expected a positive integer"
        ),
        ([("image_token_index", "-1")], "config 'image_token_index' = -1 is invalid: expected a token id (≥ 0)"),
        // The top-level config read as a text model: it has no `model.embed_tokens.weight` of its own.
        ([("model_type", #""gemma3_text""#)], "<dir>/model.safetensors: tensor 'model.embed_tokens.weight' is missing"),
        (
            [("text_config.num_hidden_layers", "2")],
            "config 'text_config.layer_types' = a list of 3 entries is invalid: expected one entry per layer "
                + "(num_hidden_layers = 2)"
        ),
    ]

    @Test(arguments: 0..<hostile.count)
    func hostileConfigIsAClearErrorOrLoads(_ i: Int) throws {
        let (edits, expected) = Self.hostile[i]
        let parsed = try edits.map { edit in
            (
                edit.key.split(separator: ".").map(String.init),
                try edit.value.map { try JSONSerialization.jsonObject(with: Data($0.utf8), options: .fragmentsAllowed) }
            )
        }
        let directory = try ModelFamilyQuirkTests.edited("gemma3_mm_tied") { config in
            for (path, value) in parsed { Self.set(&config, path: path, to: value) }
        }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let label = edits.map { "\($0.key) = \($0.value ?? "(removed)")" }.joined(separator: ", ")
        guard let expected else {
            let model = try ModelRegistry.load(directory: directory)
            #expect(model.modelType == "gemma3", "\(label)")
            return
        }
        let error = #expect(throws: ModelLoadError.self, "\(label)") { try ModelRegistry.load(directory: directory) }
        let text = error.map { "\($0)" } ?? "no error"
        #expect(text.replacingOccurrences(of: directory, with: "<dir>") == expected, "\(label)")
    }

    /// Sets (or removes, for nil) a value at a dotted path of nested JSON objects.
    static func set(_ object: inout [String: Any], path: [String], to value: Any?) {
        guard let head = path.first else { return }
        if path.count == 1 {
            object[head] = value
            return
        }
        var child = object[head] as? [String: Any] ?? [:]
        set(&child, path: Array(path.dropFirst()), to: value)
        object[head] = child
    }
}
