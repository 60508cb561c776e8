// SPDX-License-Identifier: Apache-2.0
// `compute = "bf16"`: the recipe key, the blocks' bf16 GEMMs against fp32, Wanda's masks with bf16
// forward passes against fp32's, and a block whose bf16 states overflow failing the run clearly.

import DSnoTCore
import DSnoTSupport
import Foundation
import Logging
import SafeTensors
import Testing

/// A checkpoint with one tensor's bytes replaced (every element `value`, in the tensor's dtype).
struct OverriddenTensor: TensorSource {
    let base: Checkpoint
    let name: String
    let bytes: [UInt8]

    init(_ base: Checkpoint, name: String, value: Float) throws {
        let info = try #require(base.tensorInfo(named: name))
        self.base = base
        self.name = name
        bytes = FloatConversion.encode([Float](repeating: value, count: info.shape.reduce(1, *)), as: info.dtype)
    }

    var location: String { base.location }
    var tensorNames: [String] { base.tensorNames }
    func tensorInfo(named name: String) -> TensorInfo? { base.tensorInfo(named: name) }
    func withTensorBytes<R>(named name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        name == self.name ? try bytes.withUnsafeBytes(body) : try base.withTensorBytes(named: name, body)
    }
    func releasePages(named name: String) { base.releasePages(named: name) }
}

@Suite struct ComputeFormatTests {
    static let logger = Logger(label: "test")
    static let model = SequentialPrunerTests.goldenModel

    @Test func theComputeKeyDecodesAndOnlyChangesTheHashForBF16() throws {
        let json = #"{"method":"wanda","pattern":{"type":"unstructured","ratio":0.5},"compute":"bf16"}"#
        let r = try JSONDecoder().decode(Recipe.self, from: Data(json.utf8))
        #expect(r.compute == .bf16)
        #expect(r.canonicalJSON.contains(#""compute":"bf16""#))
        var fp32 = r
        fp32.compute = .fp32
        #expect(!fp32.canonicalJSON.contains("compute"))
        #expect(fp32.stableHash != r.stableHash)
        let absent = #"{"method":"wanda","pattern":{"type":"unstructured","ratio":0.5}}"#
        #expect(try JSONDecoder().decode(Recipe.self, from: Data(absent.utf8)).stableHash == fp32.stableHash)
        #expect(try JSONDecoder().decode(Recipe.self, from: try JSONEncoder().encode(r)) == r)
    }

    @Test func anUnknownFormatNamesTheChoices() {
        let json = #"{"method":"wanda","compute":"fp16"}"#
        #expect(
            throws: PruningError.invalidSetting(name: "compute", expected: #"one of "fp32", "bf16""#, got: #""fp16""#)
        ) {
            try JSONDecoder().decode(Recipe.self, from: Data(json.utf8))
        }
    }

    /// A block with bf16 GEMM inputs stays within bf16's rounding of the fp32 block: relative error of
    /// the output a few 2⁻⁸ at most (the residual stream is added in fp32), never exactly equal.
    @Test(.enabled(if: BF16GEMM.isAvailable, "oneDNN runs no bf16 product in this process"))
    func aBF16BlockStaysCloseToTheFP32Block() throws {
        let model = try ModelRegistry.load(directory: Self.model)
        let calibration = try SequentialPrunerTests.goldenCalibration()
        let hidden = try model.embed(tokens: calibration.sequences[0].map(Int.init))
        var block = try model.loadBlock(0)
        let fp32 = block.forward(hidden)
        block.setCompute(.bf16)
        let bf16 = block.forward(hidden)
        let error = bf16.normalizedMeanSquaredError(to: fp32)
        #expect(error > 0 && error < 1e-4, "normalized MSE \(error)")
    }

    /// A weight set while in bf16 compute is used in bf16 at once (the copy follows the weight).
    @Test func aWeightSetInBF16ComputeIsTheOneMultiplied() throws {
        let model = try ModelRegistry.load(directory: Self.model)
        let hidden = try model.embed(tokens: Array(0..<16))
        let layer = try #require(model.prunableLinearLayers(block: 0).first)
        var pruned = try model.loadBlock(0)
        let zero = Matrix(rows: layer.outFeatures, columns: layer.inFeatures)
        pruned.setWeight(zero, of: layer.name)
        pruned.setCompute(.bf16)
        var later = try model.loadBlock(0)
        later.setCompute(.bf16)
        later.setWeight(zero, of: layer.name)
        #expect(later.forward(hidden) == pruned.forward(hidden))
        #expect(later.forward(hidden) != (try model.loadBlock(0)).forward(hidden))
    }

