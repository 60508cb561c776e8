// SPDX-License-Identifier: Apache-2.0
// SequentialPruner+Steps: the named steps of the block loop (statistics, per-layer pruning, copying).

import DSnoTSupport
import SafeTensors

/// The statistics of one block's linear layers. Layers that read the same activations share an entry.
struct BlockStatistics {
    /// Layer → the layer whose entry it shares (itself when it owns one).
    var owner: [LinearLayerName: LinearLayerName] = [:]
    var statistics: [LinearLayerName: LayerStatistics] = [:]
    /// Gram matrices for the error metric when `statistics` carry no Hessian.
    var metricGram: [LinearLayerName: LayerStatistics] = [:]
    /// DSnoT's statistics when the output check holds sequences out of them (else DSnoT uses `statistics`).
    var dsnotStatistics: [LinearLayerName: LayerStatistics] = [:]
    /// The dense block's outputs of the sequences `StatisticsPlan.keepOutputs` asked for.
    var denseOutputs: [Int: Matrix] = [:]

    func statistics(for name: LinearLayerName) -> LayerStatistics? { owner[name].flatMap { statistics[$0] } }
    func dsnotStatistics(for name: LinearLayerName) -> LayerStatistics? {
        owner[name].flatMap { dsnotStatistics[$0] }
    }
    func metricHessian(for name: LinearLayerName) -> Matrix? {
        owner[name].flatMap { metricGram[$0]?.hessian }
    }
}

/// What a statistics pass accumulates and what it does with the block's outputs.
struct StatisticsPlan {
    /// Whether the statistics include the Hessian.
    var hessian: Bool
    /// The first this many sequences also feed the error metric's Gram matrices.
    var metricSequences: Int
    /// When set, DSnoT gets statistics of only the first this many sequences (the rest are held out
    /// for the output check); `dsnotHessian` says whether they include the Hessian.
    var dsnotSequences: Int?
    var dsnotHessian: Bool
    /// Sequences whose dense block output is kept (`BlockStatistics.denseOutputs`).
    var keepOutputs: Range<Int>
    /// Replace every hidden state with the dense block's output (OWL's dense pass).
    var propagate: Bool

    /// The prune pass: inputs only, unless the output check needs dense outputs.
    static func pruning(recipe: Recipe, sequences: Int, metricSequences: Int) -> StatisticsPlan {
        let mode = recipe.dsnot?.outputCheck ?? .none
        let check = mode != .none
        let heldOut = check ? DSnoT.OutputCheck.heldOutSequences(of: sequences) : 0
        return StatisticsPlan(
            hessian: recipe.needsHessian,
            metricSequences: metricSequences,
            dsnotSequences: heldOut > 0 ? sequences - heldOut : nil,
            dsnotHessian: recipe.dsnot?.accept == .trueError,
            // `model` compares with the dense model's own states (`SequentialPruner.run`), not these.
            keepOutputs: check && mode != .model ? checkSequences(of: sequences) : 0..<0,
            propagate: false
        )
    }

    /// The sequences DSnoT's output check runs on: the held-out ones, or all when none is held out.
    static func checkSequences(of count: Int) -> Range<Int> {
        let heldOut = DSnoT.OutputCheck.heldOutSequences(of: count)
        return heldOut > 0 ? (count - heldOut)..<count : 0..<count
    }
}

