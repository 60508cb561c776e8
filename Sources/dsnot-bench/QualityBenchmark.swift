// SPDX-License-Identifier: Apache-2.0
// QualityBenchmark: SmolLM2-135M perplexity after each pruning recipe, in process (`make bench-quality`).

import DSnoTCore
import Foundation
import Logging
import SafeTensors

/// The quality table of `docs/results.md`: SmolLM2-135M (fp32 fixture) pruned by Wanda and SparseGPT
/// at 50/60/70 % and 2:4, each alone, with DSnoT's reference profile, with its default profile, and
/// with OWL layer sparsity plus the default profile; every cell over several calibration seeds and
/// evaluated by perplexity on two texts (Persuasion, Northanger Abbey; neither is in `calib.txt`).
///
/// The model and the dense perplexities are computed once; each (recipe, seed) prunes into a
/// `TensorOverlay` (nothing is written to disk) and the overlay is evaluated on the first `windows`
/// windows of L = 512 of each text. Cells run in priority order and the markdown file is rewritten
/// after every pruning, so an interrupted run keeps what finished (a cell shows how many seeds it has).
///
/// Environment: `DSNOT_BENCH_FIXTURES` (default `.fixtures`), `DSNOT_QUALITY_WINDOWS` (default 16),
/// `DSNOT_QUALITY_SEEDS` (comma-separated, default `0,1,2`), `DSNOT_QUALITY_OUT` (default
/// `docs/results.md`), `DSNOT_QUALITY_ONLY` (comma-separated labels, run in that order), `DSNOT_QUALITY_SET` (`table`,
/// the default, or `candidates`: the DSnoT profile candidates that chose the default).
enum QualityBenchmark {
    static let benchmark = Benchmark(name: "quality") { try run() }

    /// One cell of the table: a recipe without its calibration seed.
    struct Configuration: Sendable {
        var label: String
        var recipe: Recipe
        /// The label of the row this one is compared with ("vs base").
        var base: String?
    }

    /// One pruning of one configuration with one seed.
    struct Run: Sendable {
        var seed: UInt64
        var perplexities: [Double]
        var sparsity: Double
        var swaps: Int
        var blocksChecked: Int
        var blocksKeptRefined: Int
        var checkSeconds: Double
        var owlSeconds: Double
        var blockSparsities: [Double]
        /// DSnoT's loss check: what it published (`nil` when none ran).
        var lossCheck: PruneReport.LossCheckSummary?
        var seconds: Double
    }

    static let calibrationSequences = 32
    static let sequenceLength = 512

    static func label(_ method: Recipe.Method, _ pattern: SparsityPattern) -> String {
        switch pattern {
        case .unstructured(let ratio): return "\(method.rawValue) \(Int((ratio * 100).rounded())) %"
        case .nOfM(let n, let m): return "\(method.rawValue) \(n):\(m)"
        }
    }

    /// The table, most informative first: Wanda (where the reference profile hurts), then SparseGPT;
    /// per cell base, reference DSnoT, default DSnoT, OWL + default DSnoT (unstructured only).
    static func table() -> [Configuration] {
        var list: [Configuration] = []
        let patterns: [SparsityPattern] = [.unstructured(0.6), .unstructured(0.5), .unstructured(0.7), .nOfM(2, 4)]
        for method in [Recipe.Method.wanda, .sparsegpt] {
            for pattern in patterns {
                let base = label(method, pattern)
                list.append(Configuration(label: base, recipe: Recipe(method: method, pattern: pattern)))
                // What `dsnot = true` runs with each profile: the default leaves SparseGPT's masks alone,
                // so its SparseGPT rows repeat the base rows (`run` copies them instead of pruning again).
                for profile in [DSnoT.Profile.reference, DSnoT.Profile.default] {
                    list.append(
                        Configuration(
                            label: "\(base) + DSnoT \(profile.rawValue)",
                            recipe: Recipe(
                                method: method,
                                pattern: pattern,
                                dsnot: profile.defaultSettings(after: method)
                            ),
                            base: base
                        )
                    )
                }
                if case .unstructured = pattern {
                    list.append(
                        Configuration(
                            label: "\(base) OWL + DSnoT \(DSnoT.Profile.default.rawValue)",
                            recipe: Recipe(
                                method: method,
                                pattern: pattern,
                                dsnot: DSnoT.Profile.default.defaultSettings(after: method),
                                layerSparsity: .owl
                            ),
                            base: base
                        )
                    )
                }
            }
        }
        return list
    }

