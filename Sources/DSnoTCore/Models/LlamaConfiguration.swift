// SPDX-License-Identifier: Apache-2.0
// LlamaConfiguration: config.json of the LLaMA family (llama, mistral, qwen2, qwen3) decoded and validated.

public import Foundation

/// The resolved hyper-parameters of a LLaMA-family checkpoint (LLaMA-1/2/3, Vicuna, SmolLM2 are
/// `llama`; Mistral and Qwen2 differ only in defaults, biases and the sliding window; Qwen3 adds a
/// per-head RMSNorm on queries and keys).
public struct LlamaConfiguration: Sendable, Equatable {
    /// The family members this configuration decodes.
    public static let modelTypes = ["llama", "mistral", "qwen2", "qwen3"]

    public var modelType: String
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var attentionHeads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var vocabularySize: Int
    public var maxPositions: Int
    public var rmsNormEpsilon: Float
    public var ropeTheta: Float
    public var ropeScaling: RopeScaling
    /// No `lm_head.weight`: the LM head is the embedding matrix.
    public var tieWordEmbeddings: Bool
    /// Biases on `q_proj`, `k_proj`, `v_proj` (Qwen2; `attention_bias` in LLaMA also covers `o_proj`).
    public var qkvBias: Bool
    public var outputBias: Bool
    public var mlpBias: Bool
    /// Mistral's sliding attention window, when set.
    public var slidingWindow: Int?
    /// Qwen3: `self_attn.q_norm` / `k_norm`, an RMSNorm of width `headDim` applied to every query and
    /// key head before RoPE.
    public var queryKeyNorm: Bool

    /// The raw keys of `config.json` (snake_case on disk).
    struct Raw: Decodable {
        var modelType: String
        var hiddenSize: Int
        var intermediateSize: Int
        var numHiddenLayers: Int
        var numAttentionHeads: Int
        var numKeyValueHeads: Int?
        var headDim: Int?
        var vocabSize: Int
        var maxPositionEmbeddings: Int?
        var rmsNormEps: Double?
        var ropeTheta: Double?
        var ropeScaling: RopeParameters?
        var ropeParameters: RopeParameters?
        var tieWordEmbeddings: Bool?
        var attentionBias: Bool?
        var qkvBias: Bool?
        var mlpBias: Bool?
        var hiddenAct: String?
        var slidingWindow: Int?
        var useSlidingWindow: Bool?

        enum CodingKeys: String, CodingKey {
            case modelType = "model_type"
            case hiddenSize = "hidden_size"
            case intermediateSize = "intermediate_size"
            case numHiddenLayers = "num_hidden_layers"
            case numAttentionHeads = "num_attention_heads"
            case numKeyValueHeads = "num_key_value_heads"
            case headDim = "head_dim"
            case vocabSize = "vocab_size"
            case maxPositionEmbeddings = "max_position_embeddings"
            case rmsNormEps = "rms_norm_eps"
            case ropeTheta = "rope_theta"
            case ropeScaling = "rope_scaling"
            case ropeParameters = "rope_parameters"
            case tieWordEmbeddings = "tie_word_embeddings"
            case attentionBias = "attention_bias"
            case qkvBias = "qkv_bias"
            case mlpBias = "mlp_bias"
            case hiddenAct = "hidden_act"
            case slidingWindow = "sliding_window"
            case useSlidingWindow = "use_sliding_window"
        }
    }

    /// `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5).
    struct RopeParameters: Decodable {
        var ropeType: String?
        var type: String?
        var ropeTheta: Double?
        var factor: Double?
        var lowFreqFactor: Double?
        var highFreqFactor: Double?
        var originalMaxPositionEmbeddings: Int?
        var shortFactor: [Double]?
        var longFactor: [Double]?
        var attentionFactor: Double?
        var partialRotaryFactor: Double?

        enum CodingKeys: String, CodingKey {
            case ropeType = "rope_type"
            case type
            case ropeTheta = "rope_theta"
            case factor
            case lowFreqFactor = "low_freq_factor"
            case highFreqFactor = "high_freq_factor"
            case originalMaxPositionEmbeddings = "original_max_position_embeddings"
            case shortFactor = "short_factor"
            case longFactor = "long_factor"
            case attentionFactor = "attention_factor"
            case partialRotaryFactor = "partial_rotary_factor"
        }
    }

    /// Decodes and validates `config.json`.
    /// - Throws: `ModelLoadError.invalidConfig`, `.invalidValue`, `.unsupportedOption`, `.unknownModelType`.
    public init(json data: Data, path: String = "config.json") throws {
        let raw = try ConfigDecoding.decode(Raw.self, from: data, path: path)
        guard Self.modelTypes.contains(raw.modelType) else {
            throw ModelLoadError.unknownModelType(raw.modelType, supported: Self.modelTypes)
        }
        try self.init(raw: raw, attentionOf: raw.modelType)
    }

