// SPDX-License-Identifier: Apache-2.0
// Phi3Configuration: config.json of Phi-3 / Phi-3.5 / Phi-4 (phi3) decoded and validated.

public import Foundation

/// The resolved hyper-parameters of a `phi3` checkpoint: a LLaMA-shaped decoder with fused `qkv_proj`
/// and `gate_up_proj`, RoPE on the first `partial_rotary_factor · head_dim` dimensions of each head,
/// and optionally `longrope` scaling.
public struct Phi3Configuration: Sendable, Equatable {
    /// The family members this configuration decodes.
    public static let modelTypes = ["phi3"]

    public var modelType: String
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var attentionHeads: Int
    public var kvHeads: Int
    public var headDim: Int
    /// The rotated leading dimensions of every head (`head_dim · partial_rotary_factor`, even).
    public var rotaryDim: Int
    public var vocabularySize: Int
    public var maxPositions: Int
    public var rmsNormEpsilon: Float
    public var ropeTheta: Float
    public var ropeScaling: RopeScaling
    public var tieWordEmbeddings: Bool
    /// When set, query `i` sees only keys `j` with `i − j < slidingWindow`.
    public var slidingWindow: Int?

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
        var originalMaxPositionEmbeddings: Int?
        var rmsNormEps: Double?
        var ropeTheta: Double?
        var ropeScaling: LlamaConfiguration.RopeParameters?
        var ropeParameters: LlamaConfiguration.RopeParameters?
        var partialRotaryFactor: Double?
        var tieWordEmbeddings: Bool?
        var hiddenAct: String?
        var slidingWindow: Int?

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
            case originalMaxPositionEmbeddings = "original_max_position_embeddings"
            case rmsNormEps = "rms_norm_eps"
            case ropeTheta = "rope_theta"
            case ropeScaling = "rope_scaling"
            case ropeParameters = "rope_parameters"
            case partialRotaryFactor = "partial_rotary_factor"
            case tieWordEmbeddings = "tie_word_embeddings"
            case hiddenAct = "hidden_act"
            case slidingWindow = "sliding_window"
        }
    }

    /// Decodes and validates `config.json`.
    /// - Throws: `ModelLoadError.invalidConfig`, `.invalidValue`, `.unsupportedOption`, `.unknownModelType`.
    public init(json data: Data, path: String = "config.json") throws {
        let raw = try ConfigDecoding.decode(Raw.self, from: data, path: path)
        guard Self.modelTypes.contains(raw.modelType) else {
            throw ModelLoadError.unknownModelType(raw.modelType, supported: Self.modelTypes)
        }
        modelType = raw.modelType
        hiddenSize = try ConfigDecoding.positive(raw.hiddenSize, "hidden_size")
        intermediateSize = try ConfigDecoding.positive(raw.intermediateSize, "intermediate_size")
        layerCount = try ConfigDecoding.positive(raw.numHiddenLayers, "num_hidden_layers")
        attentionHeads = try ConfigDecoding.positive(raw.numAttentionHeads, "num_attention_heads")
        kvHeads = try ConfigDecoding.keyValueHeads(raw.numKeyValueHeads, attentionHeads: attentionHeads)
        headDim = try ConfigDecoding.headWidth(raw.headDim, hiddenSize: hiddenSize, attentionHeads: attentionHeads)
        let rope = raw.ropeParameters ?? raw.ropeScaling
        let factor = rope?.partialRotaryFactor ?? raw.partialRotaryFactor ?? 1
        guard factor > 0, factor <= 1 else {
            throw ModelLoadError.invalidValue(key: "partial_rotary_factor", value: "\(factor)", expected: "in (0, 1]")
        }
        rotaryDim = Int(Double(headDim) * factor)
        guard rotaryDim > 0, rotaryDim % 2 == 0 else {
            throw ModelLoadError.invalidValue(
                key: "partial_rotary_factor",
                value: "\(factor)",
                expected: "head_dim (\(headDim)) × partial_rotary_factor to be a positive even number, got \(rotaryDim)"
            )
        }
        vocabularySize = try ConfigDecoding.positive(raw.vocabSize, "vocab_size")
        maxPositions = try ConfigDecoding.positive(raw.maxPositionEmbeddings ?? 4096, "max_position_embeddings")
        rmsNormEpsilon = try ConfigDecoding.positive(raw.rmsNormEps ?? 1e-5, "rms_norm_eps")
        let activation = raw.hiddenAct ?? "silu"
        guard activation == "silu" else {
            throw ModelLoadError.unsupportedOption(key: "hidden_act", value: activation, supported: ["silu"])
        }
        let key = raw.ropeParameters != nil ? "rope_parameters" : "rope_scaling"
        ropeTheta = try ConfigDecoding.positive(rope?.ropeTheta ?? raw.ropeTheta ?? 10000, "rope_theta")
        ropeScaling = try Self.scaling(
            rope,
            key: key,
            rotaryDim: rotaryDim,
            maxPositions: maxPositions,
            originalMaxPositions: raw.originalMaxPositionEmbeddings ?? 4096
        )
        tieWordEmbeddings = raw.tieWordEmbeddings ?? false
        slidingWindow = try raw.slidingWindow.map { try ConfigDecoding.positive($0, "sliding_window") }
    }

    /// `longrope` (Phi-3 long-context models) or one of LLaMA's scalings.
    ///
    /// transformers `_compute_longrope_parameters`: `factor` (default `max_position_embeddings /
    /// original_max_position_embeddings`; Phi3Config's top-level `original_max_position_embeddings`,
    /// default 4096, wins over the one in `rope_scaling`); the cos/sin tables are multiplied by
    /// `attention_factor` (default `√(1 + ln factor / ln original)` when `factor > 1`); a sequence longer than the
    /// original context uses `long_factor`, otherwise `short_factor`.
    static func scaling(
        _ rope: LlamaConfiguration.RopeParameters?,
        key: String,
        rotaryDim: Int,
        maxPositions: Int,
        originalMaxPositions: Int
    ) throws -> RopeScaling {
        // transformers' Phi3Config reads the older names `su` and `yarn` as `longrope`.
        guard let rope, let type = rope.ropeType ?? rope.type, ["longrope", "su", "yarn"].contains(type) else {
            do {
                return try LlamaConfiguration.scaling(rope, key: key)
            } catch ModelLoadError.unsupportedOption(let badKey, let value, let supported) {
                throw ModelLoadError.unsupportedOption(key: badKey, value: value, supported: supported + ["longrope"])
            }
        }
        func factors(_ values: [Double]?, _ name: String) throws -> [Float] {
            guard let values, values.count == rotaryDim / 2 else {
                throw ModelLoadError.invalidValue(
                    key: "\(key).\(name)",
                    value: values.map { "a list of \($0.count) numbers" } ?? "absent",
                    expected: "\(rotaryDim / 2) numbers (one per rotated pair of a head)"
                )
            }
            return try values.map { try ConfigDecoding.positive($0, "\(key).\(name)") }
        }
        let short = try factors(rope.shortFactor, "short_factor")
        let long = try factors(rope.longFactor, "long_factor")
        let original = try ConfigDecoding.positive(
            originalMaxPositions,
            "original_max_position_embeddings"
        )
        let factor = rope.factor ?? Double(maxPositions) / Double(original)
        let attentionFactor: Float
        if let given = rope.attentionFactor {
            attentionFactor = try ConfigDecoding.positive(given, "\(key).attention_factor")
        } else {
            attentionFactor =
                factor <= 1 ? 1 : Float((1 + Foundation.log(factor) / Foundation.log(Double(original))).squareRoot())
        }
        return .longrope(short: short, long: long, originalContext: original, attentionFactor: attentionFactor)
    }
}
