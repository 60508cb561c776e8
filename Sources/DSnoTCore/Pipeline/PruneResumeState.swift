// SPDX-License-Identifier: Apache-2.0
// PruneResumeState: what SequentialPruner needs to continue a run at a block boundary.

/// The pipeline's state after block `nextBlock − 1` finished: everything the remaining blocks read.
///
/// `SequentialPruner.run` hands one to `onBlockFinished` after every block but the last, and takes one
/// back as `resumingFrom`: the remaining blocks then produce exactly what an uninterrupted run would
/// (the hidden states are fp32 bit for bit, OWL's allocation is not recomputed). Storing it durably, and
/// the output already written, is the caller's (DSnoTPipeline's resume points).
///
/// ```swift
/// let report = try pruner.run(model: m, source: s, calibration: c, sink: sink, logger: logger,
///                             onBlockFinished: { state in try save(state) })
/// // after a crash:
/// try pruner.validateResume(state, model: m, calibration: c)
/// let report = try pruner.run(…, resumingFrom: state, restoreOutput: { try replay(state.nextBlock) })
/// ```
public struct PruneResumeState: Sendable {
    /// The first block not finished yet (`1..<blockCount`).
    public var nextBlock: Int
    /// The calibration hidden states entering `nextBlock`, one `(L, hidden)` matrix per sequence.
    public var hidden: [Matrix]
    /// `output_check = model`: the held-out sequences' states through the dense blocks so far.
    public var denseStates: [Int: Matrix]
    /// DSnoT's loss check: its windows' states through the blocks so far as published, and with every
    /// block's base masks (empty without a check; the base stream also without DSnoT).
    public var lossStates: [Matrix]
    public var baseLossStates: [Matrix]
    /// Per block: the target sparsity and OWL's outlier ratio (`nil` without OWL).
    public var allocation: [BlockAllocation]
    /// The report of the finished blocks (layers, blocks, totals, timings so far).
    public var report: PruneReport

    /// One block's target.
    public struct BlockAllocation: Sendable, Equatable {
        public var sparsity: Double
        public var outlierRatio: Double?
        public init(sparsity: Double, outlierRatio: Double?) {
            self.sparsity = sparsity
            self.outlierRatio = outlierRatio
        }
    }

    public init(
        nextBlock: Int,
        hidden: [Matrix],
        denseStates: [Int: Matrix],
        lossStates: [Matrix] = [],
        baseLossStates: [Matrix] = [],
        allocation: [BlockAllocation],
        report: PruneReport
    ) {
        self.nextBlock = nextBlock
        self.hidden = hidden
        self.denseStates = denseStates
        self.lossStates = lossStates
        self.baseLossStates = baseLossStates
        self.allocation = allocation
        self.report = report
    }
}

extension SequentialPruner {
    /// Checks that `state` continues a run of this recipe on this model and calibration: identity
    /// (recipe hash, model type, block count, calibration fingerprint), counts and every shape. A state
    /// read from disk is untrusted: call this before `run(resumingFrom:)`, which trusts it.
    /// - Parameter lossWindows: the loss check's windows, as `run` will be given them.
    /// - Throws: `PipelineError.resumeMismatch` naming the first difference (`.invalidLossWindows` for
    ///   windows `run` would refuse).
    public func validateResume(
        _ state: PruneResumeState,
        model: any DecoderModel,
        calibration: CalibrationSet?,
        lossWindows: CalibrationSet? = nil
    ) throws {
        func mismatch(_ what: String, expected: Any, got: Any) -> PipelineError {
            .resumeMismatch(reason: "\(what): expected \(expected), got \(got)")
        }
        let blocks = model.blockCount
        guard (1..<max(blocks, 1)).contains(state.nextBlock) else {
            throw mismatch("next block", expected: "1..<\(blocks)", got: state.nextBlock)
        }
        let report = state.report
        guard report.recipeHash == recipe.stableHash else {
            throw mismatch("recipe hash", expected: recipe.stableHash, got: report.recipeHash)
        }
        guard report.modelType == model.modelType, report.blockCount == blocks else {
            throw mismatch(
                "model",
                expected: "\(model.modelType) with \(blocks) blocks",
                got: "\(report.modelType) with \(report.blockCount) blocks"
            )
        }
        let summary = calibration.map {
            Self.summary($0, errorSequences: recipe.needsHessian ? $0.count : min(errorSequences, $0.count))
        }
        guard report.calibration == summary else {
            throw mismatch(
                "calibration",
                expected: summary?.fingerprint ?? "none",
                got: report.calibration?.fingerprint ?? "none"
            )
        }
        guard report.blocks.map(\.index) == Array(0..<state.nextBlock) else {
            throw mismatch("block reports", expected: "blocks 0..<\(state.nextBlock)", got: report.blocks.map(\.index))
        }
        let layers = (0..<state.nextBlock).flatMap { model.prunableLinearLayers(block: $0).map(\.tensorName) }
        guard report.layers.map(\.name) == layers else {
            throw mismatch("layer reports", expected: "\(layers.count) layers", got: report.layers.count)
        }
        guard state.allocation.count == blocks,
            state.allocation.allSatisfy({ $0.sparsity.isFinite && (0...1).contains($0.sparsity) })
        else {
            throw mismatch("allocation", expected: "\(blocks) sparsities in [0, 1]", got: state.allocation.count)
        }
        let sequences = calibration?.count ?? 0
        let length = calibration?.length ?? 0
        guard state.hidden.count == sequences else {
            throw mismatch("hidden states", expected: sequences, got: state.hidden.count)
        }
        for (n, h) in state.hidden.enumerated() where h.rows != length || h.columns != model.hiddenSize {
            throw mismatch("hidden state \(n)", expected: [length, model.hiddenSize], got: [h.rows, h.columns])
        }
        let checked =
            recipe.dsnot?.outputCheck == .model && sequences > 0
            ? Set(StatisticsPlan.checkSequences(of: sequences)) : []
        guard Set(state.denseStates.keys) == checked else {
            throw mismatch("dense states", expected: checked.sorted(), got: state.denseStates.keys.sorted())
        }
        for (n, h) in state.denseStates where h.rows != length || h.columns != model.hiddenSize {
            throw mismatch("dense state \(n)", expected: [length, model.hiddenSize], got: [h.rows, h.columns])
        }
        let windows = try lossCheckWindows(model: model, calibration: calibration, lossWindows: lossWindows)?.windows
        let lossCount = windows?.count ?? 0
        let lossLength = windows?.first?.count ?? 0
        guard state.lossStates.count == lossCount else {
            throw mismatch("loss-check states", expected: lossCount, got: state.lossStates.count)
        }
        let baseCount = recipe.dsnot == nil ? 0 : lossCount
        guard state.baseLossStates.count == baseCount else {
            throw mismatch("loss-check base states", expected: baseCount, got: state.baseLossStates.count)
        }
        for (n, h) in (state.lossStates + state.baseLossStates).enumerated()
        where h.rows != lossLength || h.columns != model.hiddenSize {
            throw mismatch(
                "loss-check state \(n)",
                expected: [lossLength, model.hiddenSize],
                got: [h.rows, h.columns]
            )
        }
    }
}
