// SPDX-License-Identifier: Apache-2.0
// Pruning property tests: invariants on seeded random layers (exact counts, N:M groups, DSnoT keeps values, determinism).

import DSnoTCore
import Foundation
import Testing

@Suite struct PruningPropertyTests {
    /// A random layer with per-feature means and scales, its statistics (with H) and a label.
    struct RandomLayer: CustomStringConvertible, Sendable {
        let seed: UInt64
        let rows: Int
        let columns: Int
        var description: String { "seed \(seed) [\(rows), \(columns)]" }

        func make() -> (Matrix, LayerStatistics) {
            var rng = SplitMix64(seed: seed)
            let w = Matrix(
                rows: rows,
                columns: columns,
                storage: (0..<(rows * columns)).map { _ in 0.05 * rng.normal() }
            )
            let mean = (0..<columns).map { _ in 0.5 * rng.normal() }
            let scale = (0..<columns).map { _ in 0.2 + rng.unitFloat() }
            var stats = LayerStatistics(inputFeatures: columns, accumulateHessian: true)
            for _ in 0..<3 {
                let offset = (0..<columns).map { _ in 0.25 * rng.normal() }
                var x = Matrix(rows: 16, columns: columns)
                for t in 0..<16 { for j in 0..<columns { x[t, j] = mean[j] + offset[j] + scale[j] * rng.normal() } }
                stats.accumulate(sequence: x)
            }
            return (w, stats)
        }
    }

    static let layers = [
        RandomLayer(seed: 1, rows: 17, columns: 64), RandomLayer(seed: 2, rows: 40, columns: 96),
        RandomLayer(seed: 3, rows: 8, columns: 200),
    ]
    static let ratios = [0.3, 0.5, 0.6, 0.9]

    @Test(arguments: layers)
    func perRowMethodsPruneExactlyFloorPerRow(_ spec: RandomLayer) throws {
        let (w, stats) = spec.make()
        for ratio in Self.ratios {
            let k = Int(Double(spec.columns) * ratio)
            let recipes = [
                Recipe(method: .wanda, pattern: .unstructured(ratio), calibration: .init(path: "x")),
                Recipe(method: .magnitude, pattern: .unstructured(ratio), magnitudeScope: .row),
                Recipe(
                    method: .wanda,
                    pattern: .unstructured(ratio),
                    dsnot: DSnoT.Settings(updateThreshold: 0),
                    calibration: .init(path: "x")
                ),
                Recipe(
                    method: .magnitude,
                    pattern: .unstructured(ratio),
                    dsnot: .reference,
                    calibration: .init(path: "x")
                ),
            ]
            for recipe in recipes {
                let r = try LayerPruner.prune(weights: w, statistics: stats, recipe: recipe, layer: "self_attn.q_proj")
                #expect(r.metrics.prunedPerRowMin == k && r.metrics.prunedPerRowMax == k, "\(recipe.method) \(ratio)")
            }
        }
    }

    @Test(arguments: layers)
    func nOfMHoldsInEveryGroup(_ spec: RandomLayer) throws {
        let (w, stats) = spec.make()
        for (n, m) in [(2, 4), (4, 8)] where spec.columns % m == 0 {
            for method in Recipe.Method.allCases {
                for dsnot in [nil, DSnoT.Settings(updateThreshold: 0)] {
                    let recipe = Recipe(
                        method: method,
                        pattern: .nOfM(n, m),
                        dsnot: dsnot,
                        calibration: .init(path: "x")
                    )
                    let r = try LayerPruner.prune(
                        weights: w,
                        statistics: stats,
                        recipe: recipe,
                        layer: "self_attn.q_proj"
                    )
                    for row in 0..<spec.rows {
                        for g in stride(from: 0, to: spec.columns, by: m) {
                            var count = 0
                            for c in g..<(g + m) where r.mask[row, c] { count += 1 }
                            #expect(count == n, "\(method) \(n):\(m) row \(row) group \(g)")
                        }
                    }
                }
            }
        }
    }

