// SPDX-License-Identifier: Apache-2.0
// MoEConfiguration: config.json of the sparse mixture-of-experts families (mixtral, qwen2_moe, qwen3_moe).

public import Foundation

/// The resolved hyper-parameters of a mixture-of-experts checkpoint: the attention, norms and
/// embeddings of its dense LLaMA-family sibling (Mixtral is Mistral's, Qwen2-MoE Qwen2's, Qwen3-MoE
/// Qwen3's) plus the sparse MLP: a router and `expertCount` SwiGLU experts of which each token uses
/// `expertsPerToken`, with Qwen2-MoE's sigmoid-gated shared expert. Layers listed in `mlp_only_layers`
/// or off the `decoder_sparse_step` grid keep a dense SwiGLU MLP of width `intermediate_size`.
public struct MoEConfiguration: Sendable, Equatable {
    /// The family members this configuration decodes.
    public static let modelTypes = ["mixtral", "qwen2_moe", "qwen3_moe"]

    /// Attention, norms, embeddings, RoPE; `base.intermediateSize` is the dense MLP's width (Qwen) or,
    /// for Mixtral, the experts' (Mixtral has no dense layer).
    public var base: LlamaConfiguration
    /// Experts per sparse block (`num_local_experts` for Mixtral, `num_experts` for Qwen).
    public var expertCount: Int
    /// Experts each token is routed to (`num_experts_per_tok`, `k`).
    public var expertsPerToken: Int
    /// Width of one expert's SwiGLU (`moe_intermediate_size`; Mixtral: `intermediate_size`).
    public var expertIntermediateSize: Int
    /// Qwen2-MoE's shared expert width (`shared_expert_intermediate_size`), `nil` for the others.
    public var sharedExpertIntermediateSize: Int?
    /// Renormalise the top-k probabilities to sum to 1 (`norm_topk_prob`; always on for Mixtral).
    public var normalizeTopK: Bool
    /// Per layer: a sparse MoE block (`true`) or a dense MLP (`false`).
    public var sparseLayers: [Bool]

    /// The raw MoE keys of `config.json`.
    struct Raw: Decodable {
        var numLocalExperts: Int?
        var numExperts: Int?
        var numExpertsPerTok: Int?
        var moeIntermediateSize: Int?
        var sharedExpertIntermediateSize: Int?
        var normTopkProb: Bool?
        var decoderSparseStep: Int?
        var mlpOnlyLayers: [Int]?

        enum CodingKeys: String, CodingKey {
            case numLocalExperts = "num_local_experts"
            case numExperts = "num_experts"
            case numExpertsPerTok = "num_experts_per_tok"
            case moeIntermediateSize = "moe_intermediate_size"
            case sharedExpertIntermediateSize = "shared_expert_intermediate_size"
            case normTopkProb = "norm_topk_prob"
            case decoderSparseStep = "decoder_sparse_step"
            case mlpOnlyLayers = "mlp_only_layers"
        }
    }

    /// The dense LLaMA-family member whose attention each MoE type uses.
    static let attentionFamily = ["mixtral": "mistral", "qwen2_moe": "qwen2", "qwen3_moe": "qwen3"]

    /// Decodes and validates `config.json`. Defaults are transformers 5's.
    /// - Throws: `ModelLoadError.invalidConfig`, `.invalidValue` (naming the key, its value and what was
    ///   expected), `.unsupportedOption`, `.unknownModelType`.
    public init(json data: Data, path: String = "config.json") throws {
        let raw = try ConfigDecoding.decode(LlamaConfiguration.Raw.self, from: data, path: path)
        guard let family = Self.attentionFamily[raw.modelType] else {
            throw ModelLoadError.unknownModelType(raw.modelType, supported: Self.modelTypes)
        }
        let moe = try ConfigDecoding.decode(Raw.self, from: data, path: path)
        base = try LlamaConfiguration(raw: raw, attentionOf: family)
        let layers = base.layerCount
        let mixtral = raw.modelType == "mixtral"
        // transformers maps `num_experts` to `num_local_experts` for Mixtral and Qwen3-MoE (it saves the
        // latter; Hub Qwen3-MoE configs say `num_experts`); Qwen2-MoE has `num_experts` only.
        if let local = moe.numLocalExperts, let experts = moe.numExperts, local != experts {
            throw ModelLoadError.invalidValue(
                key: "num_experts",
                value: "\(experts)",
                expected: "equal to num_local_experts (\(local)), its alias"
            )
        }
        let local = raw.modelType == "qwen2_moe" ? nil : moe.numLocalExperts
        let countKey = local != nil || (mixtral && moe.numExperts == nil) ? "num_local_experts" : "num_experts"
        expertCount = try ConfigDecoding.positive(
            local ?? moe.numExperts ?? (mixtral ? 8 : raw.modelType == "qwen2_moe" ? 60 : 128),
            countKey
        )
        expertsPerToken = try ConfigDecoding.positive(
            moe.numExpertsPerTok ?? (mixtral ? 2 : raw.modelType == "qwen2_moe" ? 4 : 8),
            "num_experts_per_tok"
        )
        guard expertsPerToken <= expertCount else {
            throw ModelLoadError.invalidValue(
                key: "num_experts_per_tok",
                value: "\(expertsPerToken)",
                expected: "at most \(countKey) (\(expertCount))"
            )
        }
        if mixtral {
            expertIntermediateSize = base.intermediateSize
            sharedExpertIntermediateSize = nil
            normalizeTopK = true
            sparseLayers = Array(repeating: true, count: layers)
            return
        }
        expertIntermediateSize = try ConfigDecoding.positive(
            moe.moeIntermediateSize ?? (raw.modelType == "qwen2_moe" ? 1408 : 768),
            "moe_intermediate_size"
        )
        sharedExpertIntermediateSize =
            raw.modelType == "qwen2_moe"
            ? try ConfigDecoding.positive(moe.sharedExpertIntermediateSize ?? 5632, "shared_expert_intermediate_size")
            : nil
        normalizeTopK = moe.normTopkProb ?? false
        let step = try ConfigDecoding.positive(moe.decoderSparseStep ?? 1, "decoder_sparse_step")
        let denseOnly = moe.mlpOnlyLayers ?? []
        if let bad = denseOnly.first(where: { !(0..<layers).contains($0) }) {
            throw ModelLoadError.invalidValue(
                key: "mlp_only_layers",
                value: "\(denseOnly) (\(bad))",
                expected: "layer indices in 0..<\(layers) (num_hidden_layers)"
            )
        }
        sparseLayers = (0..<layers).map { !denseOnly.contains($0) && ($0 + 1) % step == 0 }
    }

    public var modelType: String { base.modelType }
}
