// SPDX-License-Identifier: Apache-2.0
// OWL tests: the outlier ratio and the sparsity allocation by hand, the exact weighted mean, the
// recipe errors, and an end-to-end prune of the two-block golden model with per-block sparsities.

import DSnoTCore
import Foundation
import Logging
import SafeTensors
import Testing

@Suite struct OWLTests {
    @Test func outlierRatioCountsScoresAboveMTimesTheBlockMean() {
        // Scores |W|·sqrt(scaler_row): [1, 1, 1, 13] and [2, 2] (scaler 4 → factor 2 on [1, 1]);
        // mean over all six = 20 / 6 = 3.33; M = 2 → cut 6.67: one outlier (13) of six.
        let a = Matrix(rows: 1, columns: 4, storage: [1, -1, 1, 13])
        let b = Matrix(rows: 1, columns: 2, storage: [1, -1])
        let ratio = OWL.outlierRatio(layers: [(a, [1, 1, 1, 1]), (b, [4, 4])], threshold: 2)
        #expect(abs(ratio - 1.0 / 6.0) < 1e-15)
        // M = 4 → cut 13.33: none.
        #expect(OWL.outlierRatio(layers: [(a, [1, 1, 1, 1]), (b, [4, 4])], threshold: 4) == 0)
    }

    @Test func allocationByHand() throws {
        // Equal sizes: mean ratio 0.02, largest deviation 0.01 → α = 0.08 / 0.01 = 8.
        let s = try OWL.allocate(target: 0.5, lambda: 0.08, ratios: [0.01, 0.03, 0.02], weights: [1, 1, 1])
        for (got, want) in zip(s, [0.58, 0.42, 0.5]) { #expect(abs(got - want) < 1e-12, "\(s)") }
        // Weighted: mean ratio (3·0 + 1·1)/4 = 0.25, deviations −0.25 and 0.75 → α = 0.1/0.75:
        // 0.6 + 0.25·0.1/0.75 = 0.6333…, 0.6 − 0.1 = 0.5; (3·0.6333 + 0.5)/4 = 0.6.
        let w = try OWL.allocate(target: 0.6, lambda: 0.1, ratios: [0, 1], weights: [3, 1])
        #expect(abs(w[0] - (0.6 + 0.1 / 3)) < 1e-12)
        #expect(abs(w[1] - 0.5) < 1e-12)
        // Equal ratios or λ = 0: the target everywhere.
        #expect(try OWL.allocate(target: 0.7, lambda: 0.08, ratios: [0.1, 0.1], weights: [1, 2]) == [0.7, 0.7])
        #expect(try OWL.allocate(target: 0.7, lambda: 0, ratios: [0.1, 0.3], weights: [1, 2]) == [0.7, 0.7])
    }

    @Test func allocationKeepsTheWeightedMeanExactAndStaysWithinLambda() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let blocks = Int.random(in: 2...40, using: &rng)
            let target = Double.random(in: 0.2...0.8, using: &rng)
            let lambda = Double.random(in: 0..<min(target, 1 - target), using: &rng)
            let ratios = (0..<blocks).map { _ in Double.random(in: 0...0.1, using: &rng) }
            let weights = (0..<blocks).map { _ in Double(Int.random(in: 1...5, using: &rng)) * 1e6 }
            let s = try OWL.allocate(target: target, lambda: lambda, ratios: ratios, weights: weights)
            var weighted = 0.0
            for (x, w) in zip(s, weights) { weighted += x * w }
            let mean = weighted / weights.reduce(0, +)
            #expect(abs(mean - target) < 1e-12)
            let deviation = s.map { abs($0 - target) }.max() ?? 0
            #expect(deviation <= lambda + 1e-12)
            #expect(abs(deviation - lambda) < 1e-12)  // the extreme block sits at exactly ±λ
            // More outliers, lower sparsity.
            for i in 0..<blocks {
                for j in 0..<blocks where ratios[i] < ratios[j] { #expect(s[i] >= s[j]) }
            }
        }
    }

    @Test func outOfRangeParametersAndNOfMAreRecipeErrors() {
        func recipe(_ pattern: SparsityPattern, m: Double = 5, lambda: Double = 0.08) -> Recipe {
            Recipe(
                method: .wanda,
                pattern: pattern,
                calibration: .init(path: "c.txt"),
                layerSparsity: .owl,
                owlThreshold: m,
                owlLambda: lambda
            )
        }
        #expect(throws: Never.self) { try recipe(.unstructured(0.6)).validate() }
        #expect(throws: PruningError.self) { try recipe(.nOfM(2, 4)).validate() }
        #expect(throws: PruningError.self) { try recipe(.unstructured(0.6), m: 0).validate() }
        #expect(throws: PruningError.self) { try recipe(.unstructured(0.6), m: -1).validate() }
        #expect(throws: PruningError.self) { try recipe(.unstructured(0.6), lambda: -0.01).validate() }
        // λ must stay below min(s, 1 − s): 0.4 at 60 %, 0.1 at 90 %.
        #expect(throws: PruningError.self) { try recipe(.unstructured(0.6), lambda: 0.4).validate() }
        #expect(throws: Never.self) { try recipe(.unstructured(0.6), lambda: 0.39).validate() }
        #expect(throws: PruningError.self) { try recipe(.unstructured(0.9), lambda: 0.1).validate() }
        #expect(throws: PruningError.self) { try recipe(.unstructured(0.6), lambda: .nan).validate() }
        // Uniform recipes do not look at the OWL parameters.
        var uniform = recipe(.nOfM(2, 4), m: 0)
        uniform.layerSparsity = .uniform
        #expect(throws: Never.self) { try uniform.validate() }
    }