    @Test(arguments: layers)
    func dsnotOnlyEditsTheMask(_ spec: RandomLayer) throws {
        let (w, stats) = spec.make()
        let recipe = Recipe(
            method: .wanda,
            pattern: .unstructured(0.6),
            dsnot: DSnoT.Settings(updateThreshold: 0),
            calibration: .init(path: "x")
        )
        let r = try LayerPruner.prune(weights: w, statistics: stats, recipe: recipe, layer: "self_attn.q_proj")
        #expect(r.weights == nil)  // values are the dense ones under the mask
        let sparse = r.sparseWeights(dense: w)
        for i in 0..<w.count { #expect(sparse.storage[i] == (r.mask.bytes[i] != 0 ? 0 : w.storage[i])) }
        let record = try #require(r.metrics.dsnot)
        #expect(record.totalSwaps > 0)
        #expect(r.mask.mismatches(r.baseMask) == 2 * record.totalSwaps)
        // Without the same-sign rule a swap may overshoot (B§5.2); with it, e never changes sign and
        // every accepted swap moves it towards 0, so Σ|e| cannot rise.
        var sameSign = DSnoT.Settings(updateThreshold: 0)
        sameSign.sameSign = true
        let s = try LayerPruner.prune(
            weights: w,
            statistics: stats,
            recipe: Recipe(method: .wanda, pattern: .unstructured(0.6), dsnot: sameSign, calibration: .init(path: "x")),
            layer: "self_attn.q_proj"
        )
        let rec = try #require(s.metrics.dsnot)
        #expect(rec.errorAfter <= rec.errorBefore + 1e-4)  // fp32 e per row; 1e-4 absolute slack
    }

    @Test(arguments: layers)
    func resultsAreDeterministic(_ spec: RandomLayer) throws {
        let (w, stats) = spec.make()
        for method in Recipe.Method.allCases {
            let recipe = Recipe(
                method: method,
                pattern: .unstructured(0.5),
                dsnot: .reference,
                calibration: .init(path: "x")
            )
            let a = try LayerPruner.prune(weights: w, statistics: stats, recipe: recipe, layer: "self_attn.q_proj")
            let b = try LayerPruner.prune(weights: w, statistics: stats, recipe: recipe, layer: "self_attn.q_proj")
            #expect(a.mask == b.mask)
            #expect(a.weights == b.weights)
            #expect(a.metrics == b.metrics)
        }
    }

    @Test func nOfMOnAWidthThatIsNotAMultipleOfMIsAClearError() throws {
        let (w, stats) = RandomLayer(seed: 4, rows: 3, columns: 30).make()
        let recipe = Recipe(method: .wanda, pattern: .nOfM(4, 8), calibration: .init(path: "x"))
        #expect(throws: PruningError.columnsNotMultipleOfGroup(layer: "mlp.up_proj", columns: 30, m: 8)) {
            _ = try LayerPruner.prune(weights: w, statistics: stats, recipe: recipe, layer: "mlp.up_proj")
        }
    }

    @Test func gramErrorEqualsTheExplicitOutputError() throws {
        // ‖ΔW X‖²_F / ‖W X‖²_F from H = (2/N) Σ x xᵀ must equal the value from the outputs themselves.
        var rng = SplitMix64(seed: 11)
        let w = Matrix(rows: 12, columns: 32, storage: (0..<384).map { _ in rng.normal() })
        let x = Matrix(rows: 50, columns: 32, storage: (0..<1600).map { _ in 0.3 + rng.normal() })
        var stats = LayerStatistics(inputFeatures: 32, accumulateHessian: true)
        stats.accumulate(sequence: x)
        let recipe = Recipe(method: .wanda, pattern: .unstructured(0.5), calibration: .init(path: "x"))
        let r = try LayerPruner.prune(weights: w, statistics: stats, recipe: recipe, layer: "self_attn.q_proj")
        let dense = Linalg.matmul(x, w, transposeB: true)  // (tokens, out)
        let sparse = Linalg.matmul(x, r.mask.applied(to: w), transposeB: true)
        var num = 0.0
        var den = 0.0
        for i in 0..<dense.count {
            num += pow(Double(dense.storage[i] - sparse.storage[i]), 2)
            den += pow(Double(dense.storage[i]), 2)
        }
        let gram = try #require(r.metrics.finalRelativeError)
        #expect(abs(gram - num / den) <= 1e-4 * (num / den))  // fp32 H and products: 1e-4 relative
        #expect(r.metrics.baseRelativeError == r.metrics.finalRelativeError)  // no DSnoT
        #expect(r.metrics.achievedSparsity == 0.5)
        #expect(r.metrics.errorRowsSampled == 12)
        #expect(ReconstructionError.sampledRows(rows: 1000, maxRows: 4) == [0, 250, 500, 750])
    }

