// SPDX-License-Identifier: Apache-2.0
// SequentialPruner: the block-by-block pruning flow of ALGORITHM.md D3 (reference B§2.3).

import DSnoTSupport
public import Logging
import SafeTensors

/// Prunes a model block by block, holding one block in fp32 at a time (D3):
///
/// ```
/// for block b:  load b (fp32)
///               dense forward over the N sequences → statistics of every linear layer
///               base pruner (+ DSnoT) per linear → write the block's tensors to the sink
///               pruned forward over the N sequences → the next block's inputs
/// ```
///
/// Layers that read the same activations (q/k/v; gate/up) share one set of statistics. The
/// reconstruction-error metric uses a Gram matrix accumulated on the first `errorSequences` sequences
/// (or the full Hessian when the recipe needs it anyway). Both passes run one sequence per core
/// (`Parallel.forEach`) in chunks of one sequence per core; statistics are accumulated in sequence
/// order after each chunk, so they do not depend on the core count. Cancellation is checked between
/// chunks, so a stop costs at most one chunk's forward passes; the partial block is discarded.
///
/// ```swift
/// let pruner = try SequentialPruner(recipe: recipe)
/// let report = try pruner.run(model: model, source: checkpoint, calibration: set, sink: sink, logger: logger)
/// ```
public struct SequentialPruner: Sendable {
    public let recipe: Recipe
    /// Calibration sequences whose inputs feed the reconstruction-error metric (when the recipe
    /// accumulates no Hessian of its own).
    public var errorSequences: Int

    /// - Throws: `PruningError` for invalid pruning settings (the recipe's calibration source is the
    ///   caller's business: `run` takes the windows themselves).
    public init(recipe: Recipe, errorSequences: Int = 8) throws {
        try recipe.validatePruning()
        self.recipe = recipe
        self.errorSequences = max(0, errorSequences)
    }

    /// The peak-memory estimate of `run` for this model and calibration size.
    /// - Parameter lossWindows: the loss check's windows and their length when the caller gives its own
    ///   (`run`'s `lossWindows`); by default the recipe's check scores calibration sequences.
    public func memoryEstimate(
        model: any DecoderModel,
        sequences: Int,
        length: Int,
        lossWindows: (count: Int, length: Int)? = nil
    ) -> MemoryEstimate {
        let checked = recipe.dsnot?.lossCheck == true && sequences > 0
        return MemoryEstimate.estimate(
            model: model,
            recipe: recipe,
            sequences: sequences,
            length: length,
            errorSequences: recipe.needsHessian ? 0 : min(errorSequences, sequences),
            lossWindows: lossWindows
                ?? (checked ? (Self.lossCheckWindowCount(calibrationSequences: sequences), length) : nil)
        )
    }

