// SPDX-License-Identifier: Apache-2.0
// QualityBenchmark: SmolLM2-135M perplexity after each pruning recipe, in process (`make bench-quality`).

import DSnoTCore
import Foundation
import Logging
import SafeTensors

/// The quality table of `docs/results.md`: SmolLM2-135M (fp32 fixture) pruned by every base pruner
/// with and without DSnoT at several sparsities, evaluated by perplexity on the evaluation tokens.
///
/// The model, the calibration windows (N = 32, L = 512 from `calib.txt`, seed 0) and the dense
/// perplexity are computed once; each recipe prunes into a `TensorOverlay` (nothing is written to
/// disk) and the overlay is evaluated on the first `windows` windows of L = 512. Rows run in priority
/// order and the markdown file is rewritten after every row, so an interrupted run keeps what finished.
///
/// Environment: `DSNOT_BENCH_FIXTURES` (default `.fixtures`), `DSNOT_QUALITY_WINDOWS` (default 16),
/// `DSNOT_QUALITY_OUT` (default `docs/results.md`), `DSNOT_QUALITY_ONLY` (comma-separated row labels).
enum QualityBenchmark {
    static let benchmark = Benchmark(name: "quality") { try run() }

    /// One row of the table.
    struct Configuration: Sendable {
        var label: String
        var recipe: Recipe
    }

    /// One finished row.
    struct Row: Sendable {
        var configuration: Configuration
        var perplexity: Double
        var baseError: Double?
        var finalError: Double?
        var swaps: Int
        var sparsity: Double
        var seconds: Double
    }

    static let calibrationSequences = 32
    static let sequenceLength = 512

    /// Every configuration, most informative first (each base pruner with and without DSnoT at 60 %,
    /// DSnoT's variants at 60 %, then the sparsity sweep), so a run cut short still answers the main question.
    static func configurations() -> [Configuration] {
        var list: [Configuration] = []
        func add(_ method: Recipe.Method, _ pattern: SparsityPattern, _ dsnot: DSnoT.Settings?, _ suffix: String) {
            let patternLabel: String
            switch pattern {
            case .unstructured(let ratio): patternLabel = "\(Int((ratio * 100).rounded())) %"
            case .nOfM(let n, let m): patternLabel = "\(n):\(m)"
            }
            list.append(
                Configuration(
                    label: "\(method.rawValue) \(patternLabel)\(suffix)",
                    recipe: Recipe(method: method, pattern: pattern, dsnot: dsnot)
                )
            )
        }
        // SparseGPT + DSnoT uses D9's defaults (true-error acceptance), as `dsnotctl` does.
        func reference(_ method: Recipe.Method) -> DSnoT.Settings {
            method == .sparsegpt ? .afterSparseGPT : .reference
        }
        func noSkip(_ method: Recipe.Method) -> DSnoT.Settings {
            var settings = reference(method)
            settings.skip = []
            return settings
        }
        let methods: [Recipe.Method] = [.wanda, .magnitude, .sparsegpt]
        let main = SparsityPattern.unstructured(0.6)
        for method in methods {
            add(method, main, nil, "")
            add(method, main, reference(method), " + DSnoT")
        }
        add(.wanda, main, noSkip(.wanda), " + DSnoT (no skip)")
        add(.wanda, main, DSnoT.Settings(maxCycles: .scaled), " + DSnoT (max_cycles = scaled)")
        add(.wanda, main, DSnoT.Settings(accept: .trueError), " + DSnoT (accept = true-error)")
        add(.magnitude, main, noSkip(.magnitude), " + DSnoT (no skip)")
        add(.sparsegpt, main, noSkip(.sparsegpt), " + DSnoT (no skip)")
        for pattern in [SparsityPattern.unstructured(0.5), .unstructured(0.7), .nOfM(2, 4)] {
            for method in methods {
                add(method, pattern, nil, "")
                add(method, pattern, reference(method), " + DSnoT")
            }
        }
        return list
    }

    static func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let fixtures = environment["DSNOT_BENCH_FIXTURES"] ?? ".fixtures"
        let windows = Int(environment["DSNOT_QUALITY_WINDOWS"] ?? "") ?? 16
        let output = environment["DSNOT_QUALITY_OUT"] ?? "docs/results.md"
        let only = environment["DSNOT_QUALITY_ONLY"].map { Set($0.split(separator: ",").map(String.init)) }
        let modelDirectory = fixtures + "/smollm2-135m"
        let started = Date()
        let loadStart = loadAverage()

        let checkpoint = try Checkpoint(directory: modelDirectory)
        let model = try ModelRegistry.load(directory: modelDirectory)
        let config = try Data(contentsOf: URL(fileURLWithPath: modelDirectory + "/config.json"))
        let tokenizer = try Tokenizer(contentsOf: modelDirectory + "/tokenizer.json")
        let calibrationText = try String(contentsOfFile: fixtures + "/text/calib.txt", encoding: .utf8)
        let calibration = try CalibrationSet(
            tokens: try tokenizer.encode(calibrationText),
            count: calibrationSequences,
            length: sequenceLength,
            seed: 0
        )
        let evalTokens = try SafeTensorsFile(path: fixtures + "/text/eval-tokens-smollm2.safetensors")
            .integers(named: "input_ids")

        var clock = BenchmarkSupport.now()
        let dense = try Perplexity.evaluate(
            model: model,
            tokens: evalTokens,
            sequenceLength: sequenceLength,
            maxWindows: windows
        ).perplexity
        print(
            "quality: dense perplexity \(BenchmarkSupport.format(dense, digits: 4)) on \(windows) windows "
                + "(\(BenchmarkSupport.format(BenchmarkSupport.now() - clock, digits: 1)) s)"
        )
        fflush(nil)  // every stream: rows show up in a redirected log as they finish

