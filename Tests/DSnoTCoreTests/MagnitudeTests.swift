// SPDX-License-Identifier: Apache-2.0
// Magnitude tests: the reference `≤ thr` rule bit for bit, and dsnot's exact-count rule = reference minus its largest pruned weight (D4).

import DSnoTCore
import Testing

@Suite struct MagnitudeTests {
    @Test(arguments: GoldenCase.all(prefix: "magnitude_"))
    func referenceRuleReproducesTheGoldenMask(_ golden: GoldenCase) throws {
        let layer = try GoldenFixture.layer(golden.data)
        let expected = try GoldenFixture.mask(GoldenFixture.file("cases/\(golden.id).safetensors"))
        let reference = try Magnitude.referenceMask(weights: layer.weights, pattern: golden.pattern)
        #expect(reference.mismatches(expected) == 0)
    }

    @Test(arguments: GoldenCase.all(prefix: "magnitude_"))
    func floorRuleIsTheReferenceMinusItsLargestPrunedWeight(_ golden: GoldenCase) throws {
        let layer = try GoldenFixture.layer(golden.data)
        var expected = try GoldenFixture.mask(GoldenFixture.file("cases/\(golden.id).safetensors"))
        let ours = try Magnitude.mask(weights: layer.weights, pattern: golden.pattern, scope: .layer)
        if golden.pattern.group == nil {
            // Remove the reference's pruned weight of largest |W| (extra_from_le_threshold = 1 here).
            let extra = GoldenFixture.caseEntry(golden.id)["extra_from_le_threshold"] as? Int
            #expect(extra == 1)
            var largest = -1
            for i in 0..<expected.count where expected.bytes[i] != 0 {
                if largest < 0 || abs(layer.weights.storage[i]) > abs(layer.weights.storage[largest]) { largest = i }
            }
            expected.bytes[largest] = 0
            #expect(ours.prunedCount == Int(Double(layer.weights.count) * golden.pattern.ratio))
        }
        #expect(ours.mismatches(expected) == 0)
    }

    @Test func tiesDoNotAddExtraWeightsUnderTheFloorRule() throws {
        // Six equal weights at 50 %: the reference's `≤` rule prunes all six, dsnot exactly three (by index).
        let w = Matrix(rows: 2, columns: 3, storage: [0.5, -0.5, 0.5, 0.5, -0.5, 0.5])
        #expect(try Magnitude.referenceMask(weights: w, pattern: .unstructured(0.5)).prunedCount == 6)
        let ours = try Magnitude.mask(weights: w, pattern: .unstructured(0.5), scope: .layer)
        #expect(ours.bytes == [1, 1, 1, 0, 0, 0])
    }

    @Test func rowScopePrunesExactlyFloorPerRow() throws {
        var rng = SplitMix64(seed: 9)
        let w = Matrix(rows: 7, columns: 33, storage: (0..<(7 * 33)).map { _ in rng.normal() })
        let mask = try Magnitude.mask(weights: w, pattern: .unstructured(0.7), scope: .row)
        for r in 0..<7 { #expect(mask.prunedCount(row: r) == 23) }  // floor(33 · 0.7)
    }

    @Test func layerScopeEqualsAStableSortOnHeavilyTiedWeights() throws {
        // fp16 checkpoints have many equal |W| (DSnoT issue #5: 0.6013 measured for 0.6 under `≤`).
        var rng = SplitMix64(seed: 21)
        let w = Matrix(
            rows: 37,
            columns: 53,
            storage: (0..<(37 * 53)).map { _ in Float(Int(rng.uniform(through: 20)) - 10) / 8 }
        )
        for ratio in [0.1, 0.5, 0.6, 0.93] {
            let k = Int(Double(w.count) * ratio)
            let order = w.storage.indices.sorted { (abs(w.storage[$0]), $0) < (abs(w.storage[$1]), $1) }
            var expected = PruneMask(rows: 37, columns: 53)
            for i in order.prefix(k) { expected.bytes[i] = 1 }
            let ours = try Magnitude.mask(weights: w, pattern: .unstructured(ratio), scope: .layer)
            #expect(ours == expected)
            let threshold = abs(w.storage[order[k]])
            let reference = try Magnitude.referenceMask(weights: w, pattern: .unstructured(ratio))
            #expect(reference.prunedCount == w.storage.filter { abs($0) <= threshold }.count)
            #expect(reference.prunedCount > k)
        }
    }
}
