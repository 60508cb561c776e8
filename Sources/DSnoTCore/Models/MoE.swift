// SPDX-License-Identifier: Apache-2.0
// MoE: the sparse mixture-of-experts families (mixtral, qwen2_moe, qwen3_moe) as a block-at-a-time DecoderModel;
// reference: HF modeling_mixtral, modeling_qwen2_moe, modeling_qwen3_moe (transformers 5).

import SafeTensors

/// The block-local tensor names of the MoE families, in one table (the Hugging Face Hub layout: one
/// 2-D weight per expert projection).
enum MoETensors {
    /// Where the sparse MLP lives: `block_sparse_moe.` (Mixtral) or `mlp.` (Qwen).
    static func prefix(_ c: MoEConfiguration) -> String { c.modelType == "mixtral" ? "block_sparse_moe." : "mlp." }

    /// The router `(E, hidden)`: `block_sparse_moe.gate` / `mlp.gate`. Never pruned.
    static func router(_ c: MoEConfiguration) -> String { prefix(c) + "gate.weight" }

    /// Qwen2-MoE's `mlp.shared_expert_gate` `(1, hidden)`. Never pruned.
    static let sharedExpertGate = "mlp.shared_expert_gate.weight"

    /// Expert `e`'s gate, up and down projections (Mixtral's `w1`, `w3`, `w2`).
    static func expert(_ c: MoEConfiguration, _ e: Int) -> [LlamaTensors.LinearShape] {
        let names =
            c.modelType == "mixtral" ? ("w1", "w3", "w2") : ("gate_proj", "up_proj", "down_proj")
        return LlamaTensors.mlpLinears(
            c.base,
            prefix: prefix(c) + "experts.\(e).",
            names: names,
            intermediate: c.expertIntermediateSize,
            bias: false
        )
    }

    /// Qwen2-MoE's shared expert (empty for the others).
    static func sharedExpert(_ c: MoEConfiguration) -> [LlamaTensors.LinearShape] {
        guard let width = c.sharedExpertIntermediateSize else { return [] }
        return LlamaTensors.mlpLinears(c.base, prefix: "mlp.shared_expert.", intermediate: width, bias: false)
    }

    /// The linear layers after the attention in block `b`, in `MoEBlock.linearLayerNames` order, with the
    /// expert each belongs to.
    static func mlp(_ c: MoEConfiguration, block b: Int) -> [(layers: [LlamaTensors.LinearShape], expert: Int?)] {
        guard c.sparseLayers[b] else { return [(LlamaTensors.mlpLinears(c.base, bias: false), nil)] }
        return (0..<c.expertCount).map { (expert(c, $0), $0) } + [(sharedExpert(c), nil)]
    }
}

/// A Mixtral, Qwen2-MoE or Qwen3-MoE checkpoint opened for block-at-a-time execution: the LLaMA
/// family's embeddings, attention and final norm (`LlamaModel`), and per block a sparse MoE MLP or a
/// dense one.
///
/// Opening checks every tensor's presence, dtype and shape against the config (headers only): the
/// routers, every expert of every sparse block, the shared experts and the dense layers.
public struct MoEModel: DecoderModel {
    public let configuration: MoEConfiguration
    /// Embeddings, attention, norms, LM head.
    let base: LlamaModel

    /// - Throws: `ModelLoadError` for a missing, mistyped, ill-shaped or non-finite tensor, or tensors
    ///   of blocks the config does not declare.
    public init(configuration c: MoEConfiguration, tensors: any TensorSource) throws {
        configuration = c
        base = try LlamaModel(configuration: c.base, tensors: tensors, denseMLP: false)
        for b in 0..<c.base.layerCount {
            if c.sparseLayers[b] {
                _ = try base.reader.checkedInfo(
                    base.names.block(b, MoETensors.router(c)),
                    shape: [c.expertCount, c.base.hiddenSize]
                )
                if c.sharedExpertIntermediateSize != nil {
                    _ = try base.reader.checkedInfo(
                        base.names.block(b, MoETensors.sharedExpertGate),
                        shape: [1, c.base.hiddenSize]
                    )
                }
            }
            for part in MoETensors.mlp(c, block: b) { try base.checkHeaders(part.layers, block: b) }
        }
    }

    public var modelType: String { configuration.modelType }
    public var blockCount: Int { base.blockCount }
    public var hiddenSize: Int { base.hiddenSize }
    public var vocabularySize: Int { base.vocabularySize }
    public var maxPositions: Int { base.maxPositions }
    public var attentionHeads: Int { base.attentionHeads }
    public var headDim: Int { base.headDim }
    public var keyValueHeads: Int { base.keyValueHeads }

    public var expertRouting: (experts: Int, perToken: Int)? {
        (configuration.expertCount, configuration.expertsPerToken)
    }

    public func embed(tokens: [Int]) throws -> Matrix { try base.embed(tokens: tokens) }

    public func loadBlock(_ index: Int) throws -> any DecoderBlock {
        guard (0..<blockCount).contains(index) else {
            throw ModelLoadError.blockOutOfRange(index: index, blockCount: blockCount)
        }
        let c = configuration
        let attention = LlamaTensors.attentionLinears(c.base)
        let mlp = MoETensors.mlp(c, block: index).flatMap(\.layers)
        let sparse = c.sparseLayers[index]
        func gate(_ tensor: String, rows: Int) throws -> Linear {
            Linear(
                weight: try base.reader.matrix(
                    base.names.block(index, tensor),
                    rows: rows,
                    columns: c.base.hiddenSize
                )
            )
        }
        return MoEBlock(
            index: index,
            attentionPath: try base.loadAttentionPath(index),
            postAttentionNorm: try base.loadNorm(LlamaTensors.postAttentionNorm, block: index),
            linearLayerNames: (attention + mlp).map(\.name),
            linears: try base.loadLinears(attention + mlp, block: index),
            router: sparse ? try gate(MoETensors.router(c), rows: c.expertCount) : nil,
            expertsPerToken: c.expertsPerToken,
            normalizeTopK: c.normalizeTopK,
            sharedExpertGate: sparse && c.sharedExpertIntermediateSize != nil
                ? try gate(MoETensors.sharedExpertGate, rows: 1) : nil
        )
    }

    public func prunableLinearLayers(block index: Int) -> [LinearLayerInfo] {
        base.layerInfo(LlamaTensors.attentionLinears(configuration.base), block: index)
            + MoETensors.mlp(configuration, block: index).flatMap {
                base.layerInfo($0.layers, block: index, expert: $0.expert)
            }
    }

    public func finalLogits(_ hidden: Matrix) throws -> Matrix { try base.finalLogits(hidden) }
}
