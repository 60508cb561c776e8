// SPDX-License-Identifier: Apache-2.0
// DSnoT tests: all 26 single-layer golden cases bit for bit (D7, D8), the guarded edge rules, D9 and acceptance.

import DSnoTCore
import Testing

@Suite struct DSnoTTests {
    static func recipe(_ golden: GoldenCase) -> Recipe {
        let method: Recipe.Method = golden.initialMethod == "magnitude" ? .magnitude : .wanda
        return Recipe(method: method, pattern: golden.pattern, dsnot: golden.dsnot, calibration: .init(path: "golden"))
    }

    @Test(arguments: GoldenCase.all(prefix: "dsnot_"))
    func goldenMaskIsReproducedBitForBit(_ golden: GoldenCase) throws {
        let layer = try GoldenFixture.layer(golden.data)
        let expected = try GoldenFixture.mask(GoldenFixture.file("cases/\(golden.id).safetensors"))
        let recipe = Self.recipe(golden)
        // From the reference's stored statistics and from dsnot's own (golden README: same masks).
        for stats in [layer.stored, GoldenFixture.recomputed(layer, hessian: false)] {
            let result = try LayerPruner.prune(
                weights: layer.weights,
                statistics: stats,
                recipe: recipe,
                layer: golden.layerName
            )
            #expect(result.mask.mismatches(expected) == 0, "\(golden.id)")
            #expect(result.weights == nil)
            if golden.id.contains("mlpskipped") {
                #expect(result.metrics.skippedByDSnoT)
                #expect(result.mask == result.baseMask)
            } else {
                let changed = result.mask.mismatches(result.baseMask)
                let recorded = GoldenFixture.caseEntry(golden.id)["entries_changed_vs_base_mask"] as? Int
                #expect(changed == recorded)
                #expect(2 * (result.metrics.dsnot?.totalSwaps ?? -1) == changed)
            }
        }
    }

    @Test func manifestHasTwentySixDSnoTCases() {
        #expect(GoldenCase.all(prefix: "dsnot_").count == 26)
    }

    @Test(arguments: [
        "self_attn.q_proj", "model.layers.7.self_attn.o_proj", "mlp.up_proj", "model.layers.0.mlp.down_proj",
    ])
    func skipMatchesTheFirstOrSecondInBlockComponent(_ name: String) {
        let isMLP = name.contains("mlp")
        #expect(DSnoT.Settings(skip: ["mlp"]).skips(layer: name) == isMLP)
        #expect(DSnoT.Settings(skip: ["self_attn"]).skips(layer: name) == !isMLP)
        #expect(DSnoT.Settings(skip: ["no_skip"]).skips(layer: name) == false)
        #expect(DSnoT.Settings(skip: ["o_proj"]).skips(layer: name) == name.hasSuffix("o_proj"))
        #expect(DSnoT.Settings(skip: []).skips(layer: name) == false)
    }

    @Test(arguments: [(4096, 50), (11008, 134), (128, 2), (32, 1)])
    func scaledCyclesFollowTheLayerWidth(_ pair: (Int, Int)) {
        #expect(DSnoT.MaxCycles.scaled.cycles(columns: pair.0) == pair.1)
        #expect(DSnoT.MaxCycles.fixed(7).cycles(columns: pair.0) == 7)
    }

