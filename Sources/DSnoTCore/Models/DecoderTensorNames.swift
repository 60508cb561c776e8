// SPDX-License-Identifier: Apache-2.0
// DecoderTensorNames: where a LLaMA-style decoder's tensors sit in a checkpoint (causal LM or inside a multimodal model).

/// The checkpoint names of a LLaMA-style decoder (LLaMA, Gemma, Phi-3): the module prefix of the text
/// model and the LM head. A causal LM keeps its decoder under `model.`; a multimodal checkpoint nests it
/// beside the vision tower, under `model.language_model.` (transformers ≥ 4.52 / 5) or
/// `language_model.model.` (the first Gemma 3 checkpoints on the Hub). Block-local names (norms,
/// projections) are the same in every layout (`LlamaTensors`).
///
/// ```swift
/// let names = DecoderTensorNames.detect(among: DecoderTensorNames.multimodalLayouts, in: checkpoint)
/// names.block(3, "self_attn.q_proj.weight")   // "model.language_model.layers.3.self_attn.q_proj.weight"
/// ```
public struct DecoderTensorNames: Sendable, Equatable {
    /// The text model's module path with a trailing dot, e.g. `model.`.
    public let prefix: String
    /// The untied LM head's tensor name.
    public let lmHead: String

    public init(prefix: String, lmHead: String) {
        self.prefix = prefix
        self.lmHead = lmHead
    }

    /// A `*ForCausalLM` checkpoint: `model.layers.…`, `lm_head.weight`.
    public static let causalLM = DecoderTensorNames(prefix: "model.", lmHead: "lm_head.weight")
    /// A `*ForConditionalGeneration` checkpoint saved by transformers ≥ 4.52 (and 5):
    /// `model.language_model.layers.…`, `lm_head.weight`.
    public static let multimodal = DecoderTensorNames(prefix: "model.language_model.", lmHead: "lm_head.weight")
    /// The same class saved by transformers 4.50–4.51 (google/gemma-3-*-it as first published):
    /// `language_model.model.layers.…`, `language_model.lm_head.weight`.
    public static let multimodalLegacy = DecoderTensorNames(
        prefix: "language_model.model.",
        lmHead: "language_model.lm_head.weight"
    )
    /// The layouts a multimodal checkpoint may use, the current one first.
    public static let multimodalLayouts = [multimodal, multimodalLegacy]

    public var embedding: String { prefix + "embed_tokens.weight" }
    public var finalNorm: String { prefix + "norm.weight" }
    /// The prefix of every block tensor: `<prefix>layers.`.
    public var blockPrefix: String { prefix + "layers." }

    /// `<prefix>layers.<b>.<local>`.
    public func block(_ b: Int, _ local: String) -> String { "\(blockPrefix)\(b).\(local)" }

    /// The first layout whose embedding tensor `source` holds, or `nil` when none does.
    public static func detect(among layouts: [DecoderTensorNames], in source: any TensorSource) -> DecoderTensorNames? {
        layouts.first { source.tensorInfo(named: $0.embedding) != nil }
    }
}
