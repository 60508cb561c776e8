// SPDX-License-Identifier: Apache-2.0
// GemmaConfiguration: config.json of Gemma 2 and Gemma 3 text decoders (gemma2, gemma3_text) decoded and validated.

public import Foundation

/// The resolved hyper-parameters of a Gemma 2 or Gemma 3 (text) checkpoint.
///
/// Both scale the embeddings by `√hidden_size`, use `(1 + w)` RMSNorms (four per block), a GeGLU MLP
/// with `gelu_pytorch_tanh`, attention scaled by `query_pre_attn_scalar^-½`, and alternate sliding-window
/// (local) and full (global) attention layers. Gemma 2 soft-caps attention scores and the final logits;
/// Gemma 3 instead normalises queries and keys per head and gives local layers their own RoPE base.
public struct GemmaConfiguration: Sendable, Equatable {
    /// The family members this configuration decodes.
    public static let modelTypes = ["gemma2", "gemma3_text"]
    /// The values of `layer_types`.
    static let layerTypeNames = ["sliding_attention", "full_attention"]

    /// A RoPE base and its scaling.
    public struct Rope: Sendable, Equatable {
        public var theta: Float
        public var scaling: RopeScaling

        public init(theta: Float, scaling: RopeScaling) {
            self.theta = theta
            self.scaling = scaling
        }
    }

    /// One layer's attention: a sliding window (local) or the whole prefix (global).
    public enum LayerKind: Sendable, Equatable {
        case sliding
        case full
    }

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
    /// `query_pre_attn_scalar^-½`, the attention score scale.
    public var attentionScale: Float
    /// The window of the `sliding` layers.
    public var slidingWindow: Int
    /// One entry per layer.
    public var layerKinds: [LayerKind]
    /// RoPE of the `full` layers (Gemma 3 scales it, e.g. `linear` ×8 on the 4B+ models).
    public var globalRope: Rope
    /// RoPE of the `sliding` layers (Gemma 3 `rope_local_base_freq`; Gemma 2: the same as global).
    public var localRope: Rope
    /// Gemma 2 `attn_logit_softcapping`.
    public var attentionSoftCap: Float?
    /// Gemma 2 `final_logit_softcapping`.
    public var finalLogitSoftCap: Float?
    /// Gemma 3: per-head `q_norm` / `k_norm`.
    public var queryKeyNorm: Bool
    public var tieWordEmbeddings: Bool
    /// `attention_bias` (q, k, v and o).
    public var attentionBias: Bool