        var rows: [Row] = []
        let logger = Logger(label: "dsnot-bench.quality")
        for configuration in configurations() where only?.contains(configuration.label) ?? true {
            clock = BenchmarkSupport.now()
            let pruner = try SequentialPruner(recipe: configuration.recipe)
            let overlay = TensorOverlay(base: checkpoint)
            let report = try pruner.run(
                model: model,
                source: checkpoint,
                // Magnitude alone needs no data: no forward passes, and no error metric either.
                calibration: configuration.recipe.needsCalibration ? calibration : nil,
                sink: overlay,
                logger: logger
            )
            let pruned = try ModelRegistry.model(config: config, tensors: overlay)
            let perplexity = try Perplexity.evaluate(
                model: pruned,
                tokens: evalTokens,
                sequenceLength: sequenceLength,
                maxWindows: windows
            ).perplexity
            let row = Row(
                configuration: configuration,
                perplexity: perplexity,
                baseError: meanOf(report.layers.compactMap(\.baseRelativeError)),
                finalError: meanOf(report.layers.compactMap(\.finalRelativeError)),
                swaps: report.totals.dsnotSwaps,
                sparsity: report.totals.sparsity,
                seconds: BenchmarkSupport.now() - clock
            )
            rows.append(row)
            print("quality: " + markdownRow(row, dense: dense))
            fflush(nil)  // every stream: rows show up in a redirected log as they finish
            let document = markdown(
                rows: rows,
                dense: dense,
                windows: windows,
                started: started,
                loads: (loadStart, loadAverage()),
                pending: configurations().count - rows.count
            )
            try Data((document + preservedTail(of: output)).utf8).write(
                to: URL(fileURLWithPath: output),
                options: .atomic
            )
        }
    }

    /// Heading after which `docs/results.md` holds hand-maintained sections (the other benchmarks'
    /// figures); a rerun of the table keeps them.
    static let preservedHeading = "\n## Other benchmarks"

    /// The part of the existing file from `preservedHeading` on, or "".
    static func preservedTail(of path: String) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
            let range = text.range(of: preservedHeading)
        else { return "" }
        return String(text[range.lowerBound...])
    }

    static func meanOf(_ values: [Double]) -> Double? {
        values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
    }

    /// `/proc/loadavg`'s first three fields (the machine is shared; figures depend on it).
    static func loadAverage() -> String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    static func markdownRow(_ row: Row, dense: Double) -> String {
        func error(_ value: Double?) -> String { value.map { BenchmarkSupport.format($0, digits: 4) + "" } ?? "—" }
        let increase = 100 * (row.perplexity / dense - 1)
        return "| \(row.configuration.label) | \(BenchmarkSupport.format(row.sparsity * 100, digits: 2)) % "
            + "| \(BenchmarkSupport.format(row.perplexity, digits: 2)) "
            + "| +\(BenchmarkSupport.format(increase, digits: 1)) % "
            + "| \(error(row.baseError)) | \(error(row.finalError)) | \(row.swaps) "
            + "| \(BenchmarkSupport.format(row.seconds, digits: 0)) |"
    }

    static func markdown(
        rows: [Row],
        dense: Double,
        windows: Int,
        started: Date,
        loads: (String, String),
        pending: Int
    ) -> String {
        var text = """
            # Results: pruning quality on SmolLM2-135M

            Generated by `make bench-quality` (`dsnot-bench quality`), started \(started).
            Machine: shared 2-core VM; load average (1/5/15 min) \(loads.0) at the start, \(loads.1) at the last row.

            Model: SmolLM2-135M, fp32 fixture (`.fixtures/smollm2-135m`). Calibration: N = \(calibrationSequences)
            windows of L = \(sequenceLength) tokens sampled from `calib.txt` (seed 0). Perplexity: L = \(sequenceLength),
            non-overlapping windows of the evaluation tokens (`persuasion`), **first \(windows) windows only**
            (runtime; the dense model scores 41.96 on all 205 windows). Every row prunes the dense model
            from scratch in process (`SequentialPruner` into a `TensorOverlay`) and is evaluated on the same
            windows, so rows compare with each other and with the dense row, not with published figures.

            DSnoT uses the reference settings (`max_cycles` 50, ε = 0.1, γ = 1, `skip = mlp`, no acceptance
            test) after magnitude and Wanda, and D9's defaults (the same with `accept = true-error`) after
            SparseGPT. "Error" columns: the mean over the 210 prunable layers of the relative output
            reconstruction error `‖(W − Ŵ)X‖²_F / ‖WX‖²_F` of the base mask and of the final mask, from the
            pruning report (Gram matrix of the first 8 calibration sequences, or the full Hessian when the
            recipe accumulates one; "—" for magnitude alone, which runs without calibration data). Time:
            prune + evaluation of that row, seconds.

            | configuration | sparsity | perplexity | vs dense | error (base) | error (final) | DSnoT swaps | time (s) |
            |---|---|---|---|---|---|---|---|
            | dense | 0 % | \(BenchmarkSupport.format(dense, digits: 2)) | — | — | — | — | — |

            """
        for row in rows { text += markdownRow(row, dense: dense) + "\n" }
        if pending > 0 {
            text += "\n\(pending) configurations of the full list had not finished when this file was written.\n"
        }
        return text
    }
}
