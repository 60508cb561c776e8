// SPDX-License-Identifier: Apache-2.0
// DSnoT's loss check end to end (PruneJob on a tiny LLaMA with a real tokenizer and text): the losses it
// reports are those of the models it names, recomputed from the published files alone; it publishes the
// refined model byte for byte as a run without the check would, or else the base recipe's own output;
// and a tie (the block check kept no refined mask) publishes the refined run, the same model.

import DSnoTCore
import DSnoTPipeline
import DSnoTTestSupport
import Foundation
import Logging
import SafeTensors
import Testing

@Suite struct LossCheckTests {
    let logger = Logger(label: "test")

    /// Reference cycles with every layer refined and the loss check on (no block check): on the tiny
    /// random LLaMA this sometimes lowers the held-out loss and sometimes raises it.
    static let refineAll = DSnoT.Settings(skip: [], lossCheck: true)

    /// A DSnoT job on the tiny LLaMA with dense output.
    static func options(
        _ method: Recipe.Method,
        sparsity: Double,
        seed: UInt64,
        dsnot: DSnoT.Settings = refineAll
    ) -> PruneJobOptions {
        let recipe = Recipe(
            method: method,
            pattern: .unstructured(sparsity),
            dsnot: dsnot,
            calibration: .init(source: .text, path: TinyCheckpoint.text, sequences: 8, sequenceLength: 64, seed: seed)
        )
        return PruneJobOptions(recipe: recipe, format: .dense)
    }

    /// The loss check's windows of `options`, drawn here independently: the 2 windows after the 8
    /// calibration windows of the same seed.
    static func lossWindows(_ options: PruneJobOptions) throws -> CalibrationSet {
        let c = options.recipe.calibration
        let text = try String(contentsOfFile: TinyCheckpoint.text, encoding: .utf8)
        return try CalibrationSet(
            tokens: try Tokenizer(contentsOf: TinyCheckpoint.tokenizer).encode(text),
            count: 2,
            length: c.sequenceLength,
            seed: c.seed,
            skipping: c.sequences
        )
    }

    /// Mean over `windows` of each window's mean next-token loss (D10) of the model published in
    /// `directory`, read back from its files (the same kernels as the pipeline's, so bit for bit).
    static func loss(of directory: String, on windows: CalibrationSet) throws -> Double {
        let model = try ModelRegistry.load(directory: directory)
        var total = 0.0
        for window in windows.sequences {
            let tokens = window.map(Int.init)
            total += Perplexity.meanNegativeLogLikelihood(logits: try model.logits(tokens: tokens), tokens: tokens)
        }
        return total / Double(windows.count)
    }

    static func weights(_ directory: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: directory + "/model.safetensors"))
    }

    func prune(_ options: PruneJobOptions, input: String, into directory: String) throws -> PruneReport {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return try PruneJob(input: input, options: options).run(into: directory, logger: logger).report
    }

    /// These cases go both ways on this random model (found by a sweep; the computation is deterministic),
    /// and the guarded one is a tie (its block check reverted every block). Whichever way, the output is
    /// exactly a run without the check (refined) or the base recipe's run (base), and every loss the
    /// report gives for a published model is that model's loss recomputed from the output.
    @Test func thePublishedModelIsTheBetterOneAndTheReportSaysWhich() throws {
        let root = try TemporaryDirectory("dsnot-loss").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try TinyCheckpoint.write(to: root + "/in", dtype: .f32)
        var decisions: Set<String> = []
        var ties = 0
        let cases: [(Double, UInt64, DSnoT.Settings)] = [
            (0.3, 2, Self.refineAll), (0.3, 3, Self.refineAll), (0.5, 0, Self.refineAll), (0.7, 0, Self.refineAll),
            (0.5, 1, DSnoT.Profile.guarded.settings),
        ]
        for (i, (sparsity, seed, dsnot)) in cases.enumerated() {
            let options = Self.options(.wanda, sparsity: sparsity, seed: seed, dsnot: dsnot)
            let out = root + "/checked-\(i)"
            let report = try prune(options, input: root + "/in", into: out)
            let check = try #require(report.lossCheck)
            #expect(check.windows == 2 && check.sequenceLength == 64 && !check.calibrationWindows)
            #expect(check.refinedLoss.isFinite && check.baseLoss.isFinite && check.seconds > 0)
            #expect(check.standardError >= 0)
            #expect(
                check.prefersBase
                    == !(check.refinedLoss + check.standardError < check.baseLoss
                    || check.refinedLoss == check.baseLoss)
            )
            decisions.insert(check.published)
            #expect(report.recipeHash == options.recipe.stableHash && report.recipe.dsnot == options.recipe.dsnot)
            let published = try Self.loss(of: out, on: Self.lossWindows(options))
            if check.prefersBase {
                let base = try prune(
                    PruneJobOptions(recipe: options.recipe.withoutDSnoT, format: .dense),
                    input: root + "/in",
                    into: root + "/base-\(i)"
                )
                #expect(try Self.weights(out) == Self.weights(root + "/base-\(i)"), "case \(i)")
                #expect(check.publishedLoss == published)
                #expect(report.totals == base.totals && report.totals.dsnotSwaps == 0)
                #expect(report.layers.map(\.sparsity) == base.layers.map(\.sparsity))
                // The job's time counts the discarded refined run and the published base run (compared
                // with each other, not with the separate base run above, whose time depends on the load).
                let discarded = try #require(check.secondsDiscardedRun)
                #expect(discarded > 0 && report.timings.total > discarded)
            } else {
                var withoutCheck = dsnot
                withoutCheck.lossCheck = false
                let unchecked = try prune(
                    Self.options(.wanda, sparsity: sparsity, seed: seed, dsnot: withoutCheck),
                    input: root + "/in",
                    into: root + "/unchecked-\(i)"
                )
                #expect(try Self.weights(out) == Self.weights(root + "/unchecked-\(i)"), "case \(i)")
                if check.refinedLoss == check.baseLoss { ties += 1 }
                #expect(check.refinedLoss == published && check.publishedLoss == nil)
                #expect(report.totals == unchecked.totals && unchecked.lossCheck == nil)
            }
        }
        #expect(decisions == [PruneReport.LossCheckSummary.base, PruneReport.LossCheckSummary.refined])
        #expect(ties == 1)
    }

    /// Magnitude masks do not depend on the inputs, so the base-masked model the check scores is exactly
    /// the base recipe's own model (per-row magnitude): its reported loss is that model's loss.
    @Test func theBaseLossIsTheBaseRecipesOwnLossAfterMagnitude() throws {
        let root = try TemporaryDirectory("dsnot-loss").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try TinyCheckpoint.write(to: root + "/in", dtype: .f32)
        let options = Self.options(.magnitude, sparsity: 0.6, seed: 5)
        let report = try prune(options, input: root + "/in", into: root + "/checked")
        let check = try #require(report.lossCheck)
        let baseOptions = PruneJobOptions(recipe: options.recipe.withoutDSnoT, format: .dense)
        #expect(baseOptions.recipe.magnitudeScope == .row && baseOptions.recipe.dsnot == nil)
        _ = try prune(baseOptions, input: root + "/in", into: root + "/base")
        let windows = try Self.lossWindows(options)
        #expect(check.baseLoss == (try Self.loss(of: root + "/base", on: windows)))
        let published = try Self.loss(of: root + "/checked", on: windows)
        #expect((check.prefersBase ? check.publishedLoss : check.refinedLoss) == published)
        if check.prefersBase { #expect(check.publishedLoss == check.baseLoss) }
    }
}
