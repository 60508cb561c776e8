// SPDX-License-Identifier: Apache-2.0
// Gemma3MultimodalConfiguration: config.json of Gemma 3 ≥ 4B (gemma3): the language model's text_config, decoded and validated.

public import Foundation

/// The resolved configuration of a Gemma 3 multimodal checkpoint (`model_type` `gemma3`,
/// `Gemma3ForConditionalGeneration`): a SigLIP vision tower, a projector, and a Gemma 3 text decoder
/// described by `text_config`. The engine runs and prunes the decoder only (text-only input); the vision
/// tower and projector are copied unchanged, so their config (`vision_config`) is checked for shape only.
///
/// The decoder is decoded by `GemmaConfiguration` (as `gemma3_text`, with its defaults), then adjusted
/// to what the multimodal class runs: the LM head is tied by the top-level `tie_word_embeddings`
/// (default true; `text_config`'s own is not read by transformers' tying), and no final-logit
/// soft-capping (`Gemma3ForConditionalGeneration` does not apply `text_config.final_logit_softcapping`).
///
/// ```swift
/// let c = try Gemma3MultimodalConfiguration(json: Data(contentsOf: configURL))
/// print(c.text.layerCount, c.text.hiddenSize, c.imageTokenIndex)
/// ```
public struct Gemma3MultimodalConfiguration: Sendable, Equatable {
    /// The family members this configuration decodes.
    public static let modelTypes = ["gemma3"]
    /// The only `text_config.model_type` accepted (absent means this one, as transformers reads it).
    public static let textModelType = "gemma3_text"

    /// The language model as `Gemma3ForConditionalGeneration` runs it.
    public var text: GemmaConfiguration
    /// `image_token_index` (default 262144): the placeholder of image embeddings in a prompt.
    public var imageTokenIndex: Int
    /// `mm_tokens_per_image` (default 256).
    public var tokensPerImage: Int
    /// `vision_config.hidden_size` when the config states it (the projector's input width).
    public var visionHiddenSize: Int?

    struct Raw: Decodable {
        var modelType: String
        var textConfig: GemmaConfiguration.Source?
        var visionConfig: Vision?
        var mmTokensPerImage: Int?
        var imageTokenIndex: Int?
        var boiTokenIndex: Int?
        var eoiTokenIndex: Int?
        var tieWordEmbeddings: Bool?

        enum CodingKeys: String, CodingKey {
            case modelType = "model_type"
            case textConfig = "text_config"
            case visionConfig = "vision_config"
            case mmTokensPerImage = "mm_tokens_per_image"
            case imageTokenIndex = "image_token_index"
            case boiTokenIndex = "boi_token_index"
            case eoiTokenIndex = "eoi_token_index"
            case tieWordEmbeddings = "tie_word_embeddings"
        }
    }

    /// The keys of `vision_config` the engine checks (it must be an object when present).
    struct Vision: Decodable {
        var hiddenSize: Int?

        enum CodingKeys: String, CodingKey {
            case hiddenSize = "hidden_size"
        }
    }

    /// Decodes and validates `config.json`.
    /// - Throws: `ModelLoadError.invalidConfig` (malformed JSON, a key of the wrong type, `text_config` or
    ///   `vision_config` not an object), `.invalidValue` (missing `text_config`, out-of-range values, keys
    ///   inside `text_config` spelled `text_config.<key>`), `.unsupportedOption`, `.unknownModelType`.
    public init(json data: Data, path: String = "config.json") throws {
        let raw = try ConfigDecoding.decode(Raw.self, from: data, path: path)
        guard Self.modelTypes.contains(raw.modelType) else {
            throw ModelLoadError.unknownModelType(raw.modelType, supported: Self.modelTypes)
        }
        guard let source = raw.textConfig else {
            throw ModelLoadError.invalidValue(
                key: "text_config",
                value: "absent or null",
                expected: "an object describing the language model (model_type \(Self.textModelType))"
            )
        }
        if let inner = source.raw.modelType, inner != Self.textModelType {
            throw ModelLoadError.unsupportedOption(
                key: "text_config.model_type",
                value: inner,
                supported: [Self.textModelType]
            )
        }
        do {
            text = try GemmaConfiguration(source, modelType: Self.textModelType)
        } catch let error as ModelLoadError {
            throw error.nested(in: "text_config.")
        }
        text.tieWordEmbeddings = raw.tieWordEmbeddings ?? true
        text.finalLogitSoftCap = nil
        tokensPerImage = try ConfigDecoding.positive(raw.mmTokensPerImage ?? 256, "mm_tokens_per_image")
        imageTokenIndex = try Self.tokenIndex(raw.imageTokenIndex ?? 262_144, "image_token_index")
        _ = try raw.boiTokenIndex.map { try Self.tokenIndex($0, "boi_token_index") }
        _ = try raw.eoiTokenIndex.map { try Self.tokenIndex($0, "eoi_token_index") }
        visionHiddenSize = try raw.visionConfig?.hiddenSize.map {
            try ConfigDecoding.positive($0, "vision_config.hidden_size")
        }
    }

    /// - Throws: `ModelLoadError.invalidValue` unless `value ≥ 0`.
    static func tokenIndex(_ value: Int, _ key: String) throws -> Int {
        guard value >= 0 else {
            throw ModelLoadError.invalidValue(key: key, value: "\(value)", expected: "a token id (≥ 0)")
        }
        return value
    }
}
