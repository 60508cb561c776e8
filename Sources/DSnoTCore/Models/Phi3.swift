// SPDX-License-Identifier: Apache-2.0
// Phi3: Phi-3 / Phi-3.5 / Phi-4 (phi3) as a block-at-a-time DecoderModel; reference: HF modeling_phi3.

import SafeTensors

/// The linear layers of a Phi-3 block (the norms and embeddings have LLaMA's names).
enum Phi3Tensors {
    /// The linear layers of a block in module order, with their `(out, in)` shapes. The fused layers
    /// are one tensor each and are pruned as one linear layer (docs/algorithms.md).
    static func linears(_ c: Phi3Configuration) -> [(name: LinearLayerName, rows: Int, columns: Int)] {
        let q = c.attentionHeads * c.headDim
        let kv = c.kvHeads * c.headDim
        return [
            ("self_attn.qkv_proj", q + 2 * kv, c.hiddenSize),
            ("self_attn.o_proj", c.hiddenSize, q),
            ("mlp.gate_up_proj", 2 * c.intermediateSize, c.hiddenSize),
            ("mlp.down_proj", c.hiddenSize, c.intermediateSize),
        ]
    }
}

/// A Phi-3 checkpoint opened for block-at-a-time execution.
public struct Phi3Model: DecoderModel {
    public let configuration: Phi3Configuration
    let reader: WeightReader
    /// Where the decoder's tensors sit (`model.layers.…`).
    let names = DecoderTensorNames.causalLM
    let embedding: TokenEmbedding
    let lmHead: TokenEmbedding
    let finalNorm: RMSNorm
    let rotary: RotaryEmbedding

    /// - Throws: `ModelLoadError` for a missing, mistyped or ill-shaped tensor (a fused tensor whose rows
    ///   do not split into the config's parts is a shape mismatch naming the expected split), or tensors
    ///   of blocks the config does not declare.
    public init(configuration c: Phi3Configuration, tensors: any TensorSource) throws {
        configuration = c
        reader = WeightReader(source: tensors)
        (embedding, lmHead) = try LlamaTensors.embeddings(
            reader,
            names: names,
            vocabularySize: c.vocabularySize,
            width: c.hiddenSize,
            tied: c.tieWordEmbeddings
        )
        finalNorm = RMSNorm(
            weight: try reader.floats(names.finalNorm, shape: [c.hiddenSize]),
            epsilon: c.rmsNormEpsilon
        )
        rotary = RotaryEmbedding(
            headDim: c.rotaryDim,
            theta: c.ropeTheta,
            scaling: c.ropeScaling,
            cachedPositions: min(c.maxPositions, 4096)
        )
        for b in 0..<c.layerCount { try checkBlockHeaders(b) }
        try BlockNames.requireNoExtraBlocks(tensors, prefix: names.blockPrefix, blockCount: c.layerCount)
    }

    private func checkBlockHeaders(_ b: Int) throws {
        let c = configuration
        for norm in [LlamaTensors.inputNorm, LlamaTensors.postAttentionNorm] {
            _ = try reader.checkedInfo(names.block(b, norm), shape: [c.hiddenSize])
        }
        for layer in Phi3Tensors.linears(c) {
            let name = names.block(b, "\(layer.name).weight")
            do {
                _ = try reader.checkedInfo(name, shape: [layer.rows, layer.columns])
            } catch ModelLoadError.shapeMismatch(let tensor, let expected, let got)
                where layer.name == "self_attn.qkv_proj" || layer.name == "mlp.gate_up_proj"
            {
                throw ModelLoadError.configContradictsTensors(
                    reason: "fused tensor '\(tensor)' has shape \(got) but the config splits it as \(expected) = "
                        + Self.split(of: layer.name, c)
                )
            }
        }
    }

    /// How the config splits a fused layer's rows, for messages.
    static func split(of name: LinearLayerName, _ c: Phi3Configuration) -> String {
        if name == "mlp.gate_up_proj" {
            return "gate \(c.intermediateSize) + up \(c.intermediateSize) rows (intermediate_size)"
        }
        return "q \(c.attentionHeads)×\(c.headDim) + k \(c.kvHeads)×\(c.headDim) + v \(c.kvHeads)×\(c.headDim) rows "
            + "(num_attention_heads, num_key_value_heads × head_dim)"
    }

    public var modelType: String { configuration.modelType }
    public var blockCount: Int { configuration.layerCount }
    public var hiddenSize: Int { configuration.hiddenSize }
    public var vocabularySize: Int { configuration.vocabularySize }
    public var maxPositions: Int { configuration.maxPositions }
    public var attentionHeads: Int { configuration.attentionHeads }
    public var headDim: Int { configuration.headDim }
    public var keyValueHeads: Int { configuration.kvHeads }

    public func embed(tokens: [Int]) throws -> Matrix { try embedding.lookup(tokens) }

    public func loadBlock(_ index: Int) throws -> any DecoderBlock {
        guard (0..<blockCount).contains(index) else {
            throw ModelLoadError.blockOutOfRange(index: index, blockCount: blockCount)
        }
        let c = configuration
        let linears = try Phi3Tensors.linears(c).map { layer in
            Linear(
                weight: try reader.matrix(
                    names.block(index, "\(layer.name).weight"),
                    rows: layer.rows,
                    columns: layer.columns
                )
            )
        }
        func norm(_ tensor: String) throws -> RMSNorm {
            RMSNorm(
                weight: try reader.floats(names.block(index, tensor), shape: [c.hiddenSize]),
                epsilon: c.rmsNormEpsilon
            )
        }
        return Phi3Block(
            index: index,
            inputNorm: try norm(LlamaTensors.inputNorm),
            postAttentionNorm: try norm(LlamaTensors.postAttentionNorm),
            linears: linears,
            attention: CausalAttention(
                heads: c.attentionHeads,
                kvHeads: c.kvHeads,
                headDim: c.headDim,
                scale: 1 / Float(c.headDim).squareRoot(),
                slidingWindow: c.slidingWindow
            ),
            rotary: rotary
        )
    }

    public func prunableLinearLayers(block index: Int) -> [LinearLayerInfo] {
        Phi3Tensors.linears(configuration).map { layer in
            let tensor = names.block(index, "\(layer.name).weight")
            return LinearLayerInfo(
                name: layer.name,
                tensorName: tensor,
                outFeatures: layer.rows,
                inFeatures: layer.columns,
                dtype: reader.source.tensorInfo(named: tensor)?.dtype ?? .f32
            )
        }
    }

    public func finalLogits(_ hidden: Matrix) throws -> Matrix {
        try lmHead.project(finalNorm(hidden))
    }
}
