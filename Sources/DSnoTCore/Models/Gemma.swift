// SPDX-License-Identifier: Apache-2.0
// Gemma: Gemma 2 and Gemma 3 text decoders as a block-at-a-time DecoderModel; reference: HF modeling_gemma2/3.

import Foundation
import SafeTensors

/// The checkpoint tensor names Gemma adds to the LLaMA ones.
enum GemmaTensors {
    static let preFeedForwardNorm = "pre_feedforward_layernorm.weight"
    static let postFeedForwardNorm = "post_feedforward_layernorm.weight"
    /// The four norms of a block, in module order.
    static let blockNorms = [
        LlamaTensors.inputNorm, LlamaTensors.postAttentionNorm, preFeedForwardNorm, postFeedForwardNorm,
    ]

    /// The linear layers of a block, with their `(out, in)` shapes and bias flags (LLaMA's names).
    static func linears(_ c: GemmaConfiguration) -> [(name: LinearLayerName, rows: Int, columns: Int, bias: Bool)] {
        let q = c.attentionHeads * c.headDim
        let kv = c.kvHeads * c.headDim
        return [
            ("self_attn.q_proj", q, c.hiddenSize, c.attentionBias),
            ("self_attn.k_proj", kv, c.hiddenSize, c.attentionBias),
            ("self_attn.v_proj", kv, c.hiddenSize, c.attentionBias),
            ("self_attn.o_proj", c.hiddenSize, q, c.attentionBias),
            ("mlp.gate_proj", c.intermediateSize, c.hiddenSize, false),
            ("mlp.up_proj", c.intermediateSize, c.hiddenSize, false),
            ("mlp.down_proj", c.hiddenSize, c.intermediateSize, false),
        ]
    }
}

/// A Gemma 2 / Gemma 3 text checkpoint opened for block-at-a-time execution (or the language model of a
/// Gemma 3 multimodal checkpoint, `init(multimodal:tensors:)`).
///
/// Embeddings are multiplied by `√hidden_size`; every RMSNorm multiplies by `1 + w` (the stored
/// weight plus one, folded in when the norm is read); the final logits of Gemma 2 are soft-capped.
public struct GemmaModel: DecoderModel {
    public let configuration: GemmaConfiguration
    /// `gemma2`, `gemma3_text`, or `gemma3` for the language model of a multimodal checkpoint.
    public let modelType: String
    let reader: WeightReader
    /// Where the decoder's tensors sit (`model.layers.…`, or nested in a multimodal checkpoint).
    let names: DecoderTensorNames
    let embedding: TokenEmbedding
    let lmHead: TokenEmbedding
    let finalNorm: RMSNorm
    let globalRotary: RotaryEmbedding
    let localRotary: RotaryEmbedding
    /// `√hidden_size` in fp32, as transformers multiplies the embeddings.
    let embeddingScale: Float

    /// - Throws: `ModelLoadError` for a missing, mistyped or ill-shaped tensor, or tensors of blocks the
    ///   config does not declare.
    public init(configuration c: GemmaConfiguration, tensors: any TensorSource) throws {
        try self.init(configuration: c, tensors: tensors, names: .causalLM, modelType: c.modelType)
    }

    /// The decoder of `c` whose tensors sit under `names`, reported as `modelType`.
    init(configuration c: GemmaConfiguration, tensors: any TensorSource, names: DecoderTensorNames, modelType: String)
        throws
    {
        configuration = c
        self.modelType = modelType
        self.names = names
        reader = WeightReader(source: tensors)
        (embedding, lmHead) = try LlamaTensors.embeddings(
            reader,
            names: names,
            vocabularySize: c.vocabularySize,
            width: c.hiddenSize,
            tied: c.tieWordEmbeddings
        )
        finalNorm = try Self.norm(reader, names.finalNorm, width: c.hiddenSize, epsilon: c.rmsNormEpsilon)
        let cached = min(c.maxPositions, 4096)
        globalRotary = RotaryEmbedding(
            headDim: c.headDim,
            theta: c.globalRope.theta,
            scaling: c.globalRope.scaling,
            cachedPositions: cached
        )
        localRotary = RotaryEmbedding(
            headDim: c.headDim,
            theta: c.localRope.theta,
            scaling: c.localRope.scaling,
            cachedPositions: cached
        )
        embeddingScale = Float(Double(c.hiddenSize).squareRoot())
        for b in 0..<c.layerCount { try checkBlockHeaders(b) }
        try BlockNames.requireNoExtraBlocks(tensors, prefix: names.blockPrefix, blockCount: c.layerCount)
    }

