// SPDX-License-Identifier: Apache-2.0
// BF16PruneBenchmark: the same Wanda prune of SmolLM2-135M with fp32 and with bf16 forward passes (issue 14 §1).

import DSnoTCore
import Foundation
import SafeTensors

/// Prunes the SmolLM2-135M fp32 fixture with Wanda 50 % (N = 32, L = 512 from `calib.txt`, no DSnoT, dense
/// output) twice, as fresh `dsnotctl prune --json` children, `--compute fp32` then `--compute bf16`, each
/// evaluated on the first 64 windows of 512 tokens of `eval.txt` in its own format. Three ratios, the aims
/// of issue 14:
///
/// - `bf16.prune_time_vs_fp32`: the bf16 pipeline's `timings.total` over fp32's (aim ≤ 0.5);
/// - `bf16.pruned_perplexity_vs_fp32`: the bf16-pruned model's perplexity over the fp32-pruned one's
///   (aim within 3 %);
/// - `bf16.wanda_mask_agreement`: the share of weights pruned by both runs or kept by both (aim ≥ 0.98).
///
/// Skipped with a message without the fixtures, `dsnotctl`, or a CPU (and process) that runs bf16.
enum BF16PruneBenchmark {
    static let benchmark = Benchmark(name: "bf16-prune") { try run() }

    struct Run {
        var wall: Double
        var total: Double
        var dense: Double
        var pruned: Double
        var compute: String
        var layers: [String]
    }

    static func run() throws {
        let fixtures = ProcessInfo.processInfo.environment["DSNOT_BENCH_FIXTURES"] ?? ".fixtures"
        let input = fixtures + "/smollm2-135m"
        let dsnotctl = ChildProcess.executableDirectory() + "/dsnotctl"
        guard FileManager.default.fileExists(atPath: input + "/model.safetensors"),
            FileManager.default.fileExists(atPath: fixtures + "/text/calib.txt"),
            FileManager.default.fileExists(atPath: fixtures + "/text/eval.txt")
        else {
            print("bf16-prune: skipped (no fixtures at \(fixtures); run scripts/fixtures.sh)")
            return
        }
        guard FileManager.default.isExecutableFile(atPath: dsnotctl) else {
            print("bf16-prune: skipped (no \(dsnotctl); build the dsnotctl product)")
            return
        }
        if let notice = ComputeFormat.bf16.effective.notice {
            print("bf16-prune: skipped (\(notice))")
            return
        }
        let scratch = try ChildProcess.temporaryDirectory("dsnot-bench-bf16")
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        func prune(_ compute: String) throws -> Run {
            let child = try ChildProcess.run(
                [
                    dsnotctl, "prune", input, scratch + "/" + compute, "--method", "wanda", "--sparsity", "0.5",
                    "--no-dsnot", "--calib-text", fixtures + "/text/calib.txt", "--nsamples", "32", "--seqlen", "512",
                    "--format", "dense", "--eval-text", fixtures + "/text/eval.txt", "--eval-seqlen", "512",
                    "--eval-windows", "64", "--compute", compute, "--json",
                ],
                stdoutPath: scratch + "/\(compute).json"
            )
            let data = try Data(contentsOf: URL(fileURLWithPath: scratch + "/\(compute).json"))
            guard let report = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                let timings = report["timings"] as? [String: Any], let total = timings["total"] as? Double,
                let perplexity = report["perplexity"] as? [String: Any],
                let dense = perplexity["dense"] as? Double, let pruned = perplexity["pruned"] as? Double,
                let layers = report["layers"] as? [[String: Any]]
            else { throw PruneBenchmark.Report.Missing(path: scratch + "/\(compute).json") }
            return Run(
                wall: child.wallSeconds,
                total: total,
                dense: dense,
                pruned: pruned,
                compute: report["compute"] as? String ?? "?",
                layers: layers.compactMap { $0["name"] as? String }
            )
        }
        let fp32 = try prune("fp32")
        let bf16 = try prune("bf16")

        // Masks: a weight is pruned where the dense output holds zero (Wanda keeps no zero weight in SmolLM2's
        // linears, so a zero is a pruned weight in both runs alike).
        let (a, b) = (try Checkpoint(directory: scratch + "/fp32"), try Checkpoint(directory: scratch + "/bf16"))
        var agreeing = 0
        var total = 0
        var worst = (name: "", share: 1.0)
        for name in fp32.layers {
            let (x, y) = (try a.floats(named: name), try b.floats(named: name))
            let same = zip(x, y).reduce(0) { $0 + (($1.0 == 0) == ($1.1 == 0) ? 1 : 0) }
            agreeing += same
            total += x.count
            let share = Double(same) / Double(max(1, x.count))
            if share < worst.share { worst = (name, share) }
        }
        let f = { (x: Double) in BenchmarkSupport.format(x, digits: 3) }
        BenchmarkSupport.report(
            "bf16.smollm2_wanda_50_prune_time_vs_fp32",
            ratio: bf16.total / fp32.total,
            "bf16 pipeline time",
            over: "fp32 pipeline time",
            details: [
                "pipeline \(f(bf16.total)) s vs \(f(fp32.total)) s (report.compute \(bf16.compute) / \(fp32.compute)); "
                    + "child wall with the 64-window evaluation \(f(bf16.wall)) s vs \(f(fp32.wall)) s; aim ≤ 0.5",
                "load average \(QualityBenchmark.loadAverage())",
            ]
        )
        BenchmarkSupport.report(
            "bf16.smollm2_wanda_50_pruned_perplexity_vs_fp32",
            ratio: bf16.pruned / fp32.pruned,
            "bf16-pruned perplexity (bf16 evaluation)",
            over: "fp32-pruned perplexity (fp32 evaluation)",
            details: [
                "pruned \(f(bf16.pruned)) vs \(f(fp32.pruned)); dense \(f(bf16.dense)) (bf16) vs \(f(fp32.dense)) (fp32); "
                    + "64 windows of 512 tokens of eval.txt; aim within 3 %"
            ]
        )
        BenchmarkSupport.report(
            "bf16.smollm2_wanda_50_mask_agreement",
            ratio: Double(agreeing) / Double(max(1, total)),
            "weights pruned by both or kept by both",
            over: "prunable weights",
            details: [
                "\(total) weights in \(fp32.layers.count) layers; lowest layer \(worst.name) \(f(worst.share)); aim ≥ 0.98"
            ]
        )
    }
}