extension SequentialPruner {
    /// Dense forward pass of `block` over every sequence, up to the last linear layer's input (the
    /// block's dense output is only computed for the sequences `plan` asks for); each layer's inputs
    /// are accumulated into its statistics.
    ///
    /// The passes of a chunk run concurrently (`Parallel.forEach`); each records what its tap saw,
    /// and the records are accumulated in sequence order afterwards, exactly as a serial pass would.
    /// Sharing: on the first sequence, a layer whose input equals the previous layer's input (the
    /// same activations: q/k/v, gate/up) is mapped to that layer's entry; later sequences accumulate
    /// only into owners. `Array ==` checks buffer identity first, so the comparison is O(1) when the
    /// block passes the same matrix.
    func collectStatistics(
        block: any DecoderBlock,
        hidden: inout [Matrix],
        plan: StatisticsPlan,
        blockCount: Int,
        progress: (PruneProgress) -> Void,
        isCancelled: () -> Bool
    ) throws -> BlockStatistics {
        var result = BlockStatistics()
        for chunk in Self.chunks(of: hidden.count) {
            if isCancelled() { throw PipelineError.cancelled(block: block.index) }
            var taps = [[Tapped]](repeating: [], count: chunk.count)
            var outputs = [Matrix?](repeating: nil, count: chunk.count)
            taps.withUnsafeMutableBufferPointer { taps in
                outputs.withUnsafeMutableBufferPointer { outputs in
                    hidden.withUnsafeMutableBufferPointer { h in
                        Parallel.forEach(chunk) { n in
                            var seen: [Tapped] = []
                            let tap = { (name: LinearLayerName, x: Matrix) in
                                // The per-feature sums are computed here, once per distinct input.
                                let sums = seen.last.flatMap { $0.input == x ? $0.sums : nil } ?? .init(sequence: x)
                                seen.append(Tapped(name: name, input: x, sums: sums))
                            }
                            if plan.propagate {
                                h[n] = block.forward(h[n], tap: tap)
                            } else if plan.keepOutputs.contains(n) {
                                outputs[n - chunk.lowerBound] = block.forward(h[n], tap: tap)
                            } else {
                                block.tapLinearInputs(h[n], tap: tap)
                            }
                            taps[n - chunk.lowerBound] = seen
                        }
                    }
                }
            }
            for (n, output) in zip(chunk, outputs) { if let output { result.denseOutputs[n] = output } }
            // The chunk's sequences per entry, in sequence order; each entry then adds them in one call
            // (its Gram work on all cores).
            var batches: [LinearLayerName: [(sums: LayerStatistics.SequenceSums, input: Matrix)]] = [:]
            var metricBatches = batches
            var dsnotBatches = batches
            for (n, seen) in zip(chunk, taps) {
                var previous: (name: LinearLayerName, input: Matrix)?
                for tapped in seen {
                    let (name, x, sums) = (tapped.name, tapped.input, tapped.sums)
                    if n == 0 {
                        // Empty inputs (a MoE expert that got no token of this sequence) are never taken
                        // for shared ones: two experts' empty inputs of the same width compare equal.
                        if let p = previous, x.rows > 0, p.input == x {
                            result.owner[name] = result.owner[p.name]
                        } else {
                            result.owner[name] = name
                            result.statistics[name] = LayerStatistics(
                                inputFeatures: x.columns,
                                accumulateHessian: plan.hessian
                            )
                            if plan.metricSequences > 0 {
                                result.metricGram[name] = LayerStatistics(
                                    inputFeatures: x.columns,
                                    accumulateHessian: true
                                )
                            }
                            if plan.dsnotSequences != nil {
                                result.dsnotStatistics[name] = LayerStatistics(
                                    inputFeatures: x.columns,
                                    accumulateHessian: plan.dsnotHessian
                                )
                            }
                        }
                        previous = (name, x)
                    }
                    guard result.owner[name] == name else { continue }
                    batches[name, default: []].append((sums, x))
                    if n < plan.metricSequences { metricBatches[name, default: []].append((sums, x)) }
                    if let d = plan.dsnotSequences, n < d { dsnotBatches[name, default: []].append((sums, x)) }
                }
            }
            for (name, batch) in batches { result.statistics[name]?.accumulate(batch) }
            for (name, batch) in metricBatches { result.metricGram[name]?.accumulate(batch) }
            for (name, batch) in dsnotBatches { result.dsnotStatistics[name]?.accumulate(batch) }
            progress(
                PruneProgress(
                    block: block.index,
                    blockCount: blockCount,
                    phase: .statistics,
                    sequencesDone: chunk.upperBound,
                    sequenceCount: hidden.count
                )
            )
        }
        // Every layer of a shared input reads the same Hessian: formed once here, not once per layer.
        for name in result.statistics.keys { result.statistics[name]?.finishHessian() }
        for name in result.metricGram.keys { result.metricGram[name]?.finishHessian() }
        for name in result.dsnotStatistics.keys { result.dsnotStatistics[name]?.finishHessian() }
        return result
    }

    /// One tap event of a statistics pass: the layer, its input, and that input's per-feature sums.
    struct Tapped {
        var name: LinearLayerName
        var input: Matrix
        var sums: LayerStatistics.SequenceSums
    }

    /// The calibration sequences in chunks of one per core (`Parallel.workers`): progress and
    /// cancellation are checked between chunks.
    static func chunks(of count: Int) -> [Range<Int>] {
        let width = Parallel.workers
        return stride(from: 0, to: count, by: width).map { $0..<min(count, $0 + width) }
    }