    /// Wanda with bf16 forward passes picks (nearly) the fp32 masks: ≥ 98 % of every layer's mask agrees
    /// (issue 14's aim), and the report says which format ran.
    @Test func wandaMasksWithBF16PassesAgreeWithFP32() throws {
        let checkpoint = try Checkpoint(directory: Self.model)
        let model = try ModelRegistry.load(directory: Self.model)
        let calibration = try SequentialPrunerTests.goldenCalibration()
        func prune(_ compute: ComputeFormat) throws -> (CapturingSink, PruneReport) {
            let sink = CapturingSink()
            let report = try SequentialPruner(
                recipe: Recipe(method: .wanda, pattern: .unstructured(0.5), compute: compute)
            )
            .run(model: model, source: checkpoint, calibration: calibration, sink: sink, logger: Self.logger)
            return (sink, report)
        }
        let (fp32, fp32Report) = try prune(.fp32)
        let (bf16, bf16Report) = try prune(.bf16)
        #expect(fp32Report.compute == .fp32)
        #expect(bf16Report.compute == ComputeFormat.bf16.effective.format)
        #expect(bf16Report.recipe.compute == .bf16 && bf16Report.recipeHash != fp32Report.recipeHash)
        for layer in fp32Report.layers {
            let (a, b) = (try fp32.zeroMask(layer.name), try bf16.zeroMask(layer.name))
            let agreeing = zip(a, b).filter { $0 == $1 }.count
            #expect(Double(agreeing) >= 0.98 * Double(a.count), "\(layer.name): \(agreeing) of \(a.count)")
        }
    }

    /// bf16 compute adds the block's bfloat16 weight copies and, per sequence in flight, one bf16 GEMM input
    /// and the attention's bf16 operands (keys and values of one key/value head, a tile's queries and
    /// probabilities).
    @Test func theMemoryEstimateCountsTheBF16Copies() throws {
        let model = try ModelRegistry.load(directory: Self.model)
        func estimate(_ compute: ComputeFormat) -> MemoryEstimate {
            MemoryEstimate.estimate(
                model: model,
                recipe: Recipe(method: .wanda, pattern: .unstructured(0.5), compute: compute),
                sequences: 4,
                length: 32,
                errorSequences: 4
            )
        }
        let (fp32, bf16) = (estimate(.fp32), estimate(.bf16))
        let layers = model.prunableLinearLayers(block: 0)
        let weights = layers.reduce(0) { $0 + $1.outFeatures * $1.inFeatures }
        let widest = layers.map(\.inFeatures).max() ?? 0
        #expect(fp32.bf16Copies == 0)
        let (d, group) = (model.headDim, model.attentionHeads / model.keyValueHeads)
        let attention = 2 * 32 * d + group * 32 * (d + 32)
        #expect(bf16.bf16Copies == 2 * weights + min(Parallel.workers, 4) * (32 * widest + attention) * 2)
        #expect(bf16.total - fp32.total == bf16.bf16Copies)
    }

    /// Weights of 3·10³⁸ in block 0's last layer overflow its bf16 outputs: the run fails naming the block
    /// and the format instead of pruning block 1 on infinities. (Where the CPU lacks bf16 the run is fp32,
    /// which has no such check: nothing to test there.)
    @Test(
        .enabled(if: ComputeFormat.bf16.effective.format == .bf16, "bf16 compute runs only on CPUs with AVX-512 BF16")
    )
    func overflowingStatesFailTheRunClearly() throws {
        let checkpoint = try Checkpoint(directory: Self.model)
        let model = try ModelRegistry.load(directory: Self.model)
        let last = try #require(model.prunableLinearLayers(block: 0).last)
        let source = try OverriddenTensor(checkpoint, name: last.tensorName, value: 3e38)
        let hostile = try ModelRegistry.load(directory: Self.model, tensors: source)
        let recipe = Recipe(method: .wanda, pattern: .unstructured(0.5), compute: .bf16)
        #expect(throws: PipelineError.nonFiniteActivations(block: 0, compute: "bf16")) {
            try SequentialPruner(recipe: recipe).run(
                model: hostile,
                source: source,
                calibration: try SequentialPrunerTests.goldenCalibration(),
                sink: CapturingSink(),
                logger: Self.logger
            )
        }
    }
}