    /// Validates the decoded keys.
    /// - Parameter family: the member of `modelTypes` whose attention rules apply (biases, sliding
    ///   window, q/k norms): the type itself, or the dense sibling of a MoE type (`MoEConfiguration`).
    init(raw: Raw, attentionOf family: String) throws {
        modelType = raw.modelType
        hiddenSize = try ConfigDecoding.positive(raw.hiddenSize, "hidden_size")
        intermediateSize = try ConfigDecoding.positive(raw.intermediateSize, "intermediate_size")
        layerCount = try ConfigDecoding.positive(raw.numHiddenLayers, "num_hidden_layers")
        attentionHeads = try ConfigDecoding.positive(raw.numAttentionHeads, "num_attention_heads")
        kvHeads = try ConfigDecoding.keyValueHeads(raw.numKeyValueHeads, attentionHeads: attentionHeads)
        headDim = try ConfigDecoding.headWidth(raw.headDim, hiddenSize: hiddenSize, attentionHeads: attentionHeads)
        guard headDim % 2 == 0 else {
            throw ModelLoadError.invalidValue(
                key: "head_dim",
                value: "\(headDim)",
                expected: "an even number (RoPE rotates pairs)"
            )
        }
        vocabularySize = try ConfigDecoding.positive(raw.vocabSize, "vocab_size")
        maxPositions = try ConfigDecoding.positive(raw.maxPositionEmbeddings ?? 2048, "max_position_embeddings")
        rmsNormEpsilon = try ConfigDecoding.positive(raw.rmsNormEps ?? 1e-6, "rms_norm_eps")
        let activation = raw.hiddenAct ?? "silu"
        guard activation == "silu" else {
            throw ModelLoadError.unsupportedOption(key: "hidden_act", value: activation, supported: ["silu"])
        }
        let rope = raw.ropeParameters ?? raw.ropeScaling
        ropeTheta = try ConfigDecoding.positive(rope?.ropeTheta ?? raw.ropeTheta ?? 10000, "rope_theta")
        ropeScaling = try Self.scaling(rope, key: raw.ropeParameters != nil ? "rope_parameters" : "rope_scaling")
        tieWordEmbeddings = raw.tieWordEmbeddings ?? false
        let attentionBias = raw.attentionBias ?? false
        qkvBias = family == "qwen2" ? raw.qkvBias ?? true : attentionBias
        outputBias = family == "qwen2" ? false : attentionBias
        mlpBias = raw.mlpBias ?? false
        switch family {
        case "mistral":
            slidingWindow = try raw.slidingWindow.map { try ConfigDecoding.positive($0, "sliding_window") }
        case "qwen2" where raw.useSlidingWindow == true, "qwen3" where raw.useSlidingWindow == true:
            throw ModelLoadError.unsupportedOption(key: "use_sliding_window", value: "true", supported: ["false"])
        default:
            slidingWindow = nil
        }
        queryKeyNorm = family == "qwen3"
    }

    /// The rotary scaling named by `rope_type` (or the older `type`).
    /// - Parameter key: the config key it came from, for messages.
    static func scaling(_ rope: RopeParameters?, key prefix: String = "rope_scaling") throws -> RopeScaling {
        let supported = ["default", "linear", "llama3"]
        guard let rope, let type = rope.ropeType ?? rope.type else { return .none }
        func need(_ value: Double?, _ key: String) throws -> Float {
            guard let value else {
                throw ModelLoadError.invalidValue(
                    key: "\(prefix).\(key)",
                    value: "absent",
                    expected: "a number for \(type)"
                )
            }
            return try ConfigDecoding.positive(value, "\(prefix).\(key)")
        }
        switch type {
        case "default":
            return .none
        case "linear":
            return .linear(factor: try need(rope.factor, "factor"))
        case "llama3":
            let low = try need(rope.lowFreqFactor, "low_freq_factor")
            let high = try need(rope.highFreqFactor, "high_freq_factor")
            guard high > low else {
                throw ModelLoadError.invalidValue(
                    key: "\(prefix).high_freq_factor",
                    value: "\(high)",
                    expected: "greater than low_freq_factor (\(low))"
                )
            }
            guard let context = rope.originalMaxPositionEmbeddings, context > 0 else {
                throw ModelLoadError.invalidValue(
                    key: "\(prefix).original_max_position_embeddings",
                    value: "\(String(describing: rope.originalMaxPositionEmbeddings))",
                    expected: "a positive integer"
                )
            }
            return .llama3(
                factor: try need(rope.factor, "factor"),
                lowFrequencyFactor: low,
                highFrequencyFactor: high,
                originalContext: context
            )
        default:
            throw ModelLoadError.unsupportedOption(key: "\(prefix).rope_type", value: type, supported: supported)
        }
    }
}
