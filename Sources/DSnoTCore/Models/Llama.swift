// SPDX-License-Identifier: Apache-2.0
// Llama: the LLaMA family (llama, mistral, qwen2, qwen3) as a block-at-a-time DecoderModel; reference: HF modeling_llama.

import SafeTensors

/// The block-local tensor names of the LLaMA family, in one table (where the blocks, the embedding and
/// the LM head sit: `DecoderTensorNames`).
enum LlamaTensors {
    static let inputNorm = "input_layernorm.weight"
    static let postAttentionNorm = "post_attention_layernorm.weight"
    static let queryNorm = "self_attn.q_norm.weight"
    static let keyNorm = "self_attn.k_norm.weight"

    /// The input embedding and the LM head (the same table when the config ties them), for every
    /// family that uses these names (LLaMA, Gemma, Phi-3).
    static func embeddings(
        _ reader: WeightReader,
        names: DecoderTensorNames,
        vocabularySize: Int,
        width: Int,
        tied: Bool
    ) throws -> (embedding: TokenEmbedding, lmHead: TokenEmbedding) {
        let embedding = try TokenEmbedding(
            reader: reader,
            tensorName: names.embedding,
            vocabularySize: vocabularySize,
            width: width
        )
        guard !tied else { return (embedding, embedding) }
        let head = try TokenEmbedding(
            reader: reader,
            tensorName: names.lmHead,
            vocabularySize: vocabularySize,
            width: width
        )
        return (embedding, head)
    }

    /// The linear layers of a block in module order, with their `(out, in)` shapes and bias flags.
    static func linears(_ c: LlamaConfiguration) -> [(name: LinearLayerName, rows: Int, columns: Int, bias: Bool)] {
        let q = c.attentionHeads * c.headDim
        let kv = c.kvHeads * c.headDim
        return [
            ("self_attn.q_proj", q, c.hiddenSize, c.qkvBias),
            ("self_attn.k_proj", kv, c.hiddenSize, c.qkvBias),
            ("self_attn.v_proj", kv, c.hiddenSize, c.qkvBias),
            ("self_attn.o_proj", c.hiddenSize, q, c.outputBias),
            ("mlp.gate_proj", c.intermediateSize, c.hiddenSize, c.mlpBias),
            ("mlp.up_proj", c.intermediateSize, c.hiddenSize, c.mlpBias),
            ("mlp.down_proj", c.hiddenSize, c.intermediateSize, c.mlpBias),
        ]
    }
}

/// A LLaMA-family checkpoint opened for block-at-a-time execution.
///
/// Opening checks every tensor's presence, dtype and shape against the config (headers only);
/// values are converted, and checked finite, when a block, embedding row or LM-head chunk is read.
public struct LlamaModel: DecoderModel {
    public let configuration: LlamaConfiguration
    let reader: WeightReader
    /// Where the decoder's tensors sit (`model.layers.…`).
    let names = DecoderTensorNames.causalLM
    let embedding: TokenEmbedding
    let lmHead: TokenEmbedding
    let finalNorm: RMSNorm
    let rotary: RotaryEmbedding

    /// - Throws: `ModelLoadError` for a missing, mistyped, ill-shaped or non-finite tensor, or tensors
    ///   of blocks the config does not declare.
    public init(configuration c: LlamaConfiguration, tensors: any TensorSource) throws {
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
            headDim: c.headDim,
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
        if c.queryKeyNorm {
            for norm in [LlamaTensors.queryNorm, LlamaTensors.keyNorm] {
                _ = try reader.checkedInfo(names.block(b, norm), shape: [c.headDim])
            }
        }
        for layer in LlamaTensors.linears(c) {
            _ = try reader.checkedInfo(
                names.block(b, "\(layer.name).weight"),
                shape: [layer.rows, layer.columns]
            )
            if layer.bias {
                _ = try reader.checkedInfo(names.block(b, "\(layer.name).bias"), shape: [layer.rows])
            }
        }
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
        var linears: [Linear] = []
        for layer in LlamaTensors.linears(c) {
            let weight = try reader.matrix(
                names.block(index, "\(layer.name).weight"),
                rows: layer.rows,
                columns: layer.columns
            )
            let bias =
                layer.bias
                ? try reader.floats(names.block(index, "\(layer.name).bias"), shape: [layer.rows]) : nil
            linears.append(Linear(weight: weight, bias: bias))
        }
        func headNorm(_ tensor: String) throws -> RMSNorm? {
            guard c.queryKeyNorm else { return nil }
            return RMSNorm(
                weight: try reader.floats(names.block(index, tensor), shape: [c.headDim]),
                epsilon: c.rmsNormEpsilon
            )
        }
        return LlamaBlock(
            index: index,
            inputNorm: RMSNorm(
                weight: try reader.floats(names.block(index, LlamaTensors.inputNorm), shape: [c.hiddenSize]),
                epsilon: c.rmsNormEpsilon
            ),
            postAttentionNorm: RMSNorm(
                weight: try reader.floats(
                    names.block(index, LlamaTensors.postAttentionNorm),
                    shape: [c.hiddenSize]
                ),
                epsilon: c.rmsNormEpsilon
            ),
            queryNorm: try headNorm(LlamaTensors.queryNorm),
            keyNorm: try headNorm(LlamaTensors.keyNorm),
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
        LlamaTensors.linears(configuration).map { layer in
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
