// SPDX-License-Identifier: Apache-2.0
// OPTConfiguration: config.json of Meta's OPT decoded and validated.

public import Foundation

/// The resolved hyper-parameters of an OPT checkpoint (`model_type` `opt`).
public struct OPTConfiguration: Sendable, Equatable {
    public static let modelTypes = ["opt"]

    public var hiddenSize: Int
    public var ffnSize: Int
    public var layerCount: Int
    public var attentionHeads: Int
    public var vocabularySize: Int
    public var maxPositions: Int
    /// Width of the token embedding; `project_in`/`project_out` map it to and from `hiddenSize` when they differ.
    public var wordEmbedProjectionSize: Int
    /// Pre-LayerNorm (`true`, most OPT sizes) or post-LayerNorm (`false`, OPT-350m).
    public var layerNormBefore: Bool
    /// The decoder's final LayerNorm exists (pre-LN models without `_remove_final_layer_norm`).
    public var hasFinalLayerNorm: Bool
    public var tieWordEmbeddings: Bool
    /// `nn.LayerNorm`'s default.
    public var layerNormEpsilon: Float = 1e-5
    /// Learned positions are stored shifted by this many rows (HF `OPTLearnedPositionalEmbedding`).
    public static let positionOffset = 2

    struct Raw: Decodable {
        var modelType: String
        var hiddenSize: Int
        var ffnDim: Int
        var numHiddenLayers: Int
        var numAttentionHeads: Int
        var vocabSize: Int
        var maxPositionEmbeddings: Int
        var wordEmbedProjDim: Int?
        var doLayerNormBefore: Bool?
        var removeFinalLayerNorm: Bool?
        var activationFunction: String?
        var enableBias: Bool?
        var layerNormElementwiseAffine: Bool?
        var tieWordEmbeddings: Bool?

        enum CodingKeys: String, CodingKey {
            case modelType = "model_type"
            case hiddenSize = "hidden_size"
            case ffnDim = "ffn_dim"
            case numHiddenLayers = "num_hidden_layers"
            case numAttentionHeads = "num_attention_heads"
            case vocabSize = "vocab_size"
            case maxPositionEmbeddings = "max_position_embeddings"
            case wordEmbedProjDim = "word_embed_proj_dim"
            case doLayerNormBefore = "do_layer_norm_before"
            case removeFinalLayerNorm = "_remove_final_layer_norm"
            case activationFunction = "activation_function"
            case enableBias = "enable_bias"
            case layerNormElementwiseAffine = "layer_norm_elementwise_affine"
            case tieWordEmbeddings = "tie_word_embeddings"
        }
    }

    /// Decodes and validates `config.json`.
    /// - Throws: `ModelLoadError.invalidConfig`, `.invalidValue`, `.unsupportedOption`, `.unknownModelType`.
    public init(json data: Data, path: String = "config.json") throws {
        let raw = try ConfigDecoding.decode(Raw.self, from: data, path: path)
        guard Self.modelTypes.contains(raw.modelType) else {
            throw ModelLoadError.unknownModelType(raw.modelType, supported: Self.modelTypes)
        }
        hiddenSize = try ConfigDecoding.positive(raw.hiddenSize, "hidden_size")
        ffnSize = try ConfigDecoding.positive(raw.ffnDim, "ffn_dim")
        layerCount = try ConfigDecoding.positive(raw.numHiddenLayers, "num_hidden_layers")
        attentionHeads = try ConfigDecoding.positive(raw.numAttentionHeads, "num_attention_heads")
        guard hiddenSize % attentionHeads == 0 else {
            throw ModelLoadError.invalidValue(
                key: "hidden_size",
                value: "\(hiddenSize)",
                expected: "a multiple of num_attention_heads (\(attentionHeads))"
            )
        }
        vocabularySize = try ConfigDecoding.positive(raw.vocabSize, "vocab_size")
        maxPositions = try ConfigDecoding.positive(raw.maxPositionEmbeddings, "max_position_embeddings")
        wordEmbedProjectionSize = try ConfigDecoding.positive(raw.wordEmbedProjDim ?? hiddenSize, "word_embed_proj_dim")
        layerNormBefore = raw.doLayerNormBefore ?? true
        hasFinalLayerNorm = layerNormBefore && !(raw.removeFinalLayerNorm ?? false)
        tieWordEmbeddings = raw.tieWordEmbeddings ?? true
        let activation = raw.activationFunction ?? "relu"
        guard activation == "relu" else {
            throw ModelLoadError.unsupportedOption(key: "activation_function", value: activation, supported: ["relu"])
        }
        if raw.enableBias == false {
            throw ModelLoadError.unsupportedOption(key: "enable_bias", value: "false", supported: ["true"])
        }
        if raw.layerNormElementwiseAffine == false {
            throw ModelLoadError.unsupportedOption(
                key: "layer_norm_elementwise_affine",
                value: "false",
                supported: ["true"]
            )
        }
    }

    /// Width of one attention head.
    public var headDim: Int { hiddenSize / attentionHeads }
}
