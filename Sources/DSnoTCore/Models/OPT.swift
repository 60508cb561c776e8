// SPDX-License-Identifier: Apache-2.0
// OPT: Meta's OPT as a block-at-a-time DecoderModel; reference: HF modeling_opt.

import SafeTensors

/// The checkpoint tensor names of OPT, in one table (relative to the decoder prefix).
enum OPTTensors {
    /// Hugging Face checkpoints use `model.decoder.`; some older ones `decoder.`.
    static let prefixes = ["model.decoder.", "decoder."]
    static let embedding = "embed_tokens.weight"
    static let positions = "embed_positions.weight"
    static let projectIn = "project_in.weight"
    static let projectOut = "project_out.weight"
    static let finalNormWeight = "final_layer_norm.weight"
    static let finalNormBias = "final_layer_norm.bias"
    static let lmHead = "lm_head.weight"
    static let layers = "layers."
    static let attentionNorm = "self_attn_layer_norm"
    static let mlpNorm = "final_layer_norm"

    /// The linear layers of a block in module order, with their `(out, in)` shapes (all have biases).
    static func linears(_ c: OPTConfiguration) -> [(name: LinearLayerName, rows: Int, columns: Int)] {
        let h = c.hiddenSize
        return [
            ("self_attn.q_proj", h, h), ("self_attn.k_proj", h, h), ("self_attn.v_proj", h, h),
            ("self_attn.out_proj", h, h), ("fc1", c.ffnSize, h), ("fc2", h, c.ffnSize),
        ]
    }
}

/// An OPT checkpoint opened for block-at-a-time execution (same loading policy as `LlamaModel`).
public struct OPTModel: DecoderModel {
    public let configuration: OPTConfiguration
    let reader: WeightReader
    /// `model.decoder.` or `decoder.`.
    let prefix: String
    let embedding: TokenEmbedding
    let positions: TokenEmbedding
    let lmHead: TokenEmbedding
    let projectIn: Linear?
    let projectOut: Linear?
    let finalNorm: LayerNorm?

    /// - Throws: `ModelLoadError` for a missing, mistyped, ill-shaped or non-finite tensor, or tensors
    ///   of blocks the config does not declare.
    public init(configuration c: OPTConfiguration, tensors: any TensorSource) throws {
        configuration = c
        reader = WeightReader(source: tensors)
        let prefix =
            OPTTensors.prefixes.first { tensors.tensorInfo(named: $0 + OPTTensors.embedding) != nil }
            ?? OPTTensors.prefixes[0]
        self.prefix = prefix
        let projected = c.wordEmbedProjectionSize
        embedding = try TokenEmbedding(
            reader: reader,
            tensorName: prefix + OPTTensors.embedding,
            vocabularySize: c.vocabularySize,
            width: projected
        )
        positions = try TokenEmbedding(
            reader: reader,
            tensorName: prefix + OPTTensors.positions,
            vocabularySize: c.maxPositions + OPTConfiguration.positionOffset,
            width: c.hiddenSize
        )
        lmHead =
            c.tieWordEmbeddings
            ? embedding
            : try TokenEmbedding(
                reader: reader,
                tensorName: OPTTensors.lmHead,
                vocabularySize: c.vocabularySize,
                width: projected
            )
        if projected != c.hiddenSize {
            projectIn = Linear(
                weight: try reader.matrix(prefix + OPTTensors.projectIn, rows: c.hiddenSize, columns: projected)
            )
            projectOut = Linear(
                weight: try reader.matrix(prefix + OPTTensors.projectOut, rows: projected, columns: c.hiddenSize)
            )
        } else {
            projectIn = nil
            projectOut = nil
        }
        finalNorm =
            c.hasFinalLayerNorm
            ? LayerNorm(
                weight: try reader.floats(prefix + OPTTensors.finalNormWeight, shape: [c.hiddenSize]),
                bias: try reader.floats(prefix + OPTTensors.finalNormBias, shape: [c.hiddenSize]),
                epsilon: c.layerNormEpsilon
            )
            : nil
        for b in 0..<c.layerCount { _ = try blockParts(b, convert: false) }
        try BlockNames.requireNoExtraBlocks(tensors, prefix: prefix + OPTTensors.layers, blockCount: c.layerCount)
    }

