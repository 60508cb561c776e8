// SPDX-License-Identifier: Apache-2.0
// ModelRegistry tests: config.json decoding per architecture, defaults, and every rejected option.

import DSnoTCore
import Foundation
import SafeTensors
import Testing

@Suite struct ModelRegistryTests {
    static let llama = """
        {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "vocab_size": 128
        """

    static func config(_ type: String = "llama", _ extra: String = "") throws -> LlamaConfiguration {
        let json = Self.llama.replacingOccurrences(of: "\"llama\"", with: "\"\(type)\"") + extra + "}"
        return try LlamaConfiguration(json: Data(json.utf8))
    }

    @Test func llamaDefaultsFollowTransformers() throws {
        let c = try Self.config()
        #expect(c.kvHeads == 4 && c.headDim == 16 && c.ropeTheta == 10000 && c.ropeScaling == .none)
        #expect(!c.tieWordEmbeddings && !c.qkvBias && !c.outputBias && c.slidingWindow == nil)
        #expect(c.rmsNormEpsilon == 1e-6)
    }

    @Test func qwen2HasQKVBiasesButNoOutputBias() throws {
        let c = try Self.config("qwen2", #", "sliding_window": 4096, "use_sliding_window": false"#)
        #expect(c.qkvBias && !c.outputBias && c.slidingWindow == nil)
    }

    @Test func mistralKeepsItsSlidingWindow() throws {
        #expect(try Self.config("mistral", #", "sliding_window": 4096"#).slidingWindow == 4096)
        #expect(try Self.config("mistral", #", "sliding_window": null"#).slidingWindow == nil)
    }

    /// transformers 4 writes `rope_scaling` with `type`/`rope_type` and a top-level `rope_theta`;
    /// transformers 5 writes `rope_parameters` (see the llama3_rope fixture). Both decode alike.
    @Test func llama3RopeScalingDecodesFromBothSpellings() throws {
        let v4 = try Self.config(
            "llama",
            #", "rope_theta": 500000.0, "rope_scaling": {"type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "#
                + #""high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#
        )
        let v5 = try Self.config(
            "llama",
            #", "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "#
                + #""low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}"#
        )
        #expect(v4 == v5)
        #expect(v4.ropeTheta == 500000)
        #expect(
            v4.ropeScaling == .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4, originalContext: 8192)
        )
    }

    static let rejected: [(String, String, ModelLoadError)] = [
        (
            "llama", #", "rope_scaling": {"rope_type": "yarn", "factor": 4.0}"#,
            .unsupportedOption(
                key: "rope_scaling.rope_type",
                value: "yarn",
                supported: ["default", "linear", "llama3"]
            )
        ),
        (
            "llama", #", "hidden_act": "gelu""#,
            .unsupportedOption(key: "hidden_act", value: "gelu", supported: ["silu"])
        ),
        (
            "llama", #", "num_key_value_heads": 3"#,
            .invalidValue(key: "num_key_value_heads", value: "3", expected: "a divisor of num_attention_heads (4)")
        ),
        (
            "llama", #", "head_dim": 15"#,
            .invalidValue(key: "head_dim", value: "15", expected: "an even number (RoPE rotates pairs)")
        ),
        (
            "llama", #", "rms_norm_eps": -1"#,
            .invalidValue(key: "rms_norm_eps", value: "-1.0", expected: "a positive finite number")
        ),
        (
            "qwen2", #", "use_sliding_window": true"#,
            .unsupportedOption(key: "use_sliding_window", value: "true", supported: ["false"])
        ),
    ]

    @Test(arguments: 0..<rejected.count)
    func unsupportedOrInvalidOptionsAreClearErrors(_ i: Int) throws {
        let (type, extra, error) = Self.rejected[i]
        #expect(throws: error) { try Self.config(type, extra) }
    }

    @Test func unknownModelTypeListsTheSupportedOnes() throws {
        let json = Data(#"{"model_type": "gpt_neox", "hidden_size": 8}"#.utf8)
        let file = try SafeTensorsFile(path: ModelFixtures.path("llama_gqa_tied", "model.safetensors"))
        let error = #expect(throws: ModelLoadError.self) { try ModelRegistry.model(config: json, tensors: file) }
        let supported = [
            "llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "gemma3", "phi3", "mixtral", "qwen2_moe",
            "qwen3_moe", "opt",
        ]
        #expect(error == .unknownModelType("gpt_neox", supported: supported))
        #expect(
            error?.description
                == "unknown model_type 'gpt_neox' (supported: llama, mistral, qwen2, qwen3, gemma2, gemma3_text, gemma3, "
                + "phi3, mixtral, qwen2_moe, qwen3_moe, opt)"
        )
    }

    @Test func missingAndMistypedKeysNameTheKey() throws {
        let missing = #expect(throws: ModelLoadError.self) {
            try LlamaConfiguration(json: Data(#"{"model_type": "llama", "hidden_size": 64}"#.utf8))
        }
        #expect(missing?.description.contains("intermediate_size") == true)
        let mistyped = #expect(throws: ModelLoadError.self) {
            try Self.config("llama", #", "tie_word_embeddings": "yes""#)
        }
        #expect(mistyped?.description.contains("tie_word_embeddings") == true)
        #expect(throws: ModelLoadError.invalidConfig(path: "config.json", reason: "no 'model_type' key")) {
            try ModelRegistry.model(
                config: Data("{}".utf8),
                tensors: try SafeTensorsFile(path: ModelFixtures.path("llama_gqa_tied", "model.safetensors"))
            )
        }
    }

    @Test func optDecodesLayerNormOrderAndProjection() throws {
        let json = """
            {"model_type": "opt", "hidden_size": 64, "ffn_dim": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "vocab_size": 128, "max_position_embeddings": 64, "word_embed_proj_dim": 32, "do_layer_norm_before": false}
            """
        let c = try OPTConfiguration(json: Data(json.utf8))
        #expect(!c.layerNormBefore && !c.hasFinalLayerNorm && c.wordEmbedProjectionSize == 32 && c.tieWordEmbeddings)
        let gelu = json.replacingOccurrences(of: "}", with: #", "activation_function": "gelu"}"#)
        #expect(
            throws: ModelLoadError.unsupportedOption(key: "activation_function", value: "gelu", supported: ["relu"])
        ) {
            try OPTConfiguration(json: Data(gelu.utf8))
        }
    }

    @Test(arguments: ["llama_gqa_tied", "opt_post_ln_proj"])
    func registryReportsTheArchitecture(_ name: String) throws {
        let model = try ModelRegistry.load(directory: ModelFixtures.path(name))
        #expect(model.blockCount == 2 && model.hiddenSize == 64 && model.vocabularySize == 128)
        #expect(model.modelType == (name.hasPrefix("opt") ? "opt" : "llama"))
        #expect(throws: ModelLoadError.blockOutOfRange(index: 2, blockCount: 2)) { try model.loadBlock(2) }
    }

    /// gemma-2-2b's config.json (transformers 4 spelling, no `layer_types`): alternating sliding/full
    /// layers, both soft-caps, one RoPE for every layer.
    @Test func gemma2DecodesATransformers4Config() throws {
        let json = """
            {"model_type": "gemma2", "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0, "head_dim": 256,
             "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "hidden_size": 2304,
             "intermediate_size": 9216, "max_position_embeddings": 8192, "num_attention_heads": 8,
             "num_hidden_layers": 26, "num_key_value_heads": 4, "query_pre_attn_scalar": 256, "rms_norm_eps": 1e-06,
             "rope_theta": 10000.0, "sliding_window": 4096, "vocab_size": 256000}
            """
        let c = try GemmaConfiguration(json: Data(json.utf8))
        #expect(c.layerKinds.count == 26 && c.layerKinds[0] == .sliding && c.layerKinds[1] == .full)
        #expect(c.layerKinds.enumerated().allSatisfy { i, kind in kind == (i % 2 == 0 ? .sliding : .full) })
        #expect(c.attentionSoftCap == 50 && c.finalLogitSoftCap == 30 && c.attentionScale == 1 / 16)
        #expect(c.globalRope == c.localRope && c.globalRope.theta == 10000 && c.globalRope.scaling == .none)
        #expect(c.tieWordEmbeddings && c.slidingWindow == 4096 && !c.queryKeyNorm)
    }

    /// gemma-3-1b-it's config.json: every 6th layer global (RoPE 1e6), the others local (window 512,
    /// RoPE 1e4), no soft-capping; Gemma 3 4B's `rope_scaling` (linear 8) applies to global layers only.
    @Test func gemma3DecodesATransformers4Config() throws {
        let json = """
            {"model_type": "gemma3_text", "attention_bias": false, "attn_logit_softcapping": null,
             "final_logit_softcapping": null, "head_dim": 256, "hidden_activation": "gelu_pytorch_tanh",
             "hidden_size": 1152, "intermediate_size": 6912, "max_position_embeddings": 32768,
             "num_attention_heads": 4, "num_hidden_layers": 26, "num_key_value_heads": 1, "query_pre_attn_scalar": 256,
             "rms_norm_eps": 1e-06, "rope_local_base_freq": 10000, "rope_scaling": null, "rope_theta": 1000000,
             "sliding_window": 512, "sliding_window_pattern": 6, "vocab_size": 262144
            """
        let c = try GemmaConfiguration(json: Data((json + "}").utf8))
        #expect(c.layerKinds.enumerated().allSatisfy { i, kind in kind == ((i + 1) % 6 == 0 ? .full : .sliding) })
        #expect(c.attentionSoftCap == nil && c.finalLogitSoftCap == nil && c.queryKeyNorm)
        #expect(c.globalRope == .init(theta: 1_000_000, scaling: .none))
        #expect(c.localRope == .init(theta: 10000, scaling: .none))
        let scaled = try GemmaConfiguration(
            json: Data(
                (json.replacingOccurrences(
                    of: #""rope_scaling": null"#,
                    with: #""rope_scaling": {"factor": 8.0, "rope_type": "linear"}"#
                ) + "}").utf8
            )
        )
        #expect(scaled.globalRope == .init(theta: 1_000_000, scaling: .linear(factor: 8)))
        #expect(scaled.localRope == .init(theta: 10000, scaling: .none))
    }

    /// Phi-4-mini's config.json: a quarter of each head unrotated, longrope in the transformers 4 spelling
    /// (`type`), attention factor √(1 + ln 32 / ln 4096) from the context extension 4096 → 131072.
    @Test func phi3DecodesPhi4MiniLongRope() throws {
        let factors = Array(repeating: "1.0", count: 48).joined(separator: ", ")
        let json = """
            {"model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192, "max_position_embeddings": 131072,
             "num_attention_heads": 24, "num_hidden_layers": 32, "num_key_value_heads": 8,
             "original_max_position_embeddings": 4096, "partial_rotary_factor": 0.75, "rms_norm_eps": 1e-05,
             "rope_scaling": {"long_factor": [\(factors)], "short_factor": [\(factors)], "type": "longrope"},
             "rope_theta": 10000.0, "sliding_window": 262144, "tie_word_embeddings": true, "vocab_size": 200064}
            """
        let c = try Phi3Configuration(json: Data(json.utf8))
        #expect(c.headDim == 128 && c.rotaryDim == 96 && c.kvHeads == 8 && c.tieWordEmbeddings)
        guard case .longrope(let short, let long, let original, let attentionFactor) = c.ropeScaling else {
            Issue.record("expected longrope, got \(c.ropeScaling)")
            return
        }
        #expect(short.count == 48 && long.count == 48 && original == 4096)
        #expect(abs(attentionFactor - Float((1 + log(32.0) / log(4096.0)).squareRoot())) < 1e-6)
    }
}
