// SPDX-License-Identifier: Apache-2.0
// PruneBenchmark: a whole `dsnotctl prune` of SmolLM2-135M against its matmul-bound minimum, DSnoT's share, peak RSS.

import DSnoTCore
import Foundation

/// Prunes the SmolLM2-135M fp32 fixture with Wanda + DSnoT at 60 % (N = 32, L = 512 from `calib.txt`)
/// by running `dsnotctl prune --json` as a fresh child process, and reports three ratios:
///
/// - `prune.wall_vs_sgemm_minimum`: the child's wall time over the matmul-bound minimum, i.e. the
///   GEMMs of the two forward passes (statistics over every block, propagation over all but the last;
///   `N` sequences each) at the `cblas_sgemm` rate measured in this run at exactly those shapes
///   (`ForwardBenchmark`, real block 0, L = 512; the best of a measurement before and after the child,
///   so the minimum is the lower one). Aim ≤ 1.5. The statistics pass needs less than a full pass
///   (it stops at the last linear layer's input); the ratio against that smaller minimum is printed too.
/// - `prune.dsnot_share`: `report.timings.dsnot / report.timings.total`. Aim ≤ 0.05.
/// - `prune.memory_estimate_vs_peak_rss`: `report.memory_estimate_bytes` over the child's
///   `ru_maxrss`. Must lie in [1.0, 1.3].
///
/// Needs the fixtures (`DSNOT_BENCH_FIXTURES`, default `.fixtures`) and `dsnotctl` built next to
/// `dsnot-bench` (`make bench` builds both); skipped with a message when either is missing.
enum PruneBenchmark {
    static let sequences = 32
    static let length = 512

    static let benchmark = Benchmark(name: "prune") { try run() }

    static func run() throws {
        let fixtures = ProcessInfo.processInfo.environment["DSNOT_BENCH_FIXTURES"] ?? ".fixtures"
        let input = fixtures + "/smollm2-135m"
        let dsnotctl = ChildProcess.executableDirectory() + "/dsnotctl"
        guard FileManager.default.fileExists(atPath: input + "/model.safetensors"),
            FileManager.default.fileExists(atPath: fixtures + "/text/calib.txt")
        else {
            print("prune: skipped (no fixtures at \(fixtures); run scripts/fixtures.sh)")
            return
        }
        guard FileManager.default.isExecutableFile(atPath: dsnotctl) else {
            print("prune: skipped (no \(dsnotctl); build the dsnotctl product)")
            return
        }

        let model = try ModelRegistry.load(directory: input)
        let before = try ForwardBenchmark.run(model: model, block: 0, sequenceLength: length, repetitions: 3)

        let scratch = try ChildProcess.temporaryDirectory("dsnot-bench-prune")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let child = try ChildProcess.run(
            [
                dsnotctl, "prune", input, scratch + "/out", "--method", "wanda", "--sparsity", "0.6",
                "--calib-text", fixtures + "/text/calib.txt", "--nsamples", "\(sequences)", "--seqlen", "\(length)",
                "--json",
            ],
            stdoutPath: scratch + "/report.json"
        )
        let after = try ForwardBenchmark.run(model: model, block: 0, sequenceLength: length, repetitions: 3)

        let report = try Report(path: scratch + "/report.json")
        let sgemmPerBlockSequence = min(before.sgemmSeconds, after.sgemmSeconds)
        let forwardPasses = sequences * (2 * model.blockCount - 1)
        let minimum = sgemmPerBlockSequence * Double(forwardPasses)
        let gflops = before.flopsPerForward / sgemmPerBlockSequence / 1e9
        // The statistics pass stops at the last linear layer's input (its dense output is never read),
        // so the GEMMs the pipeline needs are fewer than two full passes: the same ratio against those.
        let last = model.prunableLinearLayers(block: 0).last.map {
            2.0 * Double(length * $0.outFeatures * $0.inFeatures)
        }
        let skipped =
            (last ?? 0) / before.flopsPerForward * sgemmPerBlockSequence * Double(sequences * model.blockCount)
        let needed = minimum - skipped
        let f = { (x: Double) in BenchmarkSupport.format(x, digits: 2) }

        BenchmarkSupport.report(
            "prune.smollm2_wanda_dsnot_60_wall_vs_sgemm_minimum",
            ratio: child.wallSeconds / minimum,
            "dsnotctl prune wall time",
            over: "GEMMs of the two forward passes at the same-shape sgemm rate",
            details: [
                "wall \(f(child.wallSeconds)) s (CPU \(f(child.cpuSeconds)) s); pipeline total \(f(report.total)) s; "
                    + "minimum \(f(minimum)) s = \(forwardPasses) block-sequence forwards × \(f(sgemmPerBlockSequence * 1000)) ms "
                    + "(sgemm \(f(gflops)) GFLOP/s)",
                "pipeline total / minimum = \(f(report.total / minimum)); phases (s): statistics \(f(report.statistics)), "
                    + "propagation \(f(report.propagation)), base \(f(report.base)), dsnot \(f(report.dsnot)), "
                    + "writing \(f(report.writing)) (waited for \(f(report.writingWait))), copy \(f(report.copy)), embedding \(f(report.embedding))",
                "outside the pipeline (load, tokenize calib.txt, publish): \(f(child.wallSeconds - report.total)) s",
                "the statistics pass skips the last linear layer (\(f(skipped)) s of the minimum): "
                    + "wall / GEMMs the pipeline needs = \(f(child.wallSeconds / needed))",
                "load average \(QualityBenchmark.loadAverage())",
            ]
        )
        BenchmarkSupport.report(
            "prune.smollm2_wanda_dsnot_60_dsnot_share",
            ratio: report.dsnot / report.total,
            "report.timings.dsnot",
            over: "report.timings.total",
            details: ["aim ≤ 0.05"]
        )
        BenchmarkSupport.report(
            "prune.smollm2_wanda_dsnot_60_memory_estimate_vs_peak_rss",
            ratio: Double(report.memoryEstimate) / Double(child.peakResidentBytes),
            "report.memory_estimate_bytes",
            over: "child peak RSS (ru_maxrss)",
            details: [
                "estimate \(report.memoryEstimate >> 20) MiB, peak RSS \(child.peakResidentBytes >> 20) MiB; "
                    + "must lie in [1.0, 1.3]"
            ]
        )
    }

    /// The fields of `dsnotctl prune --json` this benchmark reads.
    struct Report {
        var total, statistics, propagation, base, dsnot, writing, writingWait, copy, embedding: Double
        var memoryEstimate: Int

        struct Missing: Error, CustomStringConvertible {
            var path: String
            var description: String { "\(path): not a dsnotctl prune report (timings / memory_estimate_bytes missing)" }
        }

        init(path: String) throws {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                let timings = object["timings"] as? [String: Any],
                let estimate = object["memory_estimate_bytes"] as? Int
            else { throw Missing(path: path) }
            func value(_ key: String) -> Double { (timings[key] as? Double) ?? 0 }
            total = value("total")
            statistics = value("statistics")
            propagation = value("propagation")
            base = value("base")
            dsnot = value("dsnot")
            writing = value("writing")
            writingWait = value("writing_wait")
            copy = value("copy")
            embedding = value("embedding")
            memoryEstimate = estimate
        }
    }
}