    func tensor(_ b: Int, _ local: String) -> String { "\(prefix)\(OPTTensors.layers)\(b).\(local)" }

    /// Checks (and with `convert`, reads) block `b`'s tensors.
    private func blockParts(_ b: Int, convert: Bool) throws -> (norms: [LayerNorm], linears: [Linear]) {
        let c = configuration
        var norms: [LayerNorm] = []
        for norm in [OPTTensors.attentionNorm, OPTTensors.mlpNorm] {
            let w = tensor(b, norm + ".weight")
            let bias = tensor(b, norm + ".bias")
            if convert {
                norms.append(
                    LayerNorm(
                        weight: try reader.floats(w, shape: [c.hiddenSize]),
                        bias: try reader.floats(bias, shape: [c.hiddenSize]),
                        epsilon: c.layerNormEpsilon
                    )
                )
            } else {
                _ = try reader.checkedInfo(w, shape: [c.hiddenSize])
                _ = try reader.checkedInfo(bias, shape: [c.hiddenSize])
            }
        }
        var linears: [Linear] = []
        for layer in OPTTensors.linears(c) {
            let w = tensor(b, "\(layer.name).weight")
            let bias = tensor(b, "\(layer.name).bias")
            if convert {
                linears.append(
                    Linear(
                        weight: try reader.matrix(w, rows: layer.rows, columns: layer.columns),
                        bias: try reader.floats(bias, shape: [layer.rows])
                    )
                )
            } else {
                _ = try reader.checkedInfo(w, shape: [layer.rows, layer.columns])
                _ = try reader.checkedInfo(bias, shape: [layer.rows])
            }
        }
        return (norms, linears)
    }

    public var modelType: String { "opt" }
    public var blockCount: Int { configuration.layerCount }
    public var hiddenSize: Int { configuration.hiddenSize }
    public var vocabularySize: Int { configuration.vocabularySize }
    public var maxPositions: Int { configuration.maxPositions }
    public var attentionHeads: Int { configuration.attentionHeads }
    public var headDim: Int { configuration.headDim }
    public var keyValueHeads: Int { configuration.attentionHeads }

    /// `project_in(embed_tokens(ids)) + embed_positions(2 + position)`.
    public func embed(tokens: [Int]) throws -> Matrix {
        guard tokens.count <= maxPositions else {
            throw ModelLoadError.sequenceTooLong(length: tokens.count, maximum: maxPositions)
        }
        let words = try embedding.lookup(tokens)
        var hidden = projectIn.map { $0(words) } ?? words
        let offset = OPTConfiguration.positionOffset
        Activation.add(&hidden, try positions.lookup(Array(offset..<(offset + tokens.count))))
        return hidden
    }

    public func loadBlock(_ index: Int) throws -> any DecoderBlock {
        guard (0..<blockCount).contains(index) else {
            throw ModelLoadError.blockOutOfRange(index: index, blockCount: blockCount)
        }
        let parts = try blockParts(index, convert: true)
        let c = configuration
        return OPTBlock(
            index: index,
            layerNormBefore: c.layerNormBefore,
            attentionNorm: parts.norms[0],
            mlpNorm: parts.norms[1],
            linears: parts.linears,
            attention: CausalAttention(
                heads: c.attentionHeads,
                kvHeads: c.attentionHeads,
                headDim: c.headDim,
                scale: 1 / Float(c.headDim).squareRoot()
            )
        )
    }

    public func prunableLinearLayers(block index: Int) -> [LinearLayerInfo] {
        OPTTensors.linears(configuration).map { layer in
            let name = tensor(index, "\(layer.name).weight")
            return LinearLayerInfo(
                name: layer.name,
                tensorName: name,
                outFeatures: layer.rows,
                inFeatures: layer.columns,
                dtype: reader.source.tensorInfo(named: name)?.dtype ?? .f32
            )
        }
    }

    /// `lm_head(project_out(final_layer_norm(h)))`, each step present only when the config has it.
    public func finalLogits(_ hidden: Matrix) throws -> Matrix {
        var h = finalNorm.map { $0(hidden) } ?? hidden
        if let projectOut { h = projectOut(h) }
        return try lmHead.project(h)
    }
}
