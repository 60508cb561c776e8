// SPDX-License-Identifier: Apache-2.0
// SequentialPruner+OWL: OWL's dense pass (every block's outlier ratio before the first is pruned).

extension SequentialPruner {
    /// OWL's per-block sparsities (`OWL.allocate`), from outlier ratios measured on the dense model
    /// as the reference does: the calibration sequences go through the dense blocks one at a time
    /// (one block in fp32 and the hidden states resident, as in the prune pass), each block's forward
    /// also accumulating `scaler_row` of its layers' inputs. Cost: one dense forward pass of the whole
    /// model over the calibration sequences (plus the embedding), before pruning starts.
    func owlAllocation(
        model: any DecoderModel,
        calibration: CalibrationSet,
        progress: (PruneProgress) -> Void,
        isCancelled: () -> Bool
    ) throws -> [(sparsity: Double, outlierRatio: Double?)] {
        var hidden = try calibration.sequences.map { try model.embed(tokens: $0.map(Int.init)) }
        let plan = StatisticsPlan(
            hessian: false,
            metricSequences: 0,
            dsnotSequences: nil,
            dsnotHessian: false,
            keepOutputs: 0..<0,
            propagate: true
        )
        var ratios: [Double] = []
        var sizes: [Double] = []
        for b in 0..<model.blockCount {
            if isCancelled() { throw PipelineError.cancelled(block: b) }
            var block = try model.loadBlock(b)
            block.setCompute(recipe.compute.effective.format)
            let statistics = try collectStatistics(
                block: block,
                hidden: &hidden,
                plan: plan,
                blockCount: model.blockCount,
                progress: progress,
                isCancelled: isCancelled
            )
            var layers: [(weights: Matrix, scalerRow: [Float])] = []
            for layer in model.prunableLinearLayers(block: b) {
                guard let s = statistics.statistics(for: layer.name) else {
                    throw PruningError.missingStatistic(
                        layer: layer.tensorName,
                        statistic: "calibration statistics",
                        method: "owl"
                    )
                }
                layers.append((block.weight(of: layer.name), s.scalerRow))
            }
            ratios.append(OWL.outlierRatio(layers: layers, threshold: recipe.owlThreshold))
            sizes.append(Double(layers.reduce(0) { $0 + $1.weights.storage.count }))
        }
        let sparsities = try OWL.allocate(
            target: recipe.pattern.ratio,
            lambda: recipe.owlLambda,
            ratios: ratios,
            weights: sizes
        )
        return zip(sparsities, ratios).map { ($0, $1) }
    }
}