    @Test func exhaustedListsStopTheRowInsteadOfPruningKeptWeights() throws {
        // A 32-wide layer at 50 % with T = 50: the case where the reference raised "index -1 is out of
        // bounds" (B§5.7). Guarded lists stop rows early; every row keeps exactly 16 pruned weights.
        var rng = SplitMix64(seed: 3)
        let w = Matrix(rows: 8, columns: 32, storage: (0..<256).map { _ in rng.normal() })
        let mu = (0..<32).map { _ in rng.normal() * 10 }
        let ones = [Float](repeating: 1, count: 32)
        let base = try Wanda.mask(weights: w, scalerRow: ones, pattern: .unstructured(0.5))
        let out = try DSnoT.refine(
            DSnoT.Input(
                dense: w,
                baseMask: base,
                scalerRow: ones,
                sumRow: mu,
                variance: ones,
                pattern: .unstructured(0.5)
            ),
            settings: DSnoT.Settings(updateThreshold: 0)
        )
        for r in 0..<8 { #expect(out.mask.prunedCount(row: r) == 16) }
        #expect(out.record.swapsPerRow.allSatisfy { $0 <= 16 })
    }

    @Test func zeroVarianceDoesNotProduceNaNDecisions() throws {
        // A constant feature (v = 0) uses v + 1e-12: its regrowth score is huge but finite.
        let w = Matrix(rows: 1, columns: 8, storage: [0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8])
        let variance: [Float] = [0, 1, 1, 1, 1, 1, 1, 1]
        let mu: [Float] = [5, 1, 1, 1, 1, 1, 1, 1]
        let base = try Wanda.mask(weights: w, scalerRow: [Float](repeating: 1, count: 8), pattern: .unstructured(0.5))
        let out = try DSnoT.refine(
            DSnoT.Input(
                dense: w,
                baseMask: base,
                scalerRow: [Float](repeating: 1, count: 8),
                sumRow: mu,
                variance: variance,
                pattern: .unstructured(0.5)
            ),
            settings: DSnoT.Settings()
        )
        #expect(out.mask.prunedCount(row: 0) == 4)
        #expect(out.record.errorAfter.isFinite)
        #expect(out.record.rowErrorAfter.count == 1 && out.record.rowErrorAfter[0].isFinite)
        #expect(Double(out.record.rowErrorAfter[0]) == out.record.errorAfter)
        #expect(!out.mask[0, 0])  // column 0 (e > 0, largest D/v) is regrown first
    }

    @Test func trueErrorAcceptanceNeverRaisesTheTrueError() throws {
        let layer = try GoldenFixture.layer("B")
        let stats = GoldenFixture.recomputed(layer, hessian: true)
        var settings = DSnoT.Settings()
        settings.accept = .trueError
        let recipe = Recipe(method: .wanda, pattern: .unstructured(0.6), dsnot: settings, calibration: .init(path: "x"))
        let result = try LayerPruner.prune(
            weights: layer.weights,
            statistics: stats,
            recipe: recipe,
            layer: "self_attn.q_proj"
        )
        let base = try #require(result.metrics.baseRelativeError)
        let final = try #require(result.metrics.finalRelativeError)
        // Every row keeps its refinement only if Δwᵀ H Δw drops, so the layer sum cannot rise (fp64 sums; 1e-12 slack).
        #expect(final <= base + 1e-12)
        let record = try #require(result.metrics.dsnot)
        #expect(record.rowsRejected > 0 || record.totalSwaps > 0)
        for r in 0..<result.mask.rows { #expect(result.mask.prunedCount(row: r) == 230) }
    }

    @Test func trueErrorAcceptanceWithoutHessianIsAClearError() throws {
        let layer = try GoldenFixture.layer("A")
        let stats = GoldenFixture.recomputed(layer, hessian: false)
        var settings = DSnoT.Settings()
        settings.accept = .trueError
        let recipe = Recipe(method: .wanda, pattern: .unstructured(0.5), dsnot: settings, calibration: .init(path: "x"))
        #expect(
            throws: PruningError.missingStatistic(
                layer: "self_attn.q_proj",
                statistic: "hessian",
                method: "dsnot accept=true-error"
            )
        ) {
            _ = try LayerPruner.prune(
                weights: layer.weights,
                statistics: stats,
                recipe: recipe,
                layer: "self_attn.q_proj"
            )
        }
    }

    @Test func sparseGPTThenDSnoTRestoresDenseValuesOnRegrownWeights() throws {
        // D9 (our extension): kept weights carry SparseGPT's values, regrown ones their dense value.
        let layer = try GoldenFixture.layer("B")
        let stats = GoldenFixture.recomputed(layer, hessian: true)
        var settings = DSnoT.Settings()
        settings.accept = .none
        let recipe = Recipe(
            method: .sparsegpt,
            pattern: .unstructured(0.5),
            dsnot: settings,
            calibration: .init(path: "x")
        )
        let result = try LayerPruner.prune(
            weights: layer.weights,
            statistics: stats,
            recipe: recipe,
            layer: "self_attn.q_proj"
        )
        let sparse = try #require(result.weights)
        let sgpt = try SparseGPT.prune(
            weights: layer.weights,
            hessian: try #require(stats.hessian),
            pattern: .unstructured(0.5)
        )
        var regrown = 0
        for i in 0..<sparse.count {
            if result.mask.bytes[i] != 0 {
                #expect(sparse.storage[i] == 0)
            } else if result.baseMask.bytes[i] != 0 {
                #expect(sparse.storage[i] == layer.weights.storage[i])
                regrown += 1
            } else {
                #expect(sparse.storage[i] == sgpt.weights.storage[i])
            }
        }
        #expect(regrown > 0)
        #expect(result.mask.prunedCount == result.baseMask.prunedCount)
    }
}
