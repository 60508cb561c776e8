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

    func statistics(for name: LinearLayerName) -> LayerStatistics? { owner[name].flatMap { statistics[$0] } }
    func metricHessian(for name: LinearLayerName) -> Matrix? {
        owner[name].flatMap { metricGram[$0]?.hessian }
    }
}

extension SequentialPruner {
    /// Dense forward pass of `block` over every sequence, up to the last linear layer's input (the
    /// block's dense output is never used); each layer's inputs are accumulated into its statistics.
    ///
    /// The passes of a chunk run concurrently (`ParallelSequences`); each records what its tap saw,
    /// and the records are accumulated in sequence order afterwards, exactly as a serial pass would.
    /// Sharing: on the first sequence, a layer whose input equals the previous layer's input (the
    /// same activations: q/k/v, gate/up) is mapped to that layer's entry; later sequences accumulate
    /// only into owners. `Array ==` checks buffer identity first, so the comparison is O(1) when the
    /// block passes the same matrix.
    func collectStatistics(
        block: any DecoderBlock,
        hidden: [Matrix],
        blockCount: Int,
        progress: (PruneProgress) -> Void,
        isCancelled: () -> Bool
    ) throws -> BlockStatistics {
        var result = BlockStatistics()
        let metricCount = recipe.needsHessian ? 0 : min(errorSequences, hidden.count)
        for chunk in Self.chunks(of: hidden.count) {
            if isCancelled() { throw PipelineError.cancelled(block: block.index) }
            var taps = [[Tapped]](repeating: [], count: chunk.count)
            taps.withUnsafeMutableBufferPointer { taps in
                nonisolated(unsafe) let taps = taps
                ParallelSequences.forEach(chunk) { n in
                    var seen: [Tapped] = []
                    block.tapLinearInputs(hidden[n]) { name, x in
                        // The per-feature sums are computed here, once per distinct input.
                        let sums = seen.last.flatMap { $0.input == x ? $0.sums : nil } ?? .init(sequence: x)
                        seen.append(Tapped(name: name, input: x, sums: sums))
                    }
                    taps[n - chunk.lowerBound] = seen
                }
            }
            for (n, seen) in zip(chunk, taps) {
                var previous: (name: LinearLayerName, input: Matrix)?
                for tapped in seen {
                    let (name, x, sums) = (tapped.name, tapped.input, tapped.sums)
                    if n == 0 {
                        if let p = previous, p.input == x {
                            result.owner[name] = result.owner[p.name]
                        } else {
                            result.owner[name] = name
                            result.statistics[name] = LayerStatistics(
                                inputFeatures: x.columns,
                                accumulateHessian: recipe.needsHessian
                            )
                            if metricCount > 0 {
                                result.metricGram[name] = LayerStatistics(
                                    inputFeatures: x.columns,
                                    accumulateHessian: true
                                )
                            }
                        }
                        previous = (name, x)
                    }
                    guard result.owner[name] == name else { continue }
                    result.statistics[name]?.accumulate(sums, of: x)
                    if n < metricCount { result.metricGram[name]?.accumulate(sums, of: x) }
                }
            }
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
        return result
    }

    /// One tap event of a statistics pass: the layer, its input, and that input's per-feature sums.
    struct Tapped {
        var name: LinearLayerName
        var input: Matrix
        var sums: LayerStatistics.SequenceSums
    }

    /// The calibration sequences in chunks of one per core (`ParallelSequences.width`): progress and
    /// cancellation are checked between chunks.
    static func chunks(of count: Int) -> [Range<Int>] {
        let width = ParallelSequences.width
        return stride(from: 0, to: count, by: width).map { $0..<min(count, $0 + width) }
    }

    /// Prunes one linear layer of `block`, writes it to the sink in the checkpoint dtype, and puts
    /// the (dtype-rounded) sparse weight back into the block for the propagation pass.
    func prune(
        layer: LinearLayerInfo,
        block: inout any DecoderBlock,
        statistics: BlockStatistics,
        sink: any PrunedTensorSink,
        clock: ContinuousClock
    ) throws -> (report: PruneReport.LayerReport, pruned: Int, writeSeconds: Double) {
        let dense = block.weight(of: layer.name)
        let result = try LayerPruner.prune(
            weights: dense,
            statistics: statistics.statistics(for: layer.name),
            recipe: recipe,
            layer: layer.tensorName,
            metricHessian: statistics.metricHessian(for: layer.name)
        )
        var sparse = result.sparseWeights(dense: dense)
        let writeStart = clock.now
        let bytes = sparse.storage.withUnsafeBufferPointer { FloatConversion.encode($0, as: layer.dtype) }
        try bytes.withUnsafeBytes { raw in
            try sink.write(
                name: layer.tensorName,
                dtype: layer.dtype,
                shape: [layer.outFeatures, layer.inFeatures],
                bytes: raw,
                pruned: true
            )
        }
        // SparseGPT's updated weights are rounded to the checkpoint dtype; the next block must see
        // exactly what the output holds. Masked dense weights are exact already.
        if result.weights != nil, layer.dtype != .f32 {
            bytes.withUnsafeBytes { raw in
                sparse.storage.withUnsafeMutableBufferPointer {
                    FloatConversion.convert(raw, dtype: layer.dtype, into: $0)
                }
            }
        }
        let writeSeconds = Self.seconds(writeStart.duration(to: clock.now))
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
        return (report, result.mask.prunedCount, writeSeconds)
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
        return seconds(start.duration(to: clock.now))
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}