    /// Runs the whole pipeline.
    /// - Parameters:
    ///   - model: the input model (reads its checkpoint block by block).
    ///   - source: the same checkpoint's tensors (copied tensors are streamed from it unchanged).
    ///   - calibration: the windows; required when `recipe.needsCalibration`; optional for magnitude
    ///     (then only used for the error metric).
    ///   - sink: receives every output tensor.
    ///   - progress: called at each phase and sequence.
    ///   - isCancelled: polled between sequences and blocks.
    ///   - resume: continue at `resume.nextBlock` (checked with `validateResume` first: it is trusted
    ///     here). The untouched tensors are copied again, then `restoreOutput` must write the finished
    ///     blocks' pruned tensors to `sink` in their original order; embedding and OWL are not redone.
    ///   - restoreOutput: see `resume`.
    ///   - onBlockFinished: called after every block but the last with the state the next block
    ///     needs (after its tensors reached `sink`); a throw ends the run.
    ///   - lossWindows: the windows DSnoT's loss check scores (`DSnoT.Settings.lossCheck`; callers draw
    ///     them from the calibration text after the calibration windows). Without them a recipe with the
    ///     check scores the last calibration sequences. Given to a recipe without DSnoT (the fallback
    ///     run a loss check asks for), the published model's loss is still scored and reported.
    /// - Returns: the run's report (without perplexity).
    /// - Throws: `PipelineError`, `PruningError`, `ModelLoadError`, or the sink's errors.
    public func run(
        model: any DecoderModel,
        source: any TensorSource,
        calibration: CalibrationSet?,
        sink: any PrunedTensorSink,
        logger: Logger,
        progress: (PruneProgress) -> Void = { _ in },
        isCancelled: () -> Bool = { false },
        resumingFrom resume: PruneResumeState? = nil,
        restoreOutput: () throws -> Void = {},
        onBlockFinished: ((PruneResumeState) throws -> Void)? = nil,
        lossWindows: CalibrationSet? = nil
    ) throws -> PruneReport {
        let clock = ContinuousClock()
        let start = clock.now
        if recipe.needsCalibration, calibration == nil {
            throw PipelineError.calibrationRequired(method: recipe.method.rawValue)
        }
        if let calibration, calibration.length > model.maxPositions {
            throw PipelineError.sequenceTooLong(length: calibration.length, maximum: model.maxPositions)
        }
        let sequences = calibration?.count ?? 0
        let lossCheck = try lossCheckWindows(model: model, calibration: calibration, lossWindows: lossWindows)
        var report = PruneReport(
            recipe: recipe,
            recipeHash: recipe.stableHash,
            modelType: model.modelType,
            blockCount: model.blockCount,
            calibration: calibration.map {
                Self.summary($0, errorSequences: recipe.needsHessian ? $0.count : min(errorSequences, $0.count))
            },
            memoryEstimateBytes: memoryEstimate(
                model: model,
                sequences: sequences,
                length: calibration?.length ?? 0,
                lossWindows: lossCheck.map { ($0.windows.count, $0.windows.first?.count ?? 0) }
            )
            .total
        )
        // The report's recipe states what ran: N and L of the windows used (a token file's own shape, or L
        // capped at the model's context; 0 and 0 when none were), not the requested ones; `recipeHash`
        // stays the request's identity.
        let compute = recipe.compute.effective
        if let notice = compute.notice { logger.notice("\(notice)") }
        report.compute = compute.format
        report.recipe.calibration.sequences = calibration?.count ?? 0
        report.recipe.calibration.sequenceLength = calibration?.length ?? 0

        progress(PruneProgress(block: 0, blockCount: model.blockCount, phase: .copying))
        var allocation = Array(
            repeating: PruneResumeState.BlockAllocation(sparsity: recipe.pattern.ratio, outlierRatio: nil),
            count: model.blockCount
        )
        var hidden: [Matrix] = []
        var denseStates: [Int: Matrix] = [:]
        var losses: LossCheckStreams?
        var firstBlock = 0
        if let resume {
            let copy = try Self.time(clock) { try copyUnprunedTensors(model: model, source: source, sink: sink) }
            try restoreOutput()
            report = resume.report
            if report.compute != compute.format {
                logger.notice(
                    "The interrupted run computed in \(report.compute?.rawValue ?? "fp32"), this one in \(compute.format.rawValue)"
                )
                report.compute = compute.format
            }
            report.timings.copy += copy
            report.resumedFromBlock = resume.nextBlock
            allocation = resume.allocation
            hidden = resume.hidden
            denseStates = resume.denseStates
            losses = lossCheck.map {
                LossCheckStreams(
                    windows: $0.windows,
                    calibrationWindows: $0.calibrationWindows,
                    refined: resume.lossStates,
                    base: resume.baseLossStates
                )
            }
            firstBlock = resume.nextBlock
        } else {
            report.timings.copy = try Self.time(clock) {
                try copyUnprunedTensors(model: model, source: source, sink: sink)
            }
            if recipe.layerSparsity == .owl, let calibration {
                report.timings.owl = try Self.time(clock) {
                    allocation = try owlAllocation(
                        model: model,
                        calibration: calibration,
                        progress: progress,
                        isCancelled: isCancelled
                    )
                    .map { PruneResumeState.BlockAllocation(sparsity: $0.sparsity, outlierRatio: $0.outlierRatio) }
                }
            }
            if let calibration {
                report.timings.embedding += try Self.time(clock) {
                    hidden = try calibration.sequences.map { try model.embed(tokens: $0.map(Int.init)) }
                }
            }
            // `output_check = model`: the held-out sequences also follow the dense model.
            if recipe.dsnot?.outputCheck == .model, !hidden.isEmpty {
                for n in StatisticsPlan.checkSequences(of: hidden.count) { denseStates[n] = hidden[n] }
            }
            if let lossCheck {
                report.timings.lossCheck += try Self.time(clock) {
                    let states = try lossCheck.windows.map { try model.embed(tokens: $0.map(Int.init)) }
                    losses = LossCheckStreams(
                        windows: lossCheck.windows,
                        calibrationWindows: lossCheck.calibrationWindows,
                        refined: states,
                        base: recipe.dsnot == nil ? [] : states
                    )
                }
            }
        }
        // Alternatives let the output check and the loss check's base stream switch a block to its base masks.
        let keepAlternatives = (recipe.dsnot?.outputCheck ?? .none) != .none || losses?.base.isEmpty == false
        let plan = StatisticsPlan.pruning(
            recipe: recipe,
            sequences: hidden.count,
            metricSequences: recipe.needsHessian ? 0 : min(errorSequences, hidden.count)
        )
        // Each block's pruned tensors are written while the pipeline goes on; every exit waits for them.
        let writer = BlockWriter(sink: sink)
        defer { writer.waitQuietly() }
        var writerWait = 0.0
        for b in firstBlock..<model.blockCount {
            if isCancelled() { throw PipelineError.cancelled(block: b) }
            var block = try model.loadBlock(b)
            block.setCompute(compute.format)
            let layers = model.prunableLinearLayers(block: b)
            let pattern = recipe.layerSparsity == .owl ? .unstructured(allocation[b].sparsity) : recipe.pattern
            var statistics = BlockStatistics()
            if !denseStates.isEmpty {
                report.timings.outputCheck += Self.time(clock) {
                    let keys = denseStates.keys.sorted()
                    var next = keys.compactMap { denseStates[$0] }
                    let dense = block
                    next.withUnsafeMutableBufferPointer { states in
                        Parallel.forEach(0..<states.count) { k in states[k] = dense.forward(states[k]) }
                    }
                    for (n, state) in zip(keys, next) { denseStates[n] = state }
                }
            }
            if !hidden.isEmpty {
                report.timings.statistics += try Self.time(clock) {
                    statistics = try collectStatistics(
                        block: block,
                        hidden: &hidden,
                        plan: plan,
                        blockCount: model.blockCount,
                        progress: progress,
                        isCancelled: isCancelled
                    )
                }
            }
            progress(PruneProgress(block: b, blockCount: model.blockCount, phase: .pruning))
            var entries: [(report: PruneReport.LayerReport, pruned: Int, basePruned: Int)] = []
            var alternatives: [LayerAlternative] = []
            var routed = ExpertRouting()
            for layer in layers {
                let fallback = routed.record(layer, statistics: statistics, recipe: recipe, calibrated: !hidden.isEmpty)
                let entry = try prune(
                    layer: layer,
                    block: &block,
                    statistics: statistics,
                    pattern: pattern,
                    fallback: fallback,
                    keepAlternative: keepAlternatives
                )
                entries.append((entry.report, entry.pruned, entry.basePruned))
                if let alternative = entry.alternative, !alternative.indices.isEmpty {
                    alternatives.append(alternative)
                }
            }
            var blockReport = PruneReport.BlockReport(
                index: b,
                sparsity: pattern.ratio,
                outlierRatio: allocation[b].outlierRatio
            )
            if let mode = recipe.dsnot?.outputCheck, mode != .none, !alternatives.isEmpty {
                let targets = mode == .model ? denseStates : statistics.denseOutputs
                let samples = targets.keys.sorted().compactMap { n in
                    targets[n].map { (input: hidden[n], dense: $0) }
                }
                let summary = checkOutputs(
                    mode: mode,
                    block: &block,
                    alternatives: &alternatives,
                    samples: samples,
                    clock: clock
                )
                report.timings.outputCheck += summary.seconds
                blockReport.outputCheck = summary
                for alternative in alternatives where !alternative.refinedInBlock {
                    guard let i = layers.firstIndex(where: { $0.name == alternative.name }) else { continue }
                    entries[i].report.revertToBase()
                    entries[i].pruned = entries[i].basePruned
                }
                for i in entries.indices where entries[i].report.dsnot != nil && entries[i].report.dsnot?.kept == nil {
                    entries[i].report.dsnot?.kept = true
                }
            }
            report.timings.lossCheck += losses?.advance(block: &block, alternatives: &alternatives, clock: clock) ?? 0
            statistics.denseOutputs = [:]
            blockReport.experts = routed.reports(layers: layers, entries: entries.map { ($0.report, $0.pruned) })
            report.blocks.append(blockReport)
            // The previous block's write ends before this one's is encoded: one block of tensors at a time.
            writerWait += try writer.drain()
            var tensors: [BlockWriter.Tensor] = []
            for (layer, entry) in zip(layers, entries) {
                report.timings.writing += Self.time(clock) { tensors.append(encoded(layer: layer, block: block)) }
                report.layers.append(entry.report)
                report.timings.base += entry.report.secondsBase
                report.timings.dsnot += entry.report.secondsDsnot
                report.totals.prunableWeights += layer.outFeatures * layer.inFeatures
                report.totals.prunedWeights += entry.pruned
                report.totals.dsnotSwaps += entry.report.dsnot.map { $0.kept == false ? 0 : $0.swaps } ?? 0
                logger.debug(
                    "Pruned layer",
                    metadata: [
                        "layer.name": "\(layer.tensorName)", "prune.sparsity": "\(entry.report.sparsity)",
                        "dsnot.swaps": "\(entry.report.dsnot?.swaps ?? 0)",
                    ]
                )
            }
            writerWait += try writer.submit(tensors)
            tensors = []
            if !hidden.isEmpty && b + 1 < model.blockCount {
                report.timings.propagation += try Self.time(clock) {
                    let pruned = block
                    for chunk in Self.chunks(of: hidden.count) {
                        if isCancelled() { throw PipelineError.cancelled(block: b) }
                        hidden.withUnsafeMutableBufferPointer { h in
                            Parallel.forEach(chunk) { n in h[n] = pruned.forward(h[n]) }
                        }
                        progress(
                            PruneProgress(
                                block: b,
                                blockCount: model.blockCount,
                                phase: .propagation,
                                sequencesDone: chunk.upperBound,
                                sequenceCount: hidden.count
                            )
                        )
                    }
                }
                // bf16 keeps fp32's range, but a state that overflowed must fail the job, not poison its masks.
                if compute.format == .bf16, hidden.contains(where: { !$0.storage.allSatisfy(\.isFinite) }) {
                    throw PipelineError.nonFiniteActivations(block: b, compute: compute.format.rawValue)
                }
            }
            if let onBlockFinished, b + 1 < model.blockCount {
                // A resume point promises the block's tensors reached the sink.
                writerWait += try writer.drain()
                try onBlockFinished(
                    PruneResumeState(
                        nextBlock: b + 1,
                        hidden: hidden,
                        denseStates: denseStates,
                        lossStates: losses?.refined ?? [],
                        baseLossStates: losses?.base ?? [],
                        allocation: allocation,
                        report: report
                    )
                )
            }
        }
        writerWait += try writer.drain()
        report.timings.writing += writer.writingSeconds
        report.timings.writingWait = (report.timings.writingWait ?? 0) + writerWait
        if let losses {
            let summary = try losses.summary(model: model, seconds: report.timings.lossCheck, clock: clock)
            report.timings.lossCheck = summary.seconds
            report.lossCheck = summary
            logger.info(
                "DSnoT loss check",
                metadata: [
                    "loss.refined": "\(summary.refinedLoss)", "loss.base": "\(summary.baseLoss)",
                    "loss.standard_error": "\(summary.standardError)",
                    "loss.windows": "\(summary.windows)", "loss.published": "\(summary.published)",
                ]
            )
        }
        report.timings.total = start.duration(to: clock.now).inSeconds
        return report
    }
}
