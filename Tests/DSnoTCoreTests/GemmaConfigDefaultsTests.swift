// SPDX-License-Identifier: Apache-2.0
// Gemma configs that leave keys out (as google/gemma-3-4b-it's text_config does) resolve to the defaults of
// transformers' config classes: the values below were read from transformers 5.24.0's Gemma2Config(),
// Gemma3TextConfig() and Gemma3Config(text_config={}) with /work/venv-models/bin/python, and the opt-in test
// asks transformers again when DSNOT_TRANSFORMERS_PYTHON is set.

import DSnoTCore
import DSnoTTestSupport
import Foundation
import Testing

@Suite struct GemmaConfigDefaultsTests {
    /// What transformers 5.24 reports for a config that sets nothing but `model_type`.
    struct Expected: Equatable, CustomStringConvertible {
        var vocabSize: Int
        var hiddenSize: Int
        var intermediateSize: Int
        var layers: Int
        var heads: Int
        var kvHeads: Int
        var headDim: Int
        var maxPositions: Int
        var rmsNormEps: Double
        var queryPreAttnScalar: Double
        var slidingWindow: Int
        var attnSoftCap: Double?
        var finalSoftCap: Double?
        var tied: Bool
        var globalTheta: Double
        var localTheta: Double
        /// The first 7 `layer_types`, `true` for sliding.
        var sliding: [Bool]

        var description: String {
            "vocab \(vocabSize) hidden \(hiddenSize) inter \(intermediateSize) layers \(layers) heads \(heads)/"
                + "\(kvHeads)×\(headDim) positions \(maxPositions) eps \(rmsNormEps) scalar \(queryPreAttnScalar) "
                + "window \(slidingWindow) caps \(String(describing: attnSoftCap))/\(String(describing: finalSoftCap)) "
                + "tied \(tied) theta \(globalTheta)/\(localTheta) sliding \(sliding)"
        }

        init(_ c: GemmaConfiguration) {
            vocabSize = c.vocabularySize
            hiddenSize = c.hiddenSize
            intermediateSize = c.intermediateSize
            layers = c.layerCount
            heads = c.attentionHeads
            kvHeads = c.kvHeads
            headDim = c.headDim
            maxPositions = c.maxPositions
            rmsNormEps = Double(c.rmsNormEpsilon)
            queryPreAttnScalar = (1 / Double(c.attentionScale * c.attentionScale)).rounded()
            slidingWindow = c.slidingWindow
            attnSoftCap = c.attentionSoftCap.map(Double.init)
            finalSoftCap = c.finalLogitSoftCap.map(Double.init)
            tied = c.tieWordEmbeddings
            globalTheta = Double(c.globalRope.theta)
            localTheta = Double(c.localRope.theta)
            sliding = c.layerKinds.prefix(7).map { $0 == .sliding }
        }

        init(
            vocabSize: Int,
            maxPositions: Int,
            attnSoftCap: Double?,
            finalSoftCap: Double?,
            globalTheta: Double,
            sliding: [Bool]
        ) {
            self.vocabSize = vocabSize
            hiddenSize = 2304
            intermediateSize = 9216
            layers = 26
            heads = 8
            kvHeads = 4
            headDim = 256
            self.maxPositions = maxPositions
            rmsNormEps = Double(Float(1e-6))
            queryPreAttnScalar = 256
            slidingWindow = 4096
            self.attnSoftCap = attnSoftCap
            self.finalSoftCap = finalSoftCap
            tied = true
            self.globalTheta = globalTheta
            localTheta = 10000
            self.sliding = sliding
        }
    }

    static let gemma2 = Expected(
        vocabSize: 256_000,
        maxPositions: 8192,
        attnSoftCap: 50,
        finalSoftCap: 30,
        globalTheta: 10000,
        sliding: [true, false, true, false, true, false, true]
    )
    static let gemma3 = Expected(
        vocabSize: 262_208,
        maxPositions: 131_072,
        attnSoftCap: nil,
        finalSoftCap: nil,
        globalTheta: 1_000_000,
        sliding: [true, true, true, true, true, false, true]
    )

