// SPDX-License-Identifier: Apache-2.0
// DecoderModel, DecoderBlock: the block-at-a-time API the pruning pipeline and the evaluator run on.

public import SafeTensors

/// The local name of a linear layer inside a decoder block, in Hugging Face module notation
/// (`self_attn.q_proj`, `mlp.down_proj`, `fc1`).
public struct LinearLayerName: Hashable, Sendable, Comparable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// The dotted module path relative to the block.
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }
    public var description: String { rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// One prunable linear layer of a block: where its weight lives in the checkpoint and its shape.
public struct LinearLayerInfo: Sendable, Equatable {
    /// Block-local name, e.g. `self_attn.q_proj`.
    public let name: LinearLayerName
    /// Checkpoint tensor name of the weight, e.g. `model.layers.3.self_attn.q_proj.weight`.
    public let tensorName: String
    /// Rows of the weight (`C_out`).
    public let outFeatures: Int
    /// Columns of the weight (`C_in`).
    public let inFeatures: Int
    /// The weight's dtype in the checkpoint (the output keeps it).
    public let dtype: DType
    /// The routed expert this layer belongs to (MoE blocks), `nil` for every other layer (attention, a
    /// dense MLP, a shared expert). An expert's layers see only the tokens routed to it.
    public var expert: Int? = nil
}

/// A decoder-only transformer whose blocks are loaded (as fp32) one at a time.
///
/// Memory policy: opening a model reads only `config.json` and the tensor headers. `embed` converts
/// just the embedding rows of the given tokens; `finalLogits` streams the LM head through a bounded
/// chunk buffer; `loadBlock` converts one block's weights. Nothing else is resident in fp32.
///
/// ```swift
/// let model = try ModelRegistry.load(directory: "/models/smollm2")
/// var hidden = try model.embed(tokens: ids)                 // (L, hidden)
/// for b in 0..<model.blockCount {
///     let block = try model.loadBlock(b)
///     hidden = block.forward(hidden) { layer, input in stats[layer, default: .init()].add(input) }
/// }
/// let logits = try model.finalLogits(hidden)                // (L, vocab)
/// ```
public protocol DecoderModel: Sendable {
    /// The `model_type` this was decoded from (`ModelRegistry.supportedModelTypes`).
    var modelType: String { get }
    /// Number of decoder blocks.
    var blockCount: Int { get }
    /// Width of the residual stream (the hidden states between blocks).
    var hiddenSize: Int { get }
    /// Number of token ids.
    var vocabularySize: Int { get }
    /// Longest sequence the model positions (`max_position_embeddings`).
    var maxPositions: Int { get }
    /// Query heads and the width of one head (key/value heads may be fewer).
    var attentionHeads: Int { get }
    /// Width of one attention head.
    var headDim: Int { get }
    /// Key/value heads (fewer than `attentionHeads` with grouped-query attention).
    var keyValueHeads: Int { get }

    /// Hidden states entering block 0 for one sequence.
    /// - Returns: `(tokens.count, hiddenSize)`.
    /// - Throws: `ModelLoadError.tokenOutOfRange`, `.sequenceTooLong`, or a tensor error.
    func embed(tokens: [Int]) throws -> Matrix

    /// Block `index` with its weights converted to fp32 (dense, as in the checkpoint).
    /// - Throws: `ModelLoadError` for an out-of-range index, a missing/ill-shaped/non-finite tensor.
    func loadBlock(_ index: Int) throws -> any DecoderBlock

    /// The prunable linear layers of block `index`, in module definition order.
    func prunableLinearLayers(block index: Int) -> [LinearLayerInfo]

    /// Routed experts per sparse block and experts per token (the MoE families), `nil` for a dense model.
    var expertRouting: (experts: Int, perToken: Int)? { get }

    /// Final norm (and projection), then the LM head (tied or not).
    /// - Parameter hidden: `(L, hiddenSize)`, the outputs of the last block.
    /// - Returns: `(L, vocabularySize)` logits.
    func finalLogits(_ hidden: Matrix) throws -> Matrix
}

/// One decoder block in fp32: a pure function of the hidden states, with mutable linear weights.
public protocol DecoderBlock: Sendable {
    /// The block's index in the model.
    var index: Int { get }
    /// Its linear layers in module definition order (attention first, then the MLP).
    var linearLayerNames: [LinearLayerName] { get }

    /// Runs the block on one sequence. Causal attention, positions `0..<L`.
    /// - Parameters:
    ///   - hidden: `(L, hiddenSize)`.
    ///   - tap: called once per linear layer, in `linearLayerNames` order, with that layer's input
    ///     `(L, inFeatures)` before it is applied (layers that share an input each get a call).
    /// - Returns: `(L, hiddenSize)`.
    func forward(_ hidden: Matrix, tap: ((LinearLayerName, Matrix) -> Void)?) -> Matrix

    /// Calls `tap` exactly as `forward` does, but stops once the last linear layer's input is known:
    /// the statistics pass reads only the inputs, so the last linear layer and whatever follows it
    /// (the residual, a post-norm) are not computed.
    func tapLinearInputs(_ hidden: Matrix, tap: (LinearLayerName, Matrix) -> Void)

    /// The fp32 weight `(out, in)` of a linear layer.
    /// - Precondition: `name` is one of `linearLayerNames`.
    func weight(of name: LinearLayerName) -> Matrix

    /// Replaces a linear layer's weight (e.g. with the pruned one) before re-running the block.
    /// - Precondition: `name` is one of `linearLayerNames` and the shape is unchanged.
    mutating func setWeight(_ weight: Matrix, of name: LinearLayerName)

    /// Sets the GEMM input format of every linear layer (`ComputeFormat`); weights set later follow it.
    mutating func setCompute(_ format: ComputeFormat)
}

extension DecoderModel {
    public var expertRouting: (experts: Int, perToken: Int)? { nil }
}

extension DecoderBlock {
    /// Runs the block without a tap.
    public func forward(_ hidden: Matrix) -> Matrix { forward(hidden, tap: nil) }

    /// The whole forward pass; blocks that can stop early override it.
    public func tapLinearInputs(_ hidden: Matrix, tap: (LinearLayerName, Matrix) -> Void) {
        withoutActuallyEscaping(tap) { tap in _ = forward(hidden, tap: tap) }
    }
}
