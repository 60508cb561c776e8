// SPDX-License-Identifier: Apache-2.0
// ResumeBenchmark: what resume points cost per block (bytes, seconds) and in prune wall time.

import DSnoTCore
import DSnoTPipeline
import Foundation
import Logging
import SafeTensors
import SparseFormat

/// Prunes a checkpoint in process with `PruneJob` twice, without and with resume points (Wanda 50 % +
/// DSnoT's default profile, whose dense-path states are part of each point; sparse output), then once
/// interrupted at the middle block and resumed, and reports:
///
/// - `resume.wall_with_vs_without`: prune wall with resume points over without (best of two each,
///   alternated; aim ≤ 1.05).
/// - per point: bytes (hidden states + dense states + manifest) and seconds (journal fsync + point
///   written, fsynced, renamed; from the pipeline's `Resume point written` log), the journal's bytes.
///
/// Environment: `DSNOT_BENCH_RESUME_MODEL` (a checkpoint directory) and `DSNOT_BENCH_RESUME_CALIB` (its
/// `input_ids` token file); `scripts/bench-resume.sh` makes a SmolLM2-shaped one (hidden 576, SwiGLU
/// 1536, 9 heads / 3 KV heads, N = 32, L = 512). Skipped when unset. On demand: `dsnot-bench resume`.
enum ResumeBenchmark {
    static let benchmark = Benchmark(name: "resume") { try run() }

    /// Collects the `Resume point written` entries the pipeline logs at debug level.
    final class PointLog: LogHandler, @unchecked Sendable {
        // @unchecked: `points` is only touched under `lock`.
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        private let lock = NSLock()
        private var points: [(bytes: Int, seconds: Double)] = []

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            guard event.message.description == "Resume point written",
                let bytes = event.metadata?["resume.bytes"].flatMap({ Int("\($0)") }),
                let seconds = event.metadata?["resume.seconds"].flatMap({ Double("\($0)") })
            else { return }
            lock.withLock { points.append((bytes, seconds)) }
        }

        func take() -> [(bytes: Int, seconds: Double)] {
            lock.withLock {
                defer { points = [] }
                return points
            }
        }
    }

    static func run() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let input = environment["DSNOT_BENCH_RESUME_MODEL"], let tokens = environment["DSNOT_BENCH_RESUME_CALIB"]
        else {
            print(
                "resume: skipped (set DSNOT_BENCH_RESUME_MODEL and DSNOT_BENCH_RESUME_CALIB: scripts/bench-resume.sh)"
            )
            return
        }
        let recipe = Recipe(
            method: .wanda,
            pattern: .unstructured(0.5),
            dsnot: DSnoT.Profile.default.settings(after: .wanda),
            calibration: .init(source: .tokens, path: tokens, sequences: 32, sequenceLength: 512)
        )
        let job = try PruneJob(
            input: input,
            options: PruneJobOptions(recipe: recipe, format: .sparse(level: .fast, bytePlanes: false))
        )
        let handler = PointLog()
        let logger = Logger(label: "dsnot-bench.resume") { _ in handler }
        let scratch = try ChildProcess.temporaryDirectory("dsnot-bench-resume")
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        func timed(_ name: String, resume: Bool, stopAt: Int? = nil) throws -> (seconds: Double, report: PruneReport?) {
            let directory = scratch + "/" + name
            if !FileManager.default.fileExists(atPath: directory) {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            var stop = false
            let start = BenchmarkSupport.now()
            do {
                let result = try job.run(
                    into: directory,
                    resume: resume,
                    logger: logger,
                    progress: {
                        if case .pruning(let p) = $0, let stopAt, p.block == stopAt, p.phase == .statistics {
                            stop = true
                        }
                    },
                    isCancelled: { stop }
                )
                return (BenchmarkSupport.now() - start, result.report)
            } catch PipelineError.cancelled {
                return (BenchmarkSupport.now() - start, nil)
            }
        }

        // Alternated (without, with, with, without) and the faster of each kept: on a shared machine the
        // load drifts between runs by more than what is measured.
        var withoutRuns: [(seconds: Double, report: PruneReport?)] = []
        var withRuns: [(seconds: Double, report: PruneReport?)] = []
        var points: [(bytes: Int, seconds: Double)] = []
        for resume in [false, true, true, false] {
            try? FileManager.default.removeItem(atPath: scratch + "/run")
            let run = try timed("run", resume: resume)
            if resume { withRuns.append(run) } else { withoutRuns.append(run) }
            points += handler.take()
        }
        guard let without = withoutRuns.min(by: { $0.seconds < $1.seconds }),
            let with = withRuns.min(by: { $0.seconds < $1.seconds })
        else { return }
        let blocks = with.report?.blockCount ?? 0
        let middle = blocks / 2
        let interrupted = try timed("interrupted", resume: true, stopAt: middle)
        _ = handler.take()
        let resumed = try timed("interrupted", resume: true)
        // The staging directory's extra bytes with resume: the journal (every pruned weight) + two points.
        let extra = try job.estimate(resume: true).outputBytes - job.estimate().outputBytes
        let f = { (x: Double) in BenchmarkSupport.format(x, digits: 2) }
        let bytes = points.map(\.bytes).max() ?? 0
        let seconds = points.map(\.seconds)
        let mean = seconds.isEmpty ? 0 : seconds.reduce(0, +) / Double(seconds.count)
        let perBlock = without.seconds / Double(max(blocks, 1))
        BenchmarkSupport.report(
            "resume.wall_with_vs_without",
            ratio: with.seconds / without.seconds,
            "prune wall with resume points",
            over: "without",
            details: [
                "\(blocks) blocks, N = 32, L = 512: wall \(f(with.seconds)) s with, \(f(without.seconds)) s without "
                    + "(best of 2 each, alternated; \(f(perBlock)) s per block without)",
                "per point: \(bytes) bytes (\(f(Double(bytes) / 1_048_576)) MiB), \(f(mean * 1000)) ms mean, "
                    + "\(f((seconds.max() ?? 0) * 1000)) ms max over \(seconds.count) points",
                "staging needs \(extra) bytes more with resume (\(f(Double(extra) / 1_048_576)) MiB: journal + 2 points)",
                "interrupted at block \(middle) after \(f(interrupted.seconds)) s; resumed run "
                    + "\(f(resumed.seconds)) s (resumed_from_block \(resumed.report?.resumedFromBlock.map(String.init) ?? "none"))",
            ]
        )
    }
}