    /// The DSnoT profile candidates measured to choose the default (docs/algorithms.md), after Wanda.
    static func candidates() -> [Configuration] {
        var list: [Configuration] = []
        let variants: [(String, DSnoT.Settings)] = [
            ("scaled", DSnoT.Settings(maxCycles: .scaled)),
            ("scaled; no skip", DSnoT.Settings(maxCycles: .scaled, skip: [])),
            ("scaled; block check", DSnoT.Settings(maxCycles: .scaled, outputCheck: .block)),
            ("scaled; no skip; block check", DSnoT.Settings(maxCycles: .scaled, skip: [], outputCheck: .block)),
            ("scaled; no skip; layer check", DSnoT.Settings(maxCycles: .scaled, skip: [], outputCheck: .layer)),
            ("scaled; no skip; model check", DSnoT.Settings(maxCycles: .scaled, skip: [], outputCheck: .model)),
            ("50; no skip; block check", DSnoT.Settings(skip: [], outputCheck: .block)),
        ]
        for pattern in [SparsityPattern.unstructured(0.6), .unstructured(0.5), .unstructured(0.7), .nOfM(2, 4)] {
            let base = label(.wanda, pattern)
            list.append(Configuration(label: base, recipe: Recipe(method: .wanda, pattern: pattern)))
            for (name, settings) in variants {
                list.append(
                    Configuration(
                        label: "\(base) + DSnoT (\(name))",
                        recipe: Recipe(method: .wanda, pattern: pattern, dsnot: settings),
                        base: base
                    )
                )
            }
        }
        return list
    }

    /// An evaluation text: its name and token ids.
    struct Text {
        var name: String
        var tokens: [Int]
        var dense: Double
    }