    /// Prunes one linear layer of `block` and puts the (dtype-rounded) sparse weight back into the
    /// block; `encoded(layer:block:)` hands it to the writer once the block's output check has decided.
    /// Returns, when DSnoT changed the layer and `keepAlternative` (an output or loss check will switch
    /// the block to its base masks), the base alternative.
    /// - Parameter fallback: prune with `ExpertRouting.fallbackRecipe` (a MoE expert with too few tokens).
    func prune(
        layer: LinearLayerInfo,
        block: inout any DecoderBlock,
        statistics: BlockStatistics,
        pattern: SparsityPattern,
        fallback: Bool = false,
        keepAlternative: Bool
    ) throws -> (report: PruneReport.LayerReport, pruned: Int, basePruned: Int, alternative: LayerAlternative?) {
        let recipe = fallback ? ExpertRouting.fallbackRecipe(self.recipe) : self.recipe
        let dense = block.weight(of: layer.name)
        let result = try LayerPruner.prune(
            weights: dense,
            statistics: statistics.statistics(for: layer.name),
            recipe: recipe,
            layer: layer.tensorName,
            metricHessian: statistics.metricHessian(for: layer.name),
            pattern: pattern,
            dsnotStatistics: statistics.dsnotStatistics(for: layer.name)
        )
        // SparseGPT's updated weights are rounded to the checkpoint dtype; the next block must see
        // exactly what the output holds. Masked dense weights are exact already.
        let sparse = Self.rounded(result.sparseWeights(dense: dense), dtype: layer.dtype, exact: result.weights == nil)
        var alternative: LayerAlternative? = nil
        if keepAlternative, result.metrics.dsnot != nil {
            let base = Self.rounded(
                result.baseSparseWeights(dense: dense),
                dtype: layer.dtype,
                exact: result.baseWeights == nil
            )
            alternative = LayerAlternative(name: layer.name, between: sparse, and: base)
        }
        block.setWeight(sparse, of: layer.name)
        let m = result.metrics
        let report = PruneReport.LayerReport(
            name: layer.tensorName,
            block: block.index,
            shape: [layer.outFeatures, layer.inFeatures],
            dtype: layer.dtype.rawValue,
            sparsity: m.achievedSparsity,
            baseSparsity: m.baseSparsity,
            prunedPerRowMin: m.prunedPerRowMin,
            prunedPerRowMax: m.prunedPerRowMax,
            dsnot: m.dsnot.map {
                PruneReport.DSnoTSummary(
                    swaps: $0.totalSwaps,
                    cycles: $0.cycles,
                    errorBefore: $0.errorBefore,
                    errorAfter: $0.errorAfter,
                    rowsRejected: $0.rowsRejected
                )
            },
            dsnotSkipped: m.skippedByDSnoT,
            baseRelativeError: m.baseRelativeError,
            finalRelativeError: m.finalRelativeError,
            errorRowsSampled: m.errorRowsSampled,
            dampening: m.dampeningUsed,
            secondsBase: result.baseSeconds,
            secondsDsnot: result.dsnotSeconds
        )
        return (report, result.mask.prunedCount, result.baseMask.prunedCount, alternative)
    }

    /// `weights` rounded through the checkpoint dtype (unchanged when `exact` or fp32).
    static func rounded(_ weights: Matrix, dtype: DType, exact: Bool) -> Matrix {
        guard !exact, dtype != .f32 else { return weights }
        var out = weights
        let bytes = weights.storage.withUnsafeBufferPointer { FloatConversion.encode($0, as: dtype) }
        bytes.withUnsafeBytes { raw in
            out.storage.withUnsafeMutableBufferPointer { FloatConversion.convert(raw, dtype: dtype, into: $0) }
        }
        return out
    }

    /// A pruned layer's weight as the block holds it, encoded in the checkpoint dtype for the writer.
    func encoded(layer: LinearLayerInfo, block: any DecoderBlock) -> BlockWriter.Tensor {
        let sparse = block.weight(of: layer.name)
        return BlockWriter.Tensor(
            name: layer.tensorName,
            dtype: layer.dtype,
            shape: [layer.outFeatures, layer.inFeatures],
            bytes: sparse.storage.withUnsafeBufferPointer { FloatConversion.encode($0, as: layer.dtype) }
        )
    }

    /// Streams every tensor that is not a prunable linear weight from the input to the sink, unchanged.
    func copyUnprunedTensors(model: any DecoderModel, source: any TensorSource, sink: any PrunedTensorSink) throws {
        var prunable = Set<String>()
        for b in 0..<model.blockCount {
            for layer in model.prunableLinearLayers(block: b) {
                guard source.tensorInfo(named: layer.tensorName) != nil else {
                    throw PipelineError.missingTensor(name: layer.tensorName)
                }
                prunable.insert(layer.tensorName)
            }
        }
        for name in source.tensorNames where !prunable.contains(name) {
            guard let info = source.tensorInfo(named: name) else { continue }
            try source.withTensorBytes(named: name) { raw in
                try sink.write(name: name, dtype: info.dtype, shape: info.shape, bytes: raw, pruned: false)
            }
            source.releasePages(named: name)
        }
    }

    static func summary(_ calibration: CalibrationSet, errorSequences: Int) -> PruneReport.CalibrationSummary {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(calibration.count * calibration.length * 4)
        for window in calibration.sequences {
            for id in window { withUnsafeBytes(of: id.littleEndian) { bytes.append(contentsOf: $0) } }
        }
        return PruneReport.CalibrationSummary(
            sequences: calibration.count,
            sequenceLength: calibration.length,
            fingerprint: SHA256.hex(bytes),
            errorSequences: errorSequences
        )
    }

    static func time(_ clock: ContinuousClock, _ body: () throws -> Void) rethrows -> Double {
        let start = clock.now
        try body()
        return start.duration(to: clock.now).inSeconds
    }
}