    /// A Gemma RMSNorm: the stored weight `w` read as `1 + w`.
    static func norm(_ reader: WeightReader, _ tensor: String, width: Int, epsilon: Float) throws -> RMSNorm {
        RMSNorm(weight: try reader.floats(tensor, shape: [width]).map { 1 + $0 }, epsilon: epsilon)
    }

    private func checkBlockHeaders(_ b: Int) throws {
        let c = configuration
        for norm in GemmaTensors.blockNorms {
            _ = try reader.checkedInfo(names.block(b, norm), shape: [c.hiddenSize])
        }
        if c.queryKeyNorm {
            for norm in [LlamaTensors.queryNorm, LlamaTensors.keyNorm] {
                _ = try reader.checkedInfo(names.block(b, norm), shape: [c.headDim])
            }
        }
        for layer in GemmaTensors.linears(c) {
            _ = try reader.checkedInfo(
                names.block(b, "\(layer.name).weight"),
                shape: [layer.rows, layer.columns]
            )
            if layer.bias {
                _ = try reader.checkedInfo(names.block(b, "\(layer.name).bias"), shape: [layer.rows])
            }
        }
    }

    public var blockCount: Int { configuration.layerCount }
    public var hiddenSize: Int { configuration.hiddenSize }
    public var vocabularySize: Int { configuration.vocabularySize }
    public var maxPositions: Int { configuration.maxPositions }
    public var attentionHeads: Int { configuration.attentionHeads }
    public var headDim: Int { configuration.headDim }
    public var keyValueHeads: Int { configuration.kvHeads }

    public func embed(tokens: [Int]) throws -> Matrix {
        var x = try embedding.lookup(tokens)
        let scale = embeddingScale
        x.storage.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] *= scale } }
        return x
    }

    public func loadBlock(_ index: Int) throws -> any DecoderBlock {
        guard (0..<blockCount).contains(index) else {
            throw ModelLoadError.blockOutOfRange(index: index, blockCount: blockCount)
        }
        let c = configuration
        var linears: [Linear] = []
        for layer in GemmaTensors.linears(c) {
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
        func norm(_ tensor: String, width: Int) throws -> RMSNorm {
            try Self.norm(reader, names.block(index, tensor), width: width, epsilon: c.rmsNormEpsilon)
        }
        let local = c.layerKinds[index] == .sliding
        return GemmaBlock(
            index: index,
            inputNorm: try norm(LlamaTensors.inputNorm, width: c.hiddenSize),
            postAttentionNorm: try norm(LlamaTensors.postAttentionNorm, width: c.hiddenSize),
            preFeedForwardNorm: try norm(GemmaTensors.preFeedForwardNorm, width: c.hiddenSize),
            postFeedForwardNorm: try norm(GemmaTensors.postFeedForwardNorm, width: c.hiddenSize),
            queryNorm: c.queryKeyNorm ? try norm(LlamaTensors.queryNorm, width: c.headDim) : nil,
            keyNorm: c.queryKeyNorm ? try norm(LlamaTensors.keyNorm, width: c.headDim) : nil,
            linears: linears,
            attention: CausalAttention(
                heads: c.attentionHeads,
                kvHeads: c.kvHeads,
                headDim: c.headDim,
                scale: c.attentionScale,
                slidingWindow: local ? c.slidingWindow : nil,
                softCap: c.attentionSoftCap
            ),
            rotary: local ? localRotary : globalRotary
        )
    }

    public func prunableLinearLayers(block index: Int) -> [LinearLayerInfo] {
        GemmaTensors.linears(configuration).map { layer in
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
        var logits = try lmHead.project(finalNorm(hidden))
        if let cap = configuration.finalLogitSoftCap { Activation.softCap(&logits, cap: cap) }
        return logits
    }
}
