// SPDX-License-Identifier: Apache-2.0
// Statistics tests: dsnot's LayerStatistics from X against the reference wrappers' stored values (D1).

import DSnoTCore
import SafeTensors
import Testing

@Suite struct StatisticsTests {
    /// Largest |a − b| relative to the largest |b|.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        var diff = 0.0
        var scale = 0.0
        for i in 0..<a.count {
            diff = max(diff, abs(Double(a[i]) - Double(b[i])))
            scale = max(scale, abs(Double(b[i])))
        }
        return scale == 0 ? diff : diff / scale
    }

    @Test(arguments: ["A", "B", "C", "C2d"])
    func statisticsFromXMatchTheReference(_ id: String) throws {
        let layer = try GoldenFixture.layer(id)
        let hasH = layer.file.info(ifPresent: "H") != nil
        let ours = GoldenFixture.recomputed(layer, hessian: hasH)
        // Golden README: float32 round-off, suggested 1e-6 relative to the largest entry.
        #expect(Self.relativeError(ours.scalerRow, layer.stored.scalerRow) < 1e-6)
        #expect(Self.relativeError(ours.sumRow, layer.stored.sumRow) < 1e-6)
        #expect(Self.relativeError(ours.variance, layer.stored.variance) < 1e-6)
        #expect(Self.relativeError(ours.mean, try layer.file.floats(named: "mean")) < 1e-6)
        #expect(ours.sequenceCount == layer.sequences.count)
        #expect(ours.tokensPerSequence == layer.sequences[0].rows)
        if hasH {
            let h = try #require(ours.hessian)
            #expect(Self.relativeError(h.storage, try layer.file.floats(named: "H")) < 1e-6)
        }
    }

    @Test func varianceIsTheMeanOfPerSequenceVariancesNotTheGlobalOne() {
        // Two sequences with different means: per-sequence variance 0, global variance 1.
        var stats = LayerStatistics(inputFeatures: 1, accumulateHessian: false)
        stats.accumulate(sequence: Matrix(rows: 2, columns: 1, storage: [1, 1]))
        stats.accumulate(sequence: Matrix(rows: 2, columns: 1, storage: [-1, -1]))
        #expect(stats.variance == [0])
        #expect(stats.scalerRow == [2])  // (1/N) Σ x² = 4 / 2
        #expect(stats.sumRow == [0])
    }

    /// Sequences large enough to split the per-feature sums over the cores (the golden layers are
    /// too small to): every statistic against a Double computation of its definition, and the
    /// Hessian against `(2/N) Σ XᵀX`.
    @Test func largeSequencesMatchTheDefinitionsOnEveryCore() throws {
        let (tokens, width, count) = (64, 600, 3)
        var rng = SplitMix64(seed: 11)
        let sequences = (0..<count).map { n in
            Matrix(
                rows: tokens,
                columns: width,
                storage: (0..<(tokens * width)).map { i in rng.normal() + Float(n) + Float(i % width) * 0.01 }
            )
        }
        var stats = LayerStatistics(inputFeatures: width, accumulateHessian: true)
        for x in sequences { stats.accumulate(sequence: x) }
        var scaler = [Double](repeating: 0, count: width)
        var sum = scaler
        var variance = scaler
        for x in sequences {
            for j in 0..<width {
                let column = (0..<tokens).map { Double(x.storage[$0 * width + j]) }
                let mean = column.reduce(0, +) / Double(tokens)
                scaler[j] += column.reduce(0) { $0 + $1 * $1 } / Double(count)
                sum[j] += column.reduce(0, +) / Double(count)
                variance[j] += column.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(tokens * count)
            }
        }
        #expect(Self.relativeError(stats.scalerRow, scaler.map(Float.init)) < 1e-6)
        #expect(Self.relativeError(stats.sumRow, sum.map(Float.init)) < 1e-6)
        #expect(Self.relativeError(stats.variance, variance.map(Float.init)) < 1e-6)
        var gram = [Float](repeating: 0, count: width * width)
        for x in sequences {
            let product = Reference.matmul(x.transposed(), x).storage
            for i in gram.indices { gram[i] += product[i] * 2 / Float(count) }
        }
        let hessian = try #require(stats.hessian)
        #expect(Self.relativeError(hessian.storage, gram) < 1e-5)
    }

    @Test func hessianIsOnlyKeptWhenAskedFor() {
        var stats = LayerStatistics(inputFeatures: 3, accumulateHessian: false)
        stats.accumulate(sequence: Matrix(rows: 1, columns: 3, storage: [1, 2, 3]))
        #expect(stats.hessian == nil)
        #expect(!stats.hasHessian)
        var withH = LayerStatistics(inputFeatures: 2, accumulateHessian: true)
        withH.accumulate(sequence: Matrix(rows: 1, columns: 2, storage: [1, 2]))
        // H = (2/N) x xᵀ with N = 1: exact in fp32.
        #expect(withH.hessian?.storage == [2, 4, 4, 8])
    }

    /// The pipeline finishes each Hessian once after its statistics pass: bit for bit what `hessian`
    /// computes from the running sum, and the other statistics are untouched.
    @Test func finishedHessianIsBitIdenticalToTheComputedOne() {
        var rng = SplitMix64(seed: 5)
        var stats = LayerStatistics(inputFeatures: 37, accumulateHessian: true)
        for _ in 0..<3 {
            stats.accumulate(sequence: Matrix(rows: 9, columns: 37, storage: (0..<333).map { _ in rng.normal() }))
        }
        let before = stats
        stats.finishHessian()
        #expect(stats.hessian == before.hessian)
        #expect(stats.hessian?.storage.count == 37 * 37)
        #expect(stats.scalerRow == before.scalerRow && stats.variance == before.variance)
        stats.finishHessian()  // a second call changes nothing
        #expect(stats.hessian == before.hessian)
        var without = LayerStatistics(inputFeatures: 4, accumulateHessian: false)
        without.finishHessian()
        #expect(without.hessian == nil)
    }

    @Test func storedStatisticsRejectMismatchedLengths() {
        #expect(
            throws: PruningError.statisticShapeMismatch(layer: "(stored)", statistic: "variance", expected: 2, got: 3)
        ) {
            _ = try LayerStatistics(
                scalerRow: [1, 1],
                sumRow: [0, 0],
                variance: [1, 1, 1],
                hessian: nil,
                sequenceCount: 1,
                tokenCount: 4
            )
        }
    }
}
