// SPDX-License-Identifier: Apache-2.0
// SequentialPruner+LossCheck: DSnoT's model-level loss check (`DSnoT.Settings.lossCheck`). Held-out
// windows follow the pruned blocks twice, as published and with every block's base masks; after the last
// block both are scored by next-token loss, and the caller publishes the base recipe's model when
// refining did not lower it (docs/algorithms.md "DSnoT profiles").

import DSnoTSupport

/// The loss check's held-out windows and their hidden states after the blocks pruned so far.
///
/// The two variants of a block differ only in the entries `LayerAlternative` holds, so the base stream
/// runs the very block the pipeline built, switched to its base masks and back: the base-masked model
/// it scores is bit for bit the one the same run would have published without DSnoT's refinement.
struct LossCheckStreams {
    var windows: [[Int32]]
    /// The windows are the last calibration sequences (no separate windows were given).
    var calibrationWindows: Bool
    /// States through the blocks as published (refined masks where the block checks kept them).
    var refined: [Matrix]
    /// States through the same blocks with every layer's base masks; empty when the recipe has no DSnoT
    /// (a fallback run scores only the model it publishes).
    var base: [Matrix]

    /// Runs `block`, which holds the variants to publish, on both streams; `alternatives` switch it to
    /// the base masks for the base stream and back.
    /// - Returns: the seconds it took.
    mutating func advance(
        block: inout any DecoderBlock,
        alternatives: inout [LayerAlternative],
        clock: ContinuousClock
    ) -> Double {
        let start = clock.now
        block.forward(sequences: &refined)
        if !base.isEmpty {
            let switched = alternatives.indices.filter { alternatives[$0].refinedInBlock }
            for i in switched { alternatives[i].toggle(in: &block) }
            block.forward(sequences: &base)
            for i in switched { alternatives[i].toggle(in: &block) }
        }
        return start.duration(to: clock.now).inSeconds
    }

    /// Scores both streams after the last block: the mean over windows of each window's mean next-token
    /// loss (D10's protocol), one window's logits at a time, and the paired difference's standard error.
    /// - Parameter seconds: the time the blocks' `advance` took, reported with the scoring's.
    func summary(model: any DecoderModel, seconds: Double, clock: ContinuousClock) throws
        -> PruneReport.LossCheckSummary
    {
        let start = clock.now
        func losses(_ states: [Matrix]) throws -> [Double] {
            try zip(states, windows).map { state, window in
                Perplexity.meanNegativeLogLikelihood(logits: try model.finalLogits(state), tokens: window.map(Int.init))
            }
        }
        let refinedLosses = try losses(refined)
        let compared = PruneReport.LossCheckSummary.compare(
            refined: refinedLosses,
            base: base.isEmpty ? refinedLosses : try losses(base)
        )
        return PruneReport.LossCheckSummary(
            windows: windows.count,
            sequenceLength: windows.first?.count ?? 0,
            calibrationWindows: calibrationWindows,
            refinedLoss: compared.refined,
            baseLoss: compared.base,
            standardError: compared.standardError,
            seconds: seconds + start.duration(to: clock.now).inSeconds
        )
    }
}

extension SequentialPruner {
    /// How many windows the loss check scores for `count` calibration sequences: as many as the block
    /// check holds out (a quarter, at most 8), and 1 for a single sequence.
    public static func lossCheckWindowCount(calibrationSequences count: Int) -> Int {
        StatisticsPlan.checkSequences(of: count).count
    }

    /// The loss check's windows for this run: `lossWindows` when given (a fallback run scores its model
    /// on them too), else the last calibration sequences when the recipe asks for the check; `nil` when
    /// no check runs.
    /// - Throws: `PipelineError.invalidLossWindows` for windows the model cannot score.
    func lossCheckWindows(
        model: any DecoderModel,
        calibration: CalibrationSet?,
        lossWindows: CalibrationSet?
    ) throws -> (windows: [[Int32]], calibrationWindows: Bool)? {
        guard let calibration else { return nil }
        let chosen: (windows: [[Int32]], calibrationWindows: Bool)
        if let lossWindows {
            chosen = (lossWindows.sequences, false)
        } else if recipe.dsnot?.lossCheck == true {
            chosen = (StatisticsPlan.checkSequences(of: calibration.count).map { calibration.sequences[$0] }, true)
        } else {
            return nil
        }
        let length = chosen.windows.first?.count ?? 0
        guard length >= 2 else {
            throw PipelineError.invalidLossWindows(reason: "windows hold \(length) token(s); at least 2 are needed")
        }
        guard length <= model.maxPositions else {
            throw PipelineError.invalidLossWindows(
                reason: "windows hold \(length) tokens, more than the model's \(model.maxPositions) positions"
            )
        }
        for (i, window) in chosen.windows.enumerated() {
            if let id = window.first(where: { $0 < 0 || Int($0) >= model.vocabularySize }) {
                throw PipelineError.invalidLossWindows(
                    reason: "window \(i) holds token id \(id), outside the vocabulary 0..<\(model.vocabularySize)"
                )
            }
        }
        return chosen
    }
}

extension Recipe {
    /// The recipe without DSnoT, with DSnoT's base pruner: what a loss check that preferred the base
    /// masks publishes instead. Magnitude keeps the per-row scope it has under DSnoT (`LayerPruner`).
    public var withoutDSnoT: Recipe {
        var recipe = self
        if dsnot != nil, method == .magnitude { recipe.magnitudeScope = .row }
        recipe.dsnot = nil
        return recipe
    }
}

extension PruneReport {
    /// The report of a job whose loss check preferred the base masks (`lossCheck.prefersBase`), after
    /// `fallback`, the run of `recipe.withoutDSnoT` that it then published: `fallback`'s layers, blocks
    /// and totals (what the output holds), the requested recipe and its hash (the job's identity), and
    /// the loss check with the published model's own loss and the discarded run's time added.
    public func publishingBase(_ fallback: PruneReport) -> PruneReport {
        var merged = fallback
        merged.recipe = recipe
        merged.recipeHash = recipeHash
        merged.lossCheck = lossCheck
        merged.lossCheck?.publishedLoss = fallback.lossCheck?.refinedLoss
        merged.lossCheck?.secondsDiscardedRun = timings.total
        merged.resumedFromBlock = resumedFromBlock  // the refined run's; the fallback always starts at block 0
        merged.timings.lossCheck += timings.lossCheck
        merged.timings.total += timings.total
        return merged
    }
}