    /// `num_key_value_heads` absent is 4 (not `num_attention_heads`), `head_dim` 256, and every other key
    /// the engine reads takes the class default too.
    @Test func absentKeysTakeTheTransformersDefaults() throws {
        let gemma2 = try GemmaConfiguration(json: Data(#"{"model_type": "gemma2"}"#.utf8))
        #expect(Expected(gemma2) == Self.gemma2)
        let gemma3 = try GemmaConfiguration(json: Data(#"{"model_type": "gemma3_text"}"#.utf8))
        #expect(Expected(gemma3) == Self.gemma3)
        let multimodal = try Gemma3MultimodalConfiguration(
            json: Data(#"{"model_type": "gemma3", "text_config": {}}"#.utf8)
        )
        #expect(Expected(multimodal.text) == Self.gemma3)
        #expect(multimodal.imageTokenIndex == 262_144 && multimodal.tokensPerImage == 256)
    }

    /// Only `num_attention_heads` given: the key/value heads stay 4 (transformers does not derive them).
    @Test func keyValueHeadsDoNotFollowTheQueryHeads() throws {
        for type in ["gemma2", "gemma3_text"] {
            let c = try GemmaConfiguration(json: Data(#"{"model_type": "\#(type)", "num_attention_heads": 16}"#.utf8))
            #expect(c.attentionHeads == 16 && c.kvHeads == 4 && c.headDim == 256, "\(type)")
        }
    }

    /// An explicit `null` soft-cap is "none" in transformers (`Gemma2Config.from_dict`), an absent one the
    /// default (50 / 30).
    @Test func nullSoftCapIsNoneAbsentIsTheDefault() throws {
        let nulls = try GemmaConfiguration(
            json: Data(
                #"{"model_type": "gemma2", "attn_logit_softcapping": null, "final_logit_softcapping": null}"#.utf8
            )
        )
        #expect(nulls.attentionSoftCap == nil && nulls.finalLogitSoftCap == nil)
        let one = try GemmaConfiguration(json: Data(#"{"model_type": "gemma2", "final_logit_softcapping": null}"#.utf8))
        #expect(one.attentionSoftCap == 50 && one.finalLogitSoftCap == nil)
    }

    /// google/gemma-3-4b-it's config.json (transformers 4.50 spelling): `text_config` states six keys and
    /// relies on the defaults for the rest. Expected values as transformers 5.24's `Gemma3Config.from_dict`
    /// reports them: 8 heads, 4 kv heads × 256, vocab 262208, every 6th layer global (5, 11, …, 29) with
    /// RoPE 1e6 × linear 8, local layers RoPE 1e4 with window 1024, tied.
    @Test func gemma3MultimodalDecodesThe4BConfig() throws {
        let json = """
            {"architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999, "eoi_token_index": 256000,
             "eos_token_id": [1, 106], "image_token_index": 262144, "initializer_range": 0.02, "mm_tokens_per_image": 256,
             "model_type": "gemma3",
             "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
               "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024},
             "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0",
             "vision_config": {"hidden_size": 1152, "image_size": 896, "intermediate_size": 4304,
               "model_type": "siglip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 27,
               "patch_size": 14, "vision_use_head": false}}
            """
        let c = try Gemma3MultimodalConfiguration(json: Data(json.utf8))
        let t = c.text
        #expect(t.hiddenSize == 2560 && t.intermediateSize == 10240 && t.layerCount == 34)
        #expect(t.attentionHeads == 8 && t.kvHeads == 4 && t.headDim == 256 && t.vocabularySize == 262_208)
        #expect(t.slidingWindow == 1024 && t.maxPositions == 131_072 && t.tieWordEmbeddings)
        #expect(t.attentionScale == 1 / 16 && t.attentionSoftCap == nil && t.finalLogitSoftCap == nil)
        #expect(t.layerKinds.indices.filter { t.layerKinds[$0] == .full } == [5, 11, 17, 23, 29])
        #expect(t.globalRope == .init(theta: 1_000_000, scaling: .linear(factor: 8)))
        #expect(t.localRope == .init(theta: 10000, scaling: .none))
        #expect(c.visionHiddenSize == 1152 && c.tokensPerImage == 256 && c.imageTokenIndex == 262_144)
    }

    static let python = ProcessInfo.processInfo.environment["DSNOT_TRANSFORMERS_PYTHON"]

    /// The same defaults asked of transformers itself (opt-in: needs torch and transformers).
    @Test(
        .enabled(if: python != nil, "set DSNOT_TRANSFORMERS_PYTHON to a Python with torch and transformers"),
        arguments: ["gemma2", "gemma3_text", "gemma3"]
    )
    func defaultsAgreeWithTransformersLive(_ type: String) throws {
        let python = try #require(Self.python)
        let script = """
            import json, sys, transformers
            c = transformers.AutoConfig.for_model(sys.argv[1], **({"text_config": {}} if sys.argv[1] == "gemma3" else {}))
            t = c.text_config if sys.argv[1] == "gemma3" else c
            rope = t.rope_parameters
            full, local = (rope["full_attention"], rope["sliding_attention"]) if "full_attention" in rope else (rope, rope)
            print(json.dumps([t.vocab_size, t.hidden_size, t.intermediate_size, t.num_hidden_layers,
                t.num_attention_heads, t.num_key_value_heads, t.head_dim, t.max_position_embeddings, t.rms_norm_eps,
                t.query_pre_attn_scalar, t.sliding_window, t.attn_logit_softcapping,
                None if sys.argv[1] == "gemma3" else t.final_logit_softcapping, c.tie_word_embeddings,
                full["rope_theta"], local["rope_theta"] if sys.argv[1] != "gemma2" else 10000.0,
                [x == "sliding_attention" for x in t.layer_types[:7]]]))
            """
        let (status, output) = try ExternalProcess.run(python, ["-c", script, type])
        #expect(status == 0, "\(output)")
        let line = try #require(output.split(separator: "\n").last)
        let v = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [Any])
        func int(_ i: Int) -> Int { (v[i] as? NSNumber)?.intValue ?? -1 }
        func double(_ i: Int) -> Double? { (v[i] as? NSNumber)?.doubleValue }
        var reported = Self.gemma3
        reported.vocabSize = int(0)
        reported.hiddenSize = int(1)
        reported.intermediateSize = int(2)
        reported.layers = int(3)
        reported.heads = int(4)
        reported.kvHeads = int(5)
        reported.headDim = int(6)
        reported.maxPositions = int(7)
        reported.rmsNormEps = Double(Float(double(8) ?? 0))
        reported.queryPreAttnScalar = double(9) ?? 0
        reported.slidingWindow = int(10)
        reported.attnSoftCap = double(11)
        reported.finalSoftCap = double(12)
        reported.tied = (v[13] as? Bool) ?? false
        reported.globalTheta = double(14) ?? 0
        reported.localTheta = double(15) ?? 0
        reported.sliding = (v[16] as? [Bool]) ?? []
        let ours: GemmaConfiguration =
            type == "gemma3"
            ? try Gemma3MultimodalConfiguration(json: Data(#"{"model_type": "gemma3", "text_config": {}}"#.utf8)).text
            : try GemmaConfiguration(json: Data(#"{"model_type": "\#(type)"}"#.utf8))
        #expect(Expected(ours) == reported, "\(type): ours \(Expected(ours)), transformers \(reported)")
    }
}
