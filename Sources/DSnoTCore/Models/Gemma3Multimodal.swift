// SPDX-License-Identifier: Apache-2.0
// Gemma3Multimodal: the language model of a Gemma 3 multimodal checkpoint (gemma3) as a GemmaModel; reference: HF modeling_gemma3.

import SafeTensors

/// The non-decoder tensors of a Gemma 3 multimodal checkpoint the engine checks (it never runs them).
enum Gemma3MultimodalTensors {
    /// The projector's `(vision width, text width)` matrix, in both layouts (`DecoderTensorNames`).
    static let projection = [
        "model.multi_modal_projector.mm_input_projection_weight", "multi_modal_projector.mm_input_projection_weight",
    ]
}

extension GemmaModel {
    /// Opens the language model of a `Gemma3ForConditionalGeneration` checkpoint for text-only execution:
    /// `embed` → blocks → norm → LM head, exactly `GemmaModel` on `c.text` with the decoder's tensors
    /// found under `model.language_model.` or `language_model.model.` (whichever holds the embedding).
    /// The vision tower and the projector are not loaded; the pipeline copies them (and every other
    /// tensor outside the blocks' linear layers) unchanged.
    /// - Throws: `ModelLoadError.configContradictsTensors` when neither layout holds the embedding, a
    ///   `.shapeMismatch` when the projector's width disagrees with the config, and whatever opening
    ///   the decoder throws.
    public init(multimodal c: Gemma3MultimodalConfiguration, tensors: any TensorSource) throws {
        let layouts = DecoderTensorNames.multimodalLayouts
        guard let names = DecoderTensorNames.detect(among: layouts, in: tensors) else {
            throw ModelLoadError.configContradictsTensors(
                reason: "model_type gemma3 keeps the language model under "
                    + layouts.map { "'\($0.prefix)'" }.joined(separator: " or ")
                    + " but the checkpoint has none of "
                    + layouts.map { "'\($0.embedding)'" }.joined(separator: ", ")
            )
        }
        try Self.checkProjector(c, tensors: tensors)
        try self.init(configuration: c.text, tensors: tensors, names: names, modelType: "gemma3")
    }

    /// The projector maps `vision_config.hidden_size` onto `text_config.hidden_size`: a checkpoint whose
    /// projector disagrees with the config it ships is refused, although the engine never runs it.
    static func checkProjector(_ c: Gemma3MultimodalConfiguration, tensors: any TensorSource) throws {
        for name in Gemma3MultimodalTensors.projection {
            guard let info = tensors.tensorInfo(named: name) else { continue }
            let rows = c.visionHiddenSize ?? info.shape.first ?? 0
            let expected = [rows, c.text.hiddenSize]
            guard info.shape == expected else {
                throw ModelLoadError.shapeMismatch(tensor: name, expected: expected, got: info.shape)
            }
        }
    }
}
