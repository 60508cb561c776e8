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
    static func linears(_ c: LlamaConfiguration) -> [LinearShape] { attentionLinears(c) + mlpLinears(c) }

    /// q, k, v, o.
    static func attentionLinears(_ c: LlamaConfiguration) -> [LinearShape] {
        let q = c.attentionHeads * c.headDim
        let kv = c.kvHeads * c.headDim
        return [
            ("self_attn.q_proj", q, c.hiddenSize, c.qkvBias),
            ("self_attn.k_proj", kv, c.hiddenSize, c.qkvBias),
            ("self_attn.v_proj", kv, c.hiddenSize, c.qkvBias),
            ("self_attn.o_proj", c.hiddenSize, q, c.outputBias),
        ]
    }

    /// The SwiGLU MLP `<prefix>gate_proj`, `up_proj`, `down_proj` of width `intermediate` (the dense MLP
    /// by default; a MoE expert with its own prefix and names).
    static func mlpLinears(
        _ c: LlamaConfiguration,
        prefix: String = "mlp.",
        names: (gate: String, up: String, down: String) = ("gate_proj", "up_proj", "down_proj"),
        intermediate: Int? = nil,
        bias: Bool? = nil
    ) -> [LinearShape] {
        let width = intermediate ?? c.intermediateSize
        let bias = bias ?? c.mlpBias
        return [
            (LinearLayerName(prefix + names.gate), width, c.hiddenSize, bias),
            (LinearLayerName(prefix + names.up), width, c.hiddenSize, bias),
            (LinearLayerName(prefix + names.down), c.hiddenSize, width, bias),
        ]
    }

    /// A linear layer's block-local name, `(out, in)` shape and bias flag.
    typealias LinearShape = (name: LinearLayerName, rows: Int, columns: Int, bias: Bool)
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
        try self.init(configuration: c, tensors: tensors, denseMLP: true)
    }

    /// - Parameter denseMLP: the blocks have the dense SwiGLU MLP (`false`: a MoE model checks and
    ///   loads its own, `MoEModel`).
    init(configuration c: LlamaConfiguration, tensors: any TensorSource, denseMLP: Bool) throws {
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
        for b in 0..<c.layerCount {
            try checkAttentionHeaders(b)
            if denseMLP { try checkHeaders(LlamaTensors.mlpLinears(c), block: b) }
        }
        try BlockNames.requireNoExtraBlocks(tensors, prefix: names.blockPrefix, blockCount: c.layerCount)
    }

    /// The norms and attention projections of block `b` (what every family built on this one shares).
    func checkAttentionHeaders(_ b: Int) throws {
        let c = configuration
        for norm in [LlamaTensors.inputNorm, LlamaTensors.postAttentionNorm] {
            _ = try reader.checkedInfo(names.block(b, norm), shape: [c.hiddenSize])
        }
        if c.queryKeyNorm {
            for norm in [LlamaTensors.queryNorm, LlamaTensors.keyNorm] {
                _ = try reader.checkedInfo(names.block(b, norm), shape: [c.headDim])
            }
        }
        try checkHeaders(LlamaTensors.attentionLinears(c), block: b)
    }

    /// Presence, dtype and shape of the weights (and biases) of `layers` in block `b`.
    func checkHeaders(_ layers: [LlamaTensors.LinearShape], block b: Int) throws {
        for layer in layers {
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
        return LlamaBlock(
            index: index,
            attentionPath: try loadAttentionPath(index),
            postAttentionNorm: try loadNorm(LlamaTensors.postAttentionNorm, block: index),
            linears: try loadLinears(LlamaTensors.linears(c), block: index)
        )
    }

    /// The fp32 weights (and biases) of `layers` in block `index`.
    func loadLinears(_ layers: [LlamaTensors.LinearShape], block index: Int) throws -> [Linear] {
        try layers.map { layer in
            let weight = try reader.matrix(
                names.block(index, "\(layer.name).weight"),
                rows: layer.rows,
                columns: layer.columns
            )
            let bias =
                layer.bias
                ? try reader.floats(names.block(index, "\(layer.name).bias"), shape: [layer.rows]) : nil
            return Linear(weight: weight, bias: bias)
        }
    }

    /// A `[hidden]` RMSNorm of block `index`.
    func loadNorm(_ tensor: String, block index: Int) throws -> RMSNorm {
        let c = configuration
        return RMSNorm(
            weight: try reader.floats(names.block(index, tensor), shape: [c.hiddenSize]),
            epsilon: c.rmsNormEpsilon
        )
    }

    /// The input norm, the q/k norms (Qwen3) and the attention geometry of block `index`.
    func loadAttentionPath(_ index: Int) throws -> LlamaAttentionPath {
        let c = configuration
        func headNorm(_ tensor: String) throws -> RMSNorm? {
            guard c.queryKeyNorm else { return nil }
            return RMSNorm(
                weight: try reader.floats(names.block(index, tensor), shape: [c.headDim]),
                epsilon: c.rmsNormEpsilon
            )
        }
        return LlamaAttentionPath(
            inputNorm: try loadNorm(LlamaTensors.inputNorm, block: index),
            queryNorm: try headNorm(LlamaTensors.queryNorm),
            keyNorm: try headNorm(LlamaTensors.keyNorm),
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
        layerInfo(LlamaTensors.linears(configuration), block: index)
    }

    /// `layers` of block `index` as the pipeline sees them (checkpoint name, shape, dtype).
    func layerInfo(_ layers: [LlamaTensors.LinearShape], block index: Int, expert: Int? = nil) -> [LinearLayerInfo] {
        layers.map { layer in
            let tensor = names.block(index, "\(layer.name).weight")
            return LinearLayerInfo(
                name: layer.name,
                tensorName: tensor,
                outFeatures: layer.rows,
                inFeatures: layer.columns,
                dtype: reader.source.tensorInfo(named: tensor)?.dtype ?? .f32,
                expert: expert
            )
        }
    }

    public func finalLogits(_ hidden: Matrix) throws -> Matrix {
        try lmHead.project(finalNorm(hidden))
    }
}