    @Test func owlKeysDecodeAndOnlyChangeTheHashWhenOn() throws {
        let json =
            #"{"method":"wanda","pattern":{"type":"unstructured","ratio":0.6},"layer_sparsity":"owl","owl_lambda":0.05}"#
        let r = try JSONDecoder().decode(Recipe.self, from: Data(json.utf8))
        #expect(r.layerSparsity == .owl && r.owlLambda == 0.05 && r.owlThreshold == 5)
        #expect(r.canonicalJSON.contains(#""layer_sparsity":"owl""#))
        #expect(r.canonicalJSON.contains(#""owl_lambda":0.05"#))
        var uniform = r
        uniform.layerSparsity = .uniform
        #expect(!uniform.canonicalJSON.contains("owl"))
        #expect(
            uniform.stableHash
                == Recipe(method: .wanda, pattern: .unstructured(0.6), dsnot: DSnoT.Profile.default.settings).stableHash
        )
        #expect(try JSONDecoder().decode(Recipe.self, from: try JSONEncoder().encode(r)) == r)
    }

    /// The two-block golden model with OWL (M = 2 so that its random weights have outliers):
    /// the blocks get different sparsities, their size-weighted mean is the target, and every
    /// row of every layer prunes exactly ⌊C_in · s_b⌋ weights of its block's `s_b`.
    @Test(arguments: [Recipe.Method.wanda, .sparsegpt, .magnitude])
    func endToEndBlocksGetDifferentSparsitiesWithTheExactMean(_ method: Recipe.Method) throws {
        let directory = GoldenFixture.root.appendingPathComponent("block/model").path
        let checkpoint = try Checkpoint(directory: directory)
        let model = try ModelRegistry.load(directory: directory)
        let calibration = try CalibrationSet.load(tokenFile: ModelFixtures.path("golden-block", "calib.safetensors"))
        let recipe = Recipe(
            method: method,
            pattern: .unstructured(0.6),
            dsnot: DSnoT.Profile.guarded.settings(after: method),
            layerSparsity: .owl,
            owlThreshold: 2,
            owlLambda: 0.1
        )
        let sink = CapturingSink()
        let report = try SequentialPruner(recipe: recipe).run(
            model: model,
            source: checkpoint,
            calibration: calibration,
            sink: sink,
            logger: Logger(label: "test")
        )
        #expect(report.blocks.count == model.blockCount)
        let ratios = report.blocks.compactMap(\.outlierRatio)
        #expect(ratios.count == 2 && ratios[0] != ratios[1], "\(ratios)")
        let sparsities = report.blocks.map(\.sparsity)
        #expect(abs(sparsities[0] - sparsities[1]) > 0.19, "\(sparsities)")  // ±λ around 0.6
        var sizes = [Double](repeating: 0, count: model.blockCount)
        var expectedPruned = 0
        for b in 0..<model.blockCount {
            for layer in model.prunableLinearLayers(block: b) {
                sizes[b] += Double(layer.outFeatures * layer.inFeatures)
                let perRow = Int((Double(layer.inFeatures) * sparsities[b]).rounded(.down))
                expectedPruned += layer.outFeatures * perRow
                let zeros = try sink.zeroMask(layer.tensorName)
                if method == .sparsegpt {
                    // SparseGPT thresholds blocks of 128 columns over all rows: the layer, not each row,
                    // holds the ratio (up to the last block's rounding).
                    var total = 0
                    for z in zeros { total += Int(z) }
                    let fraction = Double(total) / Double(zeros.count)
                    #expect(abs(fraction - sparsities[b]) < 0.02, "\(layer.tensorName) \(fraction)")
                    continue
                }
                for row in 0..<layer.outFeatures {
                    let start = row * layer.inFeatures
                    var count = 0
                    for z in zeros[start..<(start + layer.inFeatures)] { count += Int(z) }
                    #expect(count == perRow, "\(layer.tensorName) row \(row)")
                }
            }
        }
        var weighted = 0.0
        for (x, w) in zip(sparsities, sizes) { weighted += x * w }
        let mean = weighted / sizes.reduce(0, +)
        #expect(abs(mean - 0.6) < 1e-12)
        if method != .sparsegpt { #expect(report.totals.prunedWeights == expectedPruned) }
        #expect(report.timings.owl > 0)
    }
}
