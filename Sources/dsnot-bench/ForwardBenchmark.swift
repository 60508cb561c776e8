// SPDX-License-Identifier: Apache-2.0
// ForwardBenchmark: block forward throughput against the cblas_sgemm rate at the same shapes, in one run.

import DSnoTCore
import SafeTensors

/// Measures one decoder block's forward pass on random hidden states and, in the same run, plain
/// `cblas_sgemm` on exactly the GEMMs the block performs (its linear layers and, per head, `Q Kᵀ`
/// and `P V`). `efficiency` = sgemm time / block time: the share of the GEMM-bound peak the block
/// reaches once norms, RoPE, softmax, activations, copies and the tap overhead are added.
///
/// ```swift
/// let report = try ForwardBenchmark.run(model: model, block: 0, sequenceLength: 512, repetitions: 5)
/// print(report.tokensPerSecond, report.efficiency)
/// ```
enum ForwardBenchmark {
    /// What one measurement found.
    struct Report: Sendable, Equatable {
        var sequenceLength: Int
        var repetitions: Int
        /// GEMM floating-point operations of one block forward (`2·m·n·k` summed).
        var flopsPerForward: Double
        /// Best-of-`repetitions` wall time of one block forward.
        var forwardSeconds: Double
        /// Best-of-`repetitions` wall time of the same GEMMs through `cblas_sgemm` alone.
        var sgemmSeconds: Double

        var tokensPerSecond: Double { Double(sequenceLength) / forwardSeconds }
        var forwardGFLOPS: Double { flopsPerForward / forwardSeconds / 1e9 }
        var sgemmGFLOPS: Double { flopsPerForward / sgemmSeconds / 1e9 }
        /// `forwardGFLOPS / sgemmGFLOPS`.
        var efficiency: Double { sgemmSeconds / forwardSeconds }
    }

    /// One GEMM `(m, k) × (k, n)`, with `B` stored `(n, k)` when `transposeB` (as the block stores it).
    struct Shape: Equatable {
        var m: Int
        var n: Int
        var k: Int
        var transposeB: Bool
    }

    /// The GEMMs of one block forward over `length` tokens: each linear `(L, in) × (in, out)`, then per
    /// key/value head and causal row tile `[r0, r1)` (its `G` query heads stacked):
    /// `(G·T, d) × (d, r1)` and `(G·T, r1) × (r1, d)`.
    static func shapes(model: any DecoderModel, block: Int, length: Int) -> [Shape] {
        let linears = model.prunableLinearLayers(block: block).map {
            Shape(m: length, n: $0.outFeatures, k: $0.inFeatures, transposeB: true)
        }
        let attention = CausalAttention.gemmShapes(
            length: length,
            heads: model.attentionHeads,
            kvHeads: model.keyValueHeads,
            headDim: model.headDim
        ).map { Shape(m: $0.m, n: $0.n, k: $0.k, transposeB: $0.transposeB) }
        return linears + attention
    }