    /// Counts and the applied mask against their definitions, on a mask larger than one 2²⁴-byte
    /// counting chunk, with `-0.0` and `+0.0` weights kept as they are.
    @Test func maskCountsAndApplicationMatchTheirDefinitions() {
        var rng = SplitMix64(seed: 21)
        let (rows, cols) = (4099, 4100)  // 16,805,900 entries: one full chunk and a partial one
        var mask = PruneMask(rows: rows, columns: cols)
        for i in 0..<mask.bytes.count where rng.next() % 3 == 0 { mask.bytes[i] = 1 }
        var expected = 0
        for b in mask.bytes { expected += Int(b) }
        #expect(mask.prunedCount == expected)
        var row7 = 0
        for c in 0..<cols where mask[7, c] { row7 += 1 }
        #expect(mask.prunedCount(row: 7) == row7)
        let small = PruneMask(rows: 2, columns: 3, bytes: [1, 0, 0, 0, 1, 0])
        let w = Matrix(rows: 2, columns: 3, storage: [1, -0.0, 2, 0, 3, -4])
        let applied = small.applied(to: w)
        #expect(applied.storage == [0, -0.0, 2, 0, 0, -4])
        #expect(applied.storage[1].sign == .minus)
    }

    /// A masked candidate's sampled rows are formed from the mask alone: the same errors, bit for bit,
    /// as from the materialised `Ŵ`, next to a candidate with changed values (SparseGPT's kind).
    @Test func maskedCandidateErrorEqualsTheMaterialisedOne() throws {
        var rng = SplitMix64(seed: 12)
        let (rows, cols) = (40, 24)
        let w = Matrix(rows: rows, columns: cols, storage: (0..<(rows * cols)).map { _ in rng.normal() })
        let x = Matrix(rows: 30, columns: cols, storage: (0..<(30 * cols)).map { _ in rng.normal() })
        var stats = LayerStatistics(inputFeatures: cols, accumulateHessian: true)
        stats.accumulate(sequence: x)
        let h = try #require(stats.hessian)
        let mask = try Wanda.mask(weights: w, scalerRow: stats.scalerRow, pattern: .unstructured(0.5))
        var updated = mask.applied(to: w)
        for i in updated.storage.indices where updated.storage[i] != 0 { updated.storage[i] *= 0.9 }
        let masked = ReconstructionError.relative(
            dense: w,
            candidates: [.init(mask: mask, weights: nil), .init(mask: mask, weights: updated)],
            hessian: h,
            maxRows: 7
        )
        let materialised = ReconstructionError.relative(
            dense: w,
            candidates: [.init(mask: mask, weights: mask.applied(to: w)), .init(mask: mask, weights: updated)],
            hessian: h,
            maxRows: 7
        )
        #expect(masked == materialised)
        #expect(masked[0] > 0 && masked[1] != masked[0])
    }

    /// Timing on a 4096×4096 layer (opt-in: `DSNOT_PERF=1`; the dsnot-bench target will own this later).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["DSNOT_PERF"] != nil))
    func dsnotTimeOnA4096LayerIsAFewTimesWanda() throws {
        var rng = SplitMix64(seed: 99)
        let n = 4096
        let w = Matrix(rows: n, columns: n, storage: (0..<(n * n)).map { _ in 0.02 * rng.normal() })
        let scaler = (0..<n).map { _ in 0.5 + rng.unitFloat() }
        let mu = (0..<n).map { _ in rng.normal() }
        let stats = try LayerStatistics(
            scalerRow: scaler,
            sumRow: mu,
            variance: scaler,
            hessian: nil,
            sequenceCount: 128,
            tokenCount: 128 * 2048
        )
        let clock = ContinuousClock()
        var wanda = PruneMask(rows: 0, columns: 0)
        let tWanda = clock.measure {
            wanda = (try? Wanda.mask(weights: w, scalerRow: scaler, pattern: .unstructured(0.6))) ?? wanda
        }
        let recipe = Recipe(
            method: .wanda,
            pattern: .unstructured(0.6),
            dsnot: .reference,
            calibration: .init(path: "x")
        )
        var result: LayerPruningResult? = nil
        let tDSnoT = try clock.measure {
            result = try LayerPruner.prune(weights: w, statistics: stats, recipe: recipe, layer: "self_attn.q_proj")
        }
        print(
            "perf 4096x4096 u60: wanda mask \(tWanda), wanda+dsnot \(tDSnoT), swaps \(result?.metrics.dsnot?.totalSwaps ?? 0)"
        )
        #expect(wanda.prunedCount == n * 2457)
        #expect(tDSnoT < tWanda * 20)
    }
}
