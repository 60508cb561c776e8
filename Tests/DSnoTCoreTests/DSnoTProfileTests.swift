// SPDX-License-Identifier: Apache-2.0
// DSnoT profile tests: presets and decoding, hash stability of the reference profile, and the
// block-output check end to end (what it keeps is what reproduces the dense block output better).

import DSnoTCore
import Foundation
import Logging
import SafeTensors
import Testing

@Suite struct DSnoTProfileTests {
    @Test func profilesAreNamedPresets() {
        #expect(DSnoT.Profile.reference.settings == DSnoT.Settings.reference)
        #expect(DSnoT.Profile.reference.settings(after: .sparsegpt) == DSnoT.Settings.afterSparseGPT)
        #expect(DSnoT.Profile.reference.settings(after: .wanda) == DSnoT.Settings.reference)
        let guarded = DSnoT.Profile.guarded.settings
        #expect(guarded.maxCycles == .scaled && guarded.skip.isEmpty && guarded.outputCheck == .model)
        #expect(guarded.lossCheck && !DSnoT.Settings.reference.lossCheck && !DSnoT.Settings.afterSparseGPT.lossCheck)
        #expect(DSnoT.Profile.guarded.settings(after: .sparsegpt).accept == .trueError)
        #expect(DSnoT.Profile.default == .guarded)
        // `dsnot = true` after each method: guarded leaves SparseGPT's masks alone, the reference does not.
        for method in Recipe.Method.allCases {
            #expect(
                DSnoT.Profile.reference.defaultSettings(after: method)
                    == DSnoT.Profile.reference.settings(after: method)
            )
            #expect(
                DSnoT.Profile.guarded.defaultSettings(after: method)
                    == (method == .sparsegpt ? nil : DSnoT.Profile.guarded.settings(after: method))
            )
        }
    }

    @Test func aProfileFillsInTheKeysARecipeDoesNotName() throws {
        func decode(_ dsnot: String, method: String = "wanda") throws -> DSnoT.Settings? {
            let json = #"{"method":"\#(method)","pattern":{"type":"unstructured","ratio":0.5},"dsnot":\#(dsnot)}"#
            return try JSONDecoder().decode(Recipe.self, from: Data(json.utf8)).dsnot
        }
        #expect(try decode(#"{"profile":"reference"}"#) == .reference)
        #expect(try decode("{}") == DSnoT.Profile.default.settings)
        var tenCycles = DSnoT.Settings.reference
        tenCycles.maxCycles = .fixed(10)
        #expect(try decode(#"{"profile":"reference","max_cycles":10}"#) == tenCycles)
        // After SparseGPT an absent `accept` is D9's true-error; a named one stays.
        #expect(try decode(#"{"profile":"reference"}"#, method: "sparsegpt") == .afterSparseGPT)
        #expect(try decode(#"{"profile":"reference","accept":"none"}"#, method: "sparsegpt") == .reference)
        #expect(throws: DecodingError.self) { _ = try decode(#"{"profile":"best"}"#) }
        #expect(throws: DecodingError.self) { _ = try decode(#"{"output_check":"rows"}"#) }
        #expect(throws: DecodingError.self) { _ = try decode(#"{"loss_check":"yes"}"#) }
        var checkedReference = DSnoT.Settings.reference
        checkedReference.lossCheck = true
        #expect(try decode(#"{"profile":"reference","loss_check":true}"#) == checkedReference)
        #expect(try decode(#"{"loss_check":false}"#)?.lossCheck == false)
        // Written settings read back the same, whatever the default profile.
        for settings in [DSnoT.Settings.reference, DSnoT.Profile.guarded.settings] {
            var recipe = Recipe(method: .wanda, pattern: .unstructured(0.5), dsnot: settings)
            recipe.calibration.path = "c.txt"
            #expect(try JSONDecoder().decode(Recipe.self, from: try JSONEncoder().encode(recipe)) == recipe)
        }
    }

    @Test func theReferenceProfileKeepsItsHashAndTheCheckChangesIt() {
        let reference = Recipe(method: .wanda, pattern: .unstructured(0.5), dsnot: .reference)
        #expect(!reference.canonicalJSON.contains("output_check"))
        // Pinned before profiles existed (the canonical form of the reference settings is unchanged).
        #expect(
            reference.canonicalJSON.contains(
                #""dsnot":{"accept":"none","max_cycles":50,"same_sign":false,"skip":["mlp"],"update_threshold":0.1,"variance_power":1.0}"#
            )
        )
        var checked = reference
        checked.dsnot?.outputCheck = .block
        #expect(checked.canonicalJSON.contains(#""output_check":"block""#))
        #expect(checked.stableHash != reference.stableHash)
        // The loss check, likewise: absent from the reference's canonical form, present when on.
        #expect(!reference.canonicalJSON.contains("loss_check"))
        var lossChecked = reference
        lossChecked.dsnot?.lossCheck = true
        #expect(lossChecked.canonicalJSON.contains(#""loss_check":true"#))
        #expect(lossChecked.stableHash != reference.stableHash)
    }

    /// The refined model is published only when it beats the base by more than one standard error of the
    /// paired per-window difference, or when both are the same model.
    @Test func theLossCheckPublishesTheRefinedModelOnlyWhenClearlyBetter() {
        typealias Summary = PruneReport.LossCheckSummary
        func decide(_ refined: [Double], _ base: [Double]) -> Summary {
            let c = Summary.compare(refined: refined, base: base)
            return Summary(
                windows: refined.count,
                sequenceLength: 8,
                calibrationWindows: false,
                refinedLoss: c.refined,
                baseLoss: c.base,
                standardError: c.standardError,
                seconds: 0
            )
        }
        let clear = decide([1.0, 1.1, 0.9, 1.0], [1.1, 1.2, 1.0, 1.1])
        #expect(clear.published == "refined" && clear.standardError < 1e-12)
        let noisy = decide([1.00, 1.10, 0.90, 1.02], [1.05, 1.00, 1.00, 1.00])  // mean −0.0075, se ≈ 0.0435
        #expect(noisy.published == "base" && noisy.refinedLoss < noisy.baseLoss && noisy.prefersBase)
        #expect(abs(noisy.standardError - 0.043469) < 1e-5)
        #expect(decide([1.0, 1.1], [0.9, 1.0]).published == "base")
        #expect(decide([1.0, 1.1], [1.0, 1.1]).published == "refined")  // the same model: no fallback
        #expect(decide([1.0], [1.5]).published == "refined" && decide([1.0], [1.5]).standardError == 0)
    }

    /// Loss windows the model cannot score are refused before any work, naming what is wrong.
    @Test func lossWindowsTheModelCannotScoreAreRefused() throws {
        let directory = GoldenFixture.root.appendingPathComponent("block/model").path
        let checkpoint = try Checkpoint(directory: directory)
        let model = try ModelRegistry.load(directory: directory)
        let calibration = try CalibrationSet.load(tokenFile: ModelFixtures.path("golden-block", "calib.safetensors"))
        var window = calibration.sequences[0]
        window[1] = Int32(model.vocabularySize)
        let windows = try CalibrationSet(sequences: [calibration.sequences[1], window])
        let recipe = Recipe(method: .wanda, pattern: .unstructured(0.6), dsnot: DSnoT.Profile.guarded.settings)
        let sink = CapturingSink()
        func run(_ lossWindows: CalibrationSet) throws {
            _ = try SequentialPruner(recipe: recipe).run(
                model: model,
                source: checkpoint,
                calibration: calibration,
                sink: sink,
                logger: Logger(label: "test"),
                lossWindows: lossWindows
            )
        }
        #expect(
            throws: PipelineError.invalidLossWindows(
                reason:
                    "window 1 holds token id \(model.vocabularySize), outside the vocabulary 0..<\(model.vocabularySize)"
            )
        ) { try run(windows) }
        #expect(throws: PipelineError.invalidLossWindows(reason: "windows hold 1 token(s); at least 2 are needed")) {
            try run(try CalibrationSet(sequences: [[1], [2]]))
        }
        #expect(sink.tensors.isEmpty)
    }

    /// Without windows of its own (a token file), the check scores the calibration sequences the block
    /// check holds out, and the report says so.
    @Test func withATokenFileTheCheckScoresTheHeldOutSequences() throws {
        let directory = GoldenFixture.root.appendingPathComponent("block/model").path
        let checkpoint = try Checkpoint(directory: directory)
        let model = try ModelRegistry.load(directory: directory)
        let calibration = try CalibrationSet.load(tokenFile: ModelFixtures.path("golden-block", "calib.safetensors"))
        var settings = DSnoT.Profile.guarded.settings
        settings.maxCycles = .fixed(10)
        let report = try SequentialPruner(recipe: Recipe(method: .wanda, pattern: .unstructured(0.6), dsnot: settings))
            .run(
                model: model,
                source: checkpoint,
                calibration: calibration,
                sink: CapturingSink(),
                logger: Logger(label: "test")
            )
        let check = try #require(report.lossCheck)
        #expect(
            check.calibrationWindows
                && check.windows == SequentialPruner.lossCheckWindowCount(calibrationSequences: calibration.count)
        )
        #expect(check.sequenceLength == calibration.length && check.refinedLoss.isFinite && check.baseLoss.isFinite)
        #expect(report.timings.lossCheck > 0 && report.timings.lossCheck == check.seconds)
    }

    /// Guarded DSnoT on the two-block golden model: every block with refined layers ran the check on
    /// its held-out sequences, kept what had the lower output error, and the output holds exactly the
    /// kept masks (reverted layers are the Wanda masks, kept ones differ from them).
    @Test(arguments: [DSnoT.OutputCheck.block, .layer, .model])
    func theOutputCheckKeepsWhatReproducesTheDenseBlockBetter(_ mode: DSnoT.OutputCheck) throws {
        let directory = GoldenFixture.root.appendingPathComponent("block/model").path
        let checkpoint = try Checkpoint(directory: directory)
        let model = try ModelRegistry.load(directory: directory)
        let calibration = try CalibrationSet.load(tokenFile: ModelFixtures.path("golden-block", "calib.safetensors"))
        var settings = DSnoT.Profile.guarded.settings
        settings.outputCheck = mode
        settings.maxCycles = .fixed(10)
        let recipe = Recipe(method: .wanda, pattern: .unstructured(0.6), dsnot: settings)
        let sink = CapturingSink()
        let report = try SequentialPruner(recipe: recipe).run(
            model: model,
            source: checkpoint,
            calibration: calibration,
            sink: sink,
            logger: Logger(label: "test")
        )
        let base = CapturingSink()
        _ = try SequentialPruner(recipe: Recipe(method: .wanda, pattern: .unstructured(0.6))).run(
            model: model,
            source: checkpoint,
            calibration: calibration,
            sink: base,
            logger: Logger(label: "test")
        )
        #expect(report.blocks.count == 2)
        let heldOut = DSnoT.OutputCheck.heldOutSequences(of: calibration.count)
        for block in report.blocks {
            let check = try #require(block.outputCheck)
            #expect(check.mode == mode.rawValue)
            #expect(check.sequences == (heldOut > 0 ? heldOut : calibration.count))
            #expect(check.keptError <= check.baseError)
            if mode != .layer { #expect(check.keptError == min(check.baseError, check.refinedError)) }
            #expect(check.forwards >= 2 * check.sequences)
            let layers = report.layers.filter { $0.block == block.index }
            #expect(layers.filter { $0.dsnot?.kept == true }.count == check.layersKept)
            for layer in layers {
                let kept = try #require(layer.dsnot?.kept)
                let output: [UInt8] = try sink.zeroMask(layer.name)
                let wanda: [UInt8] = try base.zeroMask(layer.name)
                if kept {
                    #expect(output != wanda || layer.dsnot?.swaps == 0, "\(layer.name)")
                } else if block.index == 0 {
                    // Block 0 sees the same inputs in both runs: a reverted layer is Wanda's mask.
                    #expect(output == wanda, "\(layer.name)")
                }
            }
        }
        #expect(report.timings.outputCheck > 0)
        var keptSwaps = 0
        for layer in report.layers where layer.dsnot?.kept == true { keptSwaps += layer.dsnot?.swaps ?? 0 }
        #expect(report.totals.dsnotSwaps == keptSwaps)
    }
}