    /// Runs the measurement.
    /// - Parameters:
    ///   - block: which block to load (its real weights).
    ///   - sequenceLength: `L`.
    ///   - repetitions: timed runs of each side, alternating; the best is kept (1 warm-up run each, untimed).
    ///   - sequences: sequences per timed run. Above 1 they run as the pruner and `runBlocks` run them,
    ///     one per core (`DecoderBlock.forward(sequences:)`), against the same GEMMs that many times (multi-threaded
    ///     sgemm); the report is per sequence.
    /// - Throws: `ModelLoadError` from loading the block.
    static func run(
        model: any DecoderModel,
        block: Int,
        sequenceLength: Int,
        repetitions: Int,
        sequences: Int = 1
    ) throws -> Report {
        precondition(sequences > 0, "ForwardBenchmark: at least one sequence")
        precondition(sequenceLength > 0 && repetitions > 0, "ForwardBenchmark: positive length and repetitions")
        let decoder = try model.loadBlock(block)
        var rng = SplitMix64(seed: 1)
        let hidden = Matrix(
            rows: sequenceLength,
            columns: model.hiddenSize,
            storage: (0..<(sequenceLength * model.hiddenSize)).map { _ in rng.normal() }
        )
        let shapes = shapes(model: model, block: block, length: sequenceLength)
        let flops = shapes.reduce(0.0) { $0 + 2 * Double($1.m) * Double($1.n) * Double($1.k) }
        // Operands sized for the largest shape, filled with the same kind of values.
        let operands = Operands(for: shapes, rng: &rng)
        let runSGEMM = { for _ in 0..<sequences { operands.sgemm(shapes) } }
        // One sequence runs alone (multi-threaded BLAS); more run one per core.
        let runForward = {
            var batch = [Matrix](repeating: hidden, count: sequences)
            decoder.forward(sequences: &batch)
        }
        let (forward, sgemm) = bestTimes(repetitions, runForward, runSGEMM)
        return Report(
            sequenceLength: sequenceLength,
            repetitions: repetitions,
            flopsPerForward: flops,
            forwardSeconds: forward / Double(sequences),
            sgemmSeconds: sgemm / Double(sequences)
        )
    }

    /// Random operands sized for the largest of some shapes, and `cblas_sgemm` (or `BF16GEMM.product` on
    /// their bfloat16 roundings) on each shape in turn.
    final class Operands {
        let a: [Float]
        let b: [Float]
        var c: [Float]

        init(for shapes: some Collection<Shape>, rng: inout SplitMix64) {
            let largest = shapes.reduce(0) { max($0, $1.m * $1.k, $1.k * $1.n, $1.m * $1.n) }
            a = (0..<largest).map { _ in rng.normal() }
            b = (0..<largest).map { _ in rng.normal() }
            c = [Float](repeating: 0, count: largest)
            (a16, b16) = (FloatConversion.encode(a, as: .bf16), FloatConversion.encode(b, as: .bf16))
        }

        let a16: [UInt8]
        let b16: [UInt8]

        /// The shapes with bfloat16 inputs and fp32 sums, one thread (the attention's products in bf16).
        func bf16(_ shapes: some Collection<Shape>) throws {
            try a16.withUnsafeBytes { pa in
                try b16.withUnsafeBytes { pb in
                    try c.withUnsafeMutableBufferPointer { pc in
                        for s in shapes {
                            try BF16GEMM.product(
                                m: s.m,
                                n: s.n,
                                k: s.k,
                                a: pa.baseAddress!,
                                b: pb.baseAddress!,
                                transposeB: s.transposeB,
                                c: pc.baseAddress!,
                                ldc: s.n,
                                threads: 1
                            )
                        }
                    }
                }
            }
        }

        func sgemm(_ shapes: some Collection<Shape>) {
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        for s in shapes {
                            Linalg.gemm(
                                m: s.m,
                                n: s.n,
                                k: s.k,
                                a: pa.baseAddress,
                                lda: s.k,
                                b: pb.baseAddress,
                                ldb: s.transposeB ? s.k : s.n,
                                transposeB: s.transposeB,
                                c: pc.baseAddress,
                                ldc: s.n
                            )
                        }
                    }
                }
            }
        }
    }

    /// The fastest of `count` timed calls of each body, after one untimed warm-up call each. The two
    /// bodies alternate so that load from other processes on a shared machine hits both alike.
    static func bestTimes(_ count: Int, _ first: () -> Void, _ second: () -> Void) -> (Double, Double) {
        first()
        second()
        let clock = ContinuousClock()
        func seconds(_ body: () -> Void) -> Double {
            let elapsed = clock.measure(body)
            return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        }
        var best = (Double.infinity, Double.infinity)
        for _ in 0..<count {
            best.0 = min(best.0, seconds(first))
            best.1 = min(best.1, seconds(second))
        }
        return best
    }
}
