// SPDX-License-Identifier: Apache-2.0
// ForwardBenchmark tests: the GEMM accounting on a tiny model; the SmolLM2 measurement is opt-in.

import DSnoTCore
import Foundation
import Testing

@testable import dsnot_bench

@Suite struct ForwardBenchmarkTests {
    /// llama_gqa_untied: hidden 64, 4 heads of 32 (q width 128), 2 KV heads, MLP 128.
    @Test func flopCountIsTheBlocksGEMMs() throws {
        let model = try ModelRegistry.load(directory: BenchFixtures.model("llama_gqa_untied"))
        let report = try ForwardBenchmark.run(model: model, block: 0, sequenceLength: 16, repetitions: 1)
        let linear = 64 * 128 + 64 * 64 + 64 * 64 + 128 * 64 + 3 * 64 * 128  // Σ out·in
        let attention = 4 * 2 * 16 * 32  // per head: Q Kᵀ (16·16·32) and P V (16·32·16), each L·L·d
        #expect(report.flopsPerForward == 2 * Double(16 * linear + 16 * attention))
        #expect(report.forwardSeconds > 0 && report.sgemmSeconds > 0 && report.efficiency.isFinite)
    }

    /// `make bench-forward` (or `DSNOT_BENCH_FIXTURES=.fixtures`): SmolLM2-135M block 0 at L = 512 and 2048.
    /// Prints tokens/s, GFLOP/s and the share of the same-shape sgemm rate (target ≥ 0.7 at L = 512).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["DSNOT_BENCH_FIXTURES"] != nil))
    func smolLM2BlockThroughput() throws {
        let root = try #require(ProcessInfo.processInfo.environment["DSNOT_BENCH_FIXTURES"])
        let model = try ModelRegistry.load(directory: "\(root)/smollm2-135m")
        for length in [128, 512, 2048] {
            let r = try ForwardBenchmark.run(model: model, block: 0, sequenceLength: length, repetitions: 5)
            print(
                String(
                    format: "forward SmolLM2 block 0 L=%d: %.0f tokens/s, %.1f GFLOP/s, sgemm %.1f GFLOP/s, ratio %.2f",
                    length,
                    r.tokensPerSecond,
                    r.forwardGFLOPS,
                    r.sgemmGFLOPS,
                    r.efficiency
                )
            )
            #expect(r.efficiency > 0)
        }
    }
}