    /// The keys of `config.json` (or of a multimodal config's `text_config`); every one may be absent
    /// and then takes the default of transformers' `Gemma2Config` / `Gemma3TextConfig` (`Defaults`).
    struct Raw: Decodable {
        var modelType: String?
        var hiddenSize: Int?
        var intermediateSize: Int?
        var numHiddenLayers: Int?
        var numAttentionHeads: Int?
        var numKeyValueHeads: Int?
        var headDim: Int?
        var vocabSize: Int?
        var maxPositionEmbeddings: Int?
        var rmsNormEps: Double?
        var queryPreAttnScalar: Double?
        var slidingWindow: Int?
        var slidingWindowPattern: Int?
        var layerTypes: [String]?
        var ropeTheta: Double?
        var ropeLocalBaseFreq: Double?
        var ropeScaling: LlamaConfiguration.RopeParameters?
        var ropeParameters: RopeParameterSet?
        var attnLogitSoftcapping: Double?
        var finalLogitSoftcapping: Double?
        var tieWordEmbeddings: Bool?
        var attentionBias: Bool?
        var hiddenActivation: String?
        var hiddenAct: String?
        var useBidirectionalAttention: Bool?

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
            case queryPreAttnScalar = "query_pre_attn_scalar"
            case slidingWindow = "sliding_window"
            case slidingWindowPattern = "sliding_window_pattern"
            case layerTypes = "layer_types"
            case ropeTheta = "rope_theta"
            case ropeLocalBaseFreq = "rope_local_base_freq"
            case ropeScaling = "rope_scaling"
            case ropeParameters = "rope_parameters"
            case attnLogitSoftcapping = "attn_logit_softcapping"
            case finalLogitSoftcapping = "final_logit_softcapping"
            case tieWordEmbeddings = "tie_word_embeddings"
            case attentionBias = "attention_bias"
            case hiddenActivation = "hidden_activation"
            case hiddenAct = "hidden_act"
            case useBidirectionalAttention = "use_bidirectional_attention"
        }
    }

    /// `Raw` and the keys whose value is an explicit `null`: transformers keeps a null soft-cap as
    /// "none", while an absent one takes the class default (Gemma 2: 50 and 30).
    struct Source: Decodable {
        var raw: Raw
        var nullKeys: Set<String>

        init(from decoder: any Decoder) throws {
            raw = try Raw(from: decoder)
            nullKeys = try ConfigDecoding.nullKeys(decoder)
        }
    }

    /// The class defaults of transformers 5.24 `Gemma2Config` and `Gemma3TextConfig` for every key this
    /// engine reads (`GemmaConfigDefaultsTests` pins them and, opt-in, asks transformers).
    struct Defaults {
        var vocabularySize: Int
        var maxPositions: Int
        var ropeTheta: Double
        var attentionSoftCap: Double?
        var finalLogitSoftCap: Double?
        static let hiddenSize = 2304
        static let intermediateSize = 9216
        static let layerCount = 26
        static let attentionHeads = 8
        static let kvHeads = 4
        static let headDim = 256
        static let queryPreAttnScalar = 256.0
        static let slidingWindow = 4096
        static let rmsNormEpsilon = 1e-6
        static let slidingWindowPattern = 6
        static let localRopeTheta = 10000.0

        static let gemma2 = Defaults(
            vocabularySize: 256_000,
            maxPositions: 8192,
            ropeTheta: 10000,
            attentionSoftCap: 50,
            finalLogitSoftCap: 30
        )
        static let gemma3 = Defaults(
            vocabularySize: 262_208,
            maxPositions: 131_072,
            ropeTheta: 1_000_000,
            attentionSoftCap: nil,
            finalLogitSoftCap: nil
        )
    }

    /// transformers 5 writes Gemma 3's `rope_parameters` per layer type
    /// (`{"full_attention": {…}, "sliding_attention": {…}}`) and Gemma 2's as one set.
    struct RopeParameterSet: Decodable {
        var shared: LlamaConfiguration.RopeParameters?
        var full: LlamaConfiguration.RopeParameters?
        var sliding: LlamaConfiguration.RopeParameters?

        enum CodingKeys: String, CodingKey {
            case full = "full_attention"
            case sliding = "sliding_attention"
        }

        init(from decoder: any Decoder) throws {
            let keyed = try decoder.container(keyedBy: CodingKeys.self)
            full = try keyed.decodeIfPresent(LlamaConfiguration.RopeParameters.self, forKey: .full)
            sliding = try keyed.decodeIfPresent(LlamaConfiguration.RopeParameters.self, forKey: .sliding)
            shared = full == nil && sliding == nil ? try LlamaConfiguration.RopeParameters(from: decoder) : nil
        }
    }

    /// Decodes and validates `config.json`.
    /// - Throws: `ModelLoadError.invalidConfig`, `.invalidValue`, `.unsupportedOption`, `.unknownModelType`.
    public init(json data: Data, path: String = "config.json") throws {
        let source = try ConfigDecoding.decode(Source.self, from: data, path: path)
        guard let type = source.raw.modelType, Self.modelTypes.contains(type) else {
            throw ModelLoadError.unknownModelType(source.raw.modelType ?? "(none)", supported: Self.modelTypes)
        }
        try self.init(source, modelType: type)
    }

    /// Resolves decoded keys (`modelType` is one of `modelTypes`; `raw.modelType` is not read again).
    /// Keys in messages are those of `raw`'s own object (a caller nesting it prefixes them).
    init(_ source: Source, modelType: String) throws {
        let raw = source.raw
        let isGemma3 = modelType == "gemma3_text"
        let defaults = isGemma3 ? Defaults.gemma3 : Defaults.gemma2
        self.modelType = modelType
        hiddenSize = try ConfigDecoding.positive(raw.hiddenSize ?? Defaults.hiddenSize, "hidden_size")
        intermediateSize = try ConfigDecoding.positive(
            raw.intermediateSize ?? Defaults.intermediateSize,
            "intermediate_size"
        )
        layerCount = try ConfigDecoding.positive(raw.numHiddenLayers ?? Defaults.layerCount, "num_hidden_layers")
        attentionHeads = try ConfigDecoding.positive(
            raw.numAttentionHeads ?? Defaults.attentionHeads,
            "num_attention_heads"
        )
        kvHeads = try ConfigDecoding.keyValueHeads(
            raw.numKeyValueHeads ?? Defaults.kvHeads,
            attentionHeads: attentionHeads
        )
        headDim = try ConfigDecoding.positive(raw.headDim ?? Defaults.headDim, "head_dim")
        guard headDim % 2 == 0 else {
            throw ModelLoadError.invalidValue(
                key: "head_dim",
                value: "\(headDim)",
                expected: "an even number (RoPE rotates pairs)"
            )
        }
        vocabularySize = try ConfigDecoding.positive(raw.vocabSize ?? defaults.vocabularySize, "vocab_size")
        maxPositions = try ConfigDecoding.positive(
            raw.maxPositionEmbeddings ?? defaults.maxPositions,
            "max_position_embeddings"
        )
        rmsNormEpsilon = try ConfigDecoding.positive(raw.rmsNormEps ?? Defaults.rmsNormEpsilon, "rms_norm_eps")
        let scalar = try ConfigDecoding.positive(
            raw.queryPreAttnScalar ?? Defaults.queryPreAttnScalar,
            "query_pre_attn_scalar"
        )
        attentionScale = Float(1 / Double(scalar).squareRoot())
        slidingWindow = try ConfigDecoding.positive(raw.slidingWindow ?? Defaults.slidingWindow, "sliding_window")
        layerKinds = try Self.layerKinds(raw, isGemma3: isGemma3, layerCount: layerCount)
        (globalRope, localRope) = try Self.ropes(raw, isGemma3: isGemma3, globalTheta: defaults.ropeTheta)
        // An explicit null means no soft-capping; an absent key takes the class default.
        func softCap(_ value: Double?, _ key: String, _ fallback: Double?) throws -> Float? {
            let resolved = source.nullKeys.contains(key) ? nil : value ?? fallback
            return try resolved.map { try ConfigDecoding.positive($0, key) }
        }
        attentionSoftCap = try softCap(
            raw.attnLogitSoftcapping,
            "attn_logit_softcapping",
            defaults.attentionSoftCap
        )
        finalLogitSoftCap = try softCap(
            raw.finalLogitSoftcapping,
            "final_logit_softcapping",
            defaults.finalLogitSoftCap
        )
        queryKeyNorm = isGemma3
        tieWordEmbeddings = raw.tieWordEmbeddings ?? true
        attentionBias = raw.attentionBias ?? false
        if raw.useBidirectionalAttention == true {
            throw ModelLoadError.unsupportedOption(
                key: "use_bidirectional_attention",
                value: "true",
                supported: ["false"]
            )
        }
        let activation = raw.hiddenActivation ?? raw.hiddenAct ?? "gelu_pytorch_tanh"
        guard activation == "gelu_pytorch_tanh" else {
            throw ModelLoadError.unsupportedOption(
                key: raw.hiddenActivation != nil ? "hidden_activation" : "hidden_act",
                value: activation,
                supported: ["gelu_pytorch_tanh"]
            )
        }
    }

    /// `layer_types` when given (its length must be `num_hidden_layers`); otherwise Gemma 2 alternates
    /// sliding, full, … and Gemma 3 makes every `sliding_window_pattern`-th layer (default 6) full.
    static func layerKinds(_ raw: Raw, isGemma3: Bool, layerCount: Int) throws -> [LayerKind] {
        if let types = raw.layerTypes {
            guard types.count == layerCount else {
                throw ModelLoadError.invalidValue(
                    key: "layer_types",
                    value: "a list of \(types.count) entries",
                    expected: "one entry per layer (num_hidden_layers = \(layerCount))"
                )
            }
            return try types.enumerated().map { i, type in
                switch type {
                case "sliding_attention": return .sliding
                case "full_attention": return .full
                default:
                    throw ModelLoadError.unsupportedOption(
                        key: "layer_types[\(i)]",
                        value: type,
                        supported: layerTypeNames
                    )
                }
            }
        }
        let period =
            isGemma3
            ? try ConfigDecoding.positive(
                raw.slidingWindowPattern ?? Defaults.slidingWindowPattern,
                "sliding_window_pattern"
            ) : 2
        return (0..<layerCount).map { ($0 + 1) % period == 0 ? .full : .sliding }
    }

    /// The RoPE of full and sliding layers from either spelling: transformers 5's `rope_parameters`
    /// (per layer type for Gemma 3) or transformers 4's `rope_theta`, `rope_scaling`, `rope_local_base_freq`.
    static func ropes(_ raw: Raw, isGemma3: Bool, globalTheta: Double) throws -> (global: Rope, local: Rope) {
        let defaultGlobal = raw.ropeTheta ?? globalTheta
        func resolve(_ rope: LlamaConfiguration.RopeParameters?, theta: Double, key: String) throws -> Rope {
            Rope(
                theta: try ConfigDecoding.positive(rope?.ropeTheta ?? theta, "\(key).rope_theta"),
                scaling: try LlamaConfiguration.scaling(rope, key: key)
            )
        }
        if let set = raw.ropeParameters {
            if let shared = set.shared {
                let global = try resolve(shared, theta: defaultGlobal, key: "rope_parameters")
                guard isGemma3 else { return (global, global) }
                return (
                    global,
                    try resolve(nil, theta: raw.ropeLocalBaseFreq ?? Defaults.localRopeTheta, key: "rope_parameters")
                )
            }
            return (
                try resolve(set.full, theta: defaultGlobal, key: "rope_parameters.full_attention"),
                try resolve(
                    set.sliding,
                    theta: raw.ropeLocalBaseFreq ?? Defaults.localRopeTheta,
                    key: "rope_parameters.sliding_attention"
                )
            )
        }
        let global = try resolve(raw.ropeScaling, theta: defaultGlobal, key: "rope_scaling")
        guard isGemma3 else { return (global, global) }
        return (
            global,
            try resolve(nil, theta: raw.ropeLocalBaseFreq ?? Defaults.localRopeTheta, key: "rope_local_base_freq")
        )
    }
}