    static func run() throws {
        let environment = ProcessInfo.processInfo.environment
        let fixtures = environment["DSNOT_BENCH_FIXTURES"] ?? ".fixtures"
        let windows = Int(environment["DSNOT_QUALITY_WINDOWS"] ?? "") ?? 16
        let output = environment["DSNOT_QUALITY_OUT"] ?? "docs/results.md"
        // DSNOT_QUALITY_ONLY also sets the order (most decisive first when time is short); labels hold no commas.
        let only = environment["DSNOT_QUALITY_ONLY"].map { $0.split(separator: ",").map(String.init) }
        let seeds = (environment["DSNOT_QUALITY_SEEDS"] ?? "0,1,2").split(separator: ",").compactMap {
            UInt64($0.trimmingCharacters(in: .whitespaces))
        }
        let set = environment["DSNOT_QUALITY_SET"] ?? "table"
        let all = set == "candidates" ? candidates() : table()
        let configurations = only.map { labels in labels.compactMap { l in all.first { $0.label == l } } } ?? all
        let modelDirectory = fixtures + "/smollm2-135m"
        let started = Date()
        let loadStart = loadAverage()

        let checkpoint = try Checkpoint(directory: modelDirectory)
        let model = try ModelRegistry.load(directory: modelDirectory)
        let config = try Data(contentsOf: URL(fileURLWithPath: modelDirectory + "/config.json"))
        let tokenizer = try Tokenizer(contentsOf: modelDirectory + "/tokenizer.json")
        let calibrationTokens = try tokenizer.encode(
            try String(contentsOfFile: fixtures + "/text/calib.txt", encoding: .utf8)
        )
        var texts = [
            Text(
                name: "Persuasion",
                tokens: try SafeTensorsFile(path: fixtures + "/text/eval-tokens-smollm2.safetensors")
                    .integers(named: "input_ids"),
                dense: 0
            )
        ]
        let second = fixtures + "/text/eval-northanger.txt"
        if let text = try? String(contentsOfFile: second, encoding: .utf8) {
            texts.append(Text(name: "Northanger Abbey", tokens: try tokenizer.encode(text).map(Int.init), dense: 0))
        } else {
            print("quality: \(second) missing (scripts/fixtures.sh makes it); evaluating on Persuasion only")
        }
        for i in texts.indices {
            texts[i].dense = try Perplexity.evaluate(
                model: model,
                tokens: texts[i].tokens,
                sequenceLength: sequenceLength,
                maxWindows: windows
            ).perplexity
            print(
                "quality: dense perplexity on \(texts[i].name): \(BenchmarkSupport.format(texts[i].dense, digits: 4))"
            )
        }
        fflush(nil)  // every stream: rows show up in a redirected log as they finish

        var results: [(Configuration, [Run])] = []
        let logger = Logger(label: "dsnot-bench.quality")
        /// Rewrites the markdown file with what has finished.
        func write() throws {
            let document = markdown(
                results: results,
                texts: texts,
                windows: windows,
                seeds: seeds,
                set: set,
                started: started,
                loads: (loadStart, loadAverage()),
                pending: configurations.count * seeds.count - results.reduce(0) { $0 + $1.1.count }
            )
            try Data((document + preservedTail(of: output)).utf8).write(
                to: URL(fileURLWithPath: output),
                options: .atomic
            )
        }
        for configuration in configurations {
            // A row whose recipe is its base's (the default profile after SparseGPT) repeats the base's runs.
            if let same = results.first(where: {
                $0.0.label == configuration.base && $0.0.recipe == configuration.recipe
            }) {
                results.append((configuration, same.1))
                print("quality: \(configuration.label): the recipe of \(same.0.label); its runs repeated")
                try write()
                continue
            }
            results.append((configuration, []))
            for seed in seeds {
                let clock = BenchmarkSupport.now()
                let calibration = try CalibrationSet(
                    tokens: calibrationTokens,
                    count: calibrationSequences,
                    length: sequenceLength,
                    seed: seed
                )
                var recipe = configuration.recipe
                recipe.calibration.seed = seed
                // DSnoT's loss check as the daemon runs it (PruneJob): windows drawn after the calibration
                // windows, and the base recipe's own run published when the check prefers the base masks.
                let lossWindows =
                    recipe.dsnot?.lossCheck == true
                    ? try CalibrationSet(
                        tokens: calibrationTokens,
                        count: SequentialPruner.lossCheckWindowCount(calibrationSequences: calibrationSequences),
                        length: sequenceLength,
                        seed: seed,
                        skipping: calibrationSequences
                    ) : nil
                var overlay = TensorOverlay(base: checkpoint)
                func prune(_ recipe: Recipe) throws -> PruneReport {
                    overlay = TensorOverlay(base: checkpoint)
                    return try SequentialPruner(recipe: recipe).run(
                        model: model,
                        source: checkpoint,
                        calibration: calibration,
                        sink: overlay,
                        logger: logger,
                        lossWindows: lossWindows
                    )
                }
                var report = try prune(recipe)
                if let check = report.lossCheck, check.prefersBase {
                    report = report.publishingBase(try prune(recipe.withoutDSnoT))
                }
                let pruned = try ModelRegistry.model(config: config, tensors: overlay)
                let perplexities = try texts.map {
                    try Perplexity.evaluate(
                        model: pruned,
                        tokens: $0.tokens,
                        sequenceLength: sequenceLength,
                        maxWindows: windows
                    ).perplexity
                }
                let checks = report.blocks.compactMap(\.outputCheck)
                let run = Run(
                    seed: seed,
                    perplexities: perplexities,
                    sparsity: report.totals.sparsity,
                    swaps: report.totals.dsnotSwaps,
                    blocksChecked: checks.count,
                    blocksKeptRefined: checks.filter { $0.layersKept > 0 }.count,
                    checkSeconds: report.timings.outputCheck + report.timings.lossCheck,
                    owlSeconds: report.timings.owl,
                    blockSparsities: report.blocks.map(\.sparsity),
                    lossCheck: report.lossCheck,
                    seconds: BenchmarkSupport.now() - clock
                )
                results[results.count - 1].1.append(run)
                print(
                    "quality: \(configuration.label) seed \(seed): "
                        + perplexities.map { BenchmarkSupport.format($0, digits: 2) }.joined(separator: " / ")
                        + " (sparsity \(BenchmarkSupport.format(run.sparsity, digits: 4)), swaps \(run.swaps), "
                        + "blocks kept refined \(run.blocksKeptRefined)/\(run.blocksChecked), "
                        + "check \(BenchmarkSupport.format(run.checkSeconds, digits: 1)) s, "
                        + "OWL \(BenchmarkSupport.format(run.owlSeconds, digits: 1)) s, "
                        + (run.lossCheck.map {
                            "loss check \(BenchmarkSupport.format($0.refinedLoss, digits: 5)) refined vs "
                                + "\(BenchmarkSupport.format($0.baseLoss, digits: 5)) base ± "
                                + "\(BenchmarkSupport.format($0.standardError, digits: 5)) → \($0.published), "
                        } ?? "")
                        + "\(BenchmarkSupport.format(run.seconds, digits: 0)) s)"
                )
                fflush(nil)
                try write()
            }
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

    /// `/proc/loadavg`'s first three fields (the machine is shared; figures depend on it).
    static func loadAverage() -> String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "unknown" }
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    /// Mean and sample standard deviation (0 for one value).
    static func meanAndSpread(_ values: [Double]) -> (mean: Double, spread: Double) {
        let mean = values.reduce(0, +) / Double(max(1, values.count))
        guard values.count > 1 else { return (mean, 0) }
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
        return (mean, variance.squareRoot())
    }

    static func markdownRow(
        _ configuration: Configuration,
        _ runs: [Run],
        texts: [Text],
        base: [Run]?
    ) -> String {
        var cells = ["\(configuration.label)", "\(runs.count)"]
        let sparsity = meanAndSpread(runs.map(\.sparsity)).mean
        cells.append(BenchmarkSupport.format(sparsity * 100, digits: 2) + " %")
        for t in texts.indices {
            let (mean, spread) = meanAndSpread(runs.map { $0.perplexities[t] })
            var cell = BenchmarkSupport.format(mean, digits: 2)
            if runs.count > 1 { cell += " ± " + BenchmarkSupport.format(spread, digits: 2) }
            // Paired by seed: the same calibration windows for the row and its base.
            if let base {
                let pairs = zip(runs, base).filter { $0.0.seed == $0.1.seed }
                if !pairs.isEmpty {
                    let ratio =
                        pairs.reduce(0.0) { $0 + $1.0.perplexities[t] / $1.1.perplexities[t] } / Double(pairs.count)
                    cell +=
                        " (" + (ratio >= 1 ? "+" : "") + BenchmarkSupport.format(100 * (ratio - 1), digits: 1) + " %)"
                }
            }
            cells.append(cell)
        }
        let last = runs.last
        cells.append(last.map { "\($0.swaps)" } ?? "—")
        cells.append(last.map { $0.blocksChecked == 0 ? "—" : "\($0.blocksKeptRefined)/\($0.blocksChecked)" } ?? "—")
        let checked = runs.compactMap(\.lossCheck)
        cells.append(checked.isEmpty ? "—" : "\(checked.filter(\.prefersBase).count)/\(checked.count)")
        let extra = runs.map { $0.checkSeconds + $0.owlSeconds }.reduce(0, +) / Double(max(1, runs.count))
        cells.append(extra > 0 ? BenchmarkSupport.format(extra, digits: 1) : "—")
        if let s = last?.blockSparsities, let lo = s.min(), let hi = s.max(), hi > lo {
            cells.append(
                BenchmarkSupport.format(lo * 100, digits: 1) + "–" + BenchmarkSupport.format(hi * 100, digits: 1) + " %"
            )
        } else {
            cells.append("uniform")
        }
        cells.append(BenchmarkSupport.format(meanAndSpread(runs.map(\.seconds)).mean, digits: 0))
        return "| " + cells.joined(separator: " | ") + " |"
    }

    static func markdown(
        results: [(Configuration, [Run])],
        texts: [Text],
        windows: Int,
        seeds: [UInt64],
        set: String,
        started: Date,
        loads: (String, String),
        pending: Int
    ) -> String {
        let textHeads = texts.map { "\($0.name) (vs base)" }.joined(separator: " | ")
        var text = """
            # Results: pruning quality on SmolLM2-135M

            Generated by `make bench-quality` (`dsnot-bench quality`, set `\(set)`), started \(started).
            Machine: shared 2-core VM; load average (1/5/15 min) \(loads.0) at the start, \(loads.1) at the last row.

            Model: SmolLM2-135M, fp32 fixture (`.fixtures/smollm2-135m`). Calibration: N = \(calibrationSequences)
            windows of L = \(sequenceLength) tokens sampled from `calib.txt` with seeds \(seeds.map(String.init).joined(separator: ", ")).
            Perplexity: L = \(sequenceLength), non-overlapping windows, **first \(windows) windows only** of
            each evaluation text (neither is in `calib.txt`); dense: \(texts.map { "\($0.name) \(BenchmarkSupport.format($0.dense, digits: 2))" }.joined(separator: ", ")).
            Every pruning starts from the dense model in process (`SequentialPruner` into a `TensorOverlay`).

            A cell is the mean ± sample standard deviation over the seeds run ("seeds" column); "vs base"
            is the mean over seeds of perplexity / the base pruner's perplexity with the same seed. DSnoT
            `reference` is the published flags (after SparseGPT with D9's true-error acceptance); `guarded`
            is dsnot's default profile (docs/algorithms.md). "Blocks kept" counts blocks whose output check
            kept at least one refined layer (last seed); "base published": seeds whose loss check preferred
            the base masks, so that the base recipe's own model was published (the row's perplexity is then
            the base row's); "extra s": seconds of the output and loss checks plus OWL's dense pass (mean
            per pruning; a fallback's second pruning is in the time column only); "block sparsity": OWL's
            range. Time: prune (both runs after a fallback) + evaluation, seconds.

            | configuration | seeds | sparsity | \(textHeads) | DSnoT swaps | blocks kept | base published | extra s | block sparsity | time (s) |
            |---|---|---|\(texts.map { _ in "---|" }.joined())---|---|---|---|---|---|

            """
        let byLabel = Dictionary(results.map { ($0.0.label, $0.1) }, uniquingKeysWith: { a, _ in a })
        for (configuration, runs) in results where !runs.isEmpty {
            text +=
                markdownRow(configuration, runs, texts: texts, base: configuration.base.flatMap { byLabel[$0] })
                + "\n"
        }
        if pending > 0 {
            text += "\n\(pending) prunings of the selected list had not finished when this file was written.\n"
        }
        return text
    }
}
