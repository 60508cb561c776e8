// SPDX-License-Identifier: Apache-2.0
// Golden block tests: the two-block model's per-layer masks from the stored layer inputs (golden/block).

import DSnoTCore
import SafeTensors
import Testing

@Suite struct GoldenBlockTests {
    static let layers = (0..<2).flatMap { b in
        [
            "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
            "mlp.up_proj", "mlp.down_proj",
        ]
        .map { "model.layers.\(b).\($0)" }
    }

    /// Per layer: dense W, dsnot's statistics from `input.<layer>`, the reference mask.
    static func layer(_ name: String, run: SafeTensorsFile, model: SafeTensorsFile) throws -> (
        Matrix, LayerStatistics, PruneMask
    ) {
        let w = try GoldenFixture.matrix(model, "\(name).weight")
        let info = try run.info(named: "input.\(name)")
        let x = try run.floats(named: "input.\(name)")
        let (n, l, c) = (info.shape[0], info.shape[1], info.shape[2])
        var stats = LayerStatistics(inputFeatures: c, accumulateHessian: false)
        for s in 0..<n {
            stats.accumulate(sequence: Matrix(rows: l, columns: c, storage: Array(x[(s * l * c)..<((s + 1) * l * c)])))
        }
        // Statistics vs the reference's own (1e-6 relative to the largest entry).
        #expect(StatisticsTests.relativeError(stats.scalerRow, try run.floats(named: "scaler_row.\(name)")) < 1e-6)
        if run.info(ifPresent: "sum_metric_row.\(name)") != nil {
            #expect(StatisticsTests.relativeError(stats.sumRow, try run.floats(named: "sum_metric_row.\(name)")) < 1e-6)
            #expect(StatisticsTests.relativeError(stats.variance, try run.floats(named: "var.\(name)")) < 1e-6)
        }
        return (w, stats, try GoldenFixture.mask(run, "mask.\(name)"))
    }

    static func runEntry(_ id: String) -> [String: Any] {
        let block = GoldenFixture.manifest["block"] as? [String: Any] ?? [:]
        let runs = block["runs"] as? [[String: Any]] ?? []
        return runs.first { ($0["id"] as? String) == id } ?? [:]
    }

    @Test func wandaU50MasksMatchBitForBit() throws {
        let run = try GoldenFixture.file("block/wanda_u50.safetensors")
        let model = try GoldenFixture.file("block/model/model.safetensors")
        let recipe = Recipe(method: .wanda, pattern: .unstructured(0.5), calibration: .init(path: "calib"))
        for name in Self.layers {
            let (w, stats, expected) = try Self.layer(name, run: run, model: model)
            let result = try LayerPruner.prune(weights: w, statistics: stats, recipe: recipe, layer: name)
            #expect(result.mask.mismatches(expected) == 0, "\(name)")
        }
    }

    @Test func dsnotT10MasksMatchBitForBit() throws {
        let run = try GoldenFixture.file("block/dsnot_wanda_u60_T10.safetensors")
        let model = try GoldenFixture.file("block/model/model.safetensors")
        let recipe = Recipe(
            method: .wanda,
            pattern: .unstructured(0.6),
            dsnot: DSnoT.Settings(maxCycles: .fixed(10)),
            calibration: .init(path: "calib")
        )
        for name in Self.layers {
            let (w, stats, expected) = try Self.layer(name, run: run, model: model)
            let result = try LayerPruner.prune(weights: w, statistics: stats, recipe: recipe, layer: name)
            #expect(result.mask.mismatches(expected) == 0, "\(name)")
            #expect(result.metrics.skippedByDSnoT == name.contains(".mlp."))
        }
    }

    @Test func dsnotT50MismatchesAreExactlyTheReferenceCursorQuirk() throws {
        // The reference's unguarded cursors prune extra weights in 128-wide layers (golden README);
        // the guarded algorithm differs from it by exactly the counts the manifest records.
        let run = try GoldenFixture.file("block/dsnot_wanda_u60.safetensors")
        let model = try GoldenFixture.file("block/model/model.safetensors")
        let recipe = Recipe(
            method: .wanda,
            pattern: .unstructured(0.6),
            dsnot: .reference,
            calibration: .init(path: "calib")
        )
        let manifestLayers = Self.runEntry("dsnot_wanda_u60")["layers"] as? [String: [String: Any]] ?? [:]
        #expect(manifestLayers.count == 14)
        for name in Self.layers {
            let (w, stats, expected) = try Self.layer(name, run: run, model: model)
            let result = try LayerPruner.prune(weights: w, statistics: stats, recipe: recipe, layer: name)
            let check = manifestLayers[name]?["spec_check"] as? [String: Any] ?? [:]
            let recorded = check["guarded_spec_mask_mismatches"] as? Int ?? 0  // MLP layers: skipped, 0
            #expect(result.mask.mismatches(expected) == recorded, "\(name)")
            // Guarded rows keep exactly floor(128 · 0.6) = 76 (or 153 for down_proj) pruned weights.
            let k = Int(Double(w.columns) * 0.6)
            #expect(result.metrics.prunedPerRowMin == k && result.metrics.prunedPerRowMax == k)
        }
    }
}
