// SPDX-License-Identifier: Apache-2.0
// ScaleForwardBenchmark: one block-sequence forward of a (7B-shaped) checkpoint at the paper's L, fp32 and bf16.

import DSnoTCore
import DSnoTSupport
import Foundation

/// The measured input of `scripts/bench-scale.sh`'s projection (issue 14 §4): block 0 of the checkpoint
/// in `DSNOT_SCALE_MODEL` runs `Parallel.workers` sequences of `DSNOT_SCALE_LENGTH` tokens (default 2048,
/// the paper's L) at once, one per core, as the pipeline's passes do; the cost of one block-sequence is
/// that wall time over the sequences (best of 2, after a warm-up), in fp32 and in bf16. Prints
/// `scale.block_sequence_seconds_<format>: <seconds>` lines the script reads, and the bf16 speed-up as a
/// ratio. On demand only (`dsnot-bench scale-forward`).
enum ScaleForwardBenchmark {
    static let benchmark = Benchmark(name: "scale-forward") { try run() }

    static func run() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let directory = environment["DSNOT_SCALE_MODEL"] else {
            print("scale-forward: skipped (set DSNOT_SCALE_MODEL to a checkpoint directory)")
            return
        }
        let length = environment["DSNOT_SCALE_LENGTH"].flatMap(Int.init) ?? 2048
        let model = try ModelRegistry.load(directory: directory)
        let sequences = Parallel.workers
        var rng = SplitMix64(seed: 3)
        let hidden = Matrix(
            rows: length,
            columns: model.hiddenSize,
            storage: (0..<(length * model.hiddenSize)).map { _ in rng.normal() }
        )
        var seconds: [ComputeFormat: Double] = [:]
        for format in [ComputeFormat.fp32, .bf16] {
            var block = try model.loadBlock(0)
            block.setCompute(format.effective.format)
            var batch = [Matrix](repeating: hidden, count: sequences)
            block.forward(sequences: &batch)  // warm-up (oneDNN builds its kernels)
            let best = BenchmarkSupport.bestOf(2) {
                var batch = [Matrix](repeating: hidden, count: sequences)
                block.forward(sequences: &batch)
            }
            seconds[format] = best / Double(sequences)
            print(
                "scale.block_sequence_seconds_\(format.rawValue): \(BenchmarkSupport.format(best / Double(sequences), digits: 4))"
                    + " (L = \(length), \(sequences) sequences one per core, ran \(format.effective.format.rawValue))"
            )
        }
        if let fp32 = seconds[.fp32], let bf16 = seconds[.bf16] {
            BenchmarkSupport.report(
                "scale.block_forward_L\(length)_bf16_vs_fp32",
                ratio: fp32 / bf16,
                "fp32 block-sequence time",
                over: "bf16 block-sequence time",
                details: ["\(directory), block 0, hidden \(model.hiddenSize)"]
            )
        }
    }
}
