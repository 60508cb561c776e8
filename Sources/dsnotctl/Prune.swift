// SPDX-License-Identifier: Apache-2.0
// `dsnotctl prune IN OUT`: prune a checkpoint offline with any recipe, publish OUT atomically.

import ArgumentParser
import DSnoTCore
import DSnoTPipeline
import Foundation
import Logging
import SparseFormat

extension DsnotCtl {
    struct Prune: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prune a checkpoint directory into a new output directory (no daemon needed).",
            discussion: """
                Calibrates on --calib-text (tokenized with the checkpoint's tokenizer) or --calib-tokens \
                (safetensors input_ids [N, L]), runs the base pruner layer by layer, refines the masks with \
                DSnoT, and publishes OUT atomically (OUT must not exist). --eval-text adds perplexity before \
                and after; --max-ppl-increase makes it a gate. --json prints dsnot-report.json's content. Each recipe \
                flag sets a key of the recipe schema that dsnotd.toml(5) describes, with the same defaults and \
                checks; --print-recipe prints the resulting recipe as canonical JSON and exits.
                """
        )

        @Argument(help: "Input checkpoint directory (config.json, *.safetensors, tokenizer.json).") var input: String
        @Argument(help: "Output directory; must not exist.") var output: String

        // Recipe flags: each sets the recipe keys `recipeFlags` names; unset flags leave the schema's defaults
        // (dsnotd.toml(5) lists every key with its default).
        @Option(help: "Base pruner: magnitude, wanda or sparsegpt (default wanda).") var method: String?
        @Option(help: "Unstructured sparsity in (0, 1) (default 0.5).") var sparsity: Double?
        @Option(help: "N:M pattern instead of --sparsity: 2:4 or 4:8.") var pattern: String?
        @Option(help: "Magnitude ranking scope without DSnoT: layer (reference, default) or row.")
        var magnitudeScope: String?

        @Flag(
            inversion: .prefixedNo,
            help:
                "Refine the base masks with DSnoT (default on; with the guarded profile not after sparsegpt unless a DSnoT option is given)."
        )
        var dsnot: Bool?
        @Option(
            help:
                "DSnoT preset that the other DSnoT options override: guarded (default) or reference (the published flags)."
        )
        var dsnotProfile: String?
        @Option(
            name: .customLong("dsnot-skip"),
            help: "Layers DSnoT leaves at the base mask (repeatable; profile default; 'none' for no skip)."
        )
        var dsnotSkip: [String] = []
        @Option(help: "DSnoT cycles per row: a number, or 'scaled' (50·C_in/4096) (default 50).")
        var dsnotMaxCycles: String?
        @Option(help: "DSnoT update threshold (sequence-sum units, default 0.1).") var dsnotThreshold: Double?
        @Option(help: "DSnoT variance power for regrowth (default 1).") var dsnotVariancePower: Double?
        @Flag(
            inversion: .prefixedNo,
            help: "DSnoT stops a row when a swap would flip the sign of its error (default off)."
        )
        var dsnotSameSign: Bool?
        @Option(help: "DSnoT row acceptance: none or true-error (default: true-error after sparsegpt).")
        var dsnotAccept: String?
        @Option(help: "DSnoT block-output check: none, block, layer or model; profile default.")
        var dsnotOutputCheck: String?
        @Flag(
            inversion: .prefixedNo,
            help:
                "DSnoT loss check: publish the base pruner's model when held-out loss says refining did not help; profile default."
        )
        var dsnotLossCheck: Bool?
        @Option(help: "Per-block sparsity: uniform (default) or owl (outlier-weighed, unstructured only).")
        var layerSparsity: String?
        @Option(help: "OWL outlier threshold M (default 5).") var owlThreshold: Double?
        @Option(help: "OWL spread lambda: block sparsities within sparsity +/- lambda (default 0.08).")
        var owlLambda: Double?
        @Option(
            help: "MoE: an expert routed fewer calibration tokens than this is pruned by magnitude (default 128)."
        )
        var expertMinTokens: Int?
        @Option(
            help:
                "Forward passes' GEMM inputs: fp32 (default) or bf16 (fp32 accumulation; fp32 on CPUs without AVX-512 BF16)."
        )
        var compute: String?

        @Option(help: "SparseGPT columns per block (default 128).") var sparsegptBlockSize: Int?
        @Option(help: "SparseGPT relative dampening (default 0.01).") var sparsegptDampening: Float?
        @Option(help: "SparseGPT retries with 10x dampening when Cholesky fails (default 3).")
        var sparsegptMaxRetries: Int?

        @Option(help: "Calibration text file.") var calibText: String?
        @Option(help: "Pre-tokenized calibration file (safetensors input_ids [N, L]).") var calibTokens: String?
        @Option(help: "Calibration sequences N (default 128; a token file gives its own).") var nsamples: Int?
        @Option(help: "Calibration sequence length L (default 2048, capped at the model's context).")
        var seqlen: Int?
        @Option(help: "Seed of the calibration window sampler (default 0).") var seed: UInt64?
        @Option(help: "Calibration sequences feeding the per-layer reconstruction error (default 8).")
        var errorSequences: Int?

        @Option(help: "Evaluation text: report perplexity before and after.") var evalText: String?
        @Option(help: "Evaluation window length (default 2048).") var evalSeqlen: Int?
        @Option(help: "Evaluate only the first K windows.") var evalWindows: Int?
        @Option(help: "Fail (publish nothing) if perplexity rises by more than this many percent.")
        var maxPplIncrease: Double?

        @Option(help: "Output format: sparse (bitmask + LZ4, default) or dense.") var format: String?
        @Option(help: "LZ4 level for --format sparse: fast (default), hc, hc-N (3...12).") var compression: String?
        @Flag(
            inversion: .prefixedNo,
            help: "Split 16-bit values into byte planes before LZ4 (smaller; not lz4 -d compatible; default off)."
        )
        var bytePlanes: Bool?
        @Flag(help: "Print the validated recipe (canonical JSON) and exit without pruning.") var printRecipe = false
        @Flag(help: "Print the report as JSON.") var json = false

        func validate() throws {
            if sparsity != nil && pattern != nil { throw ValidationError("give --sparsity or --pattern, not both") }
            if calibText != nil && calibTokens != nil {
                throw ValidationError("give --calib-text or --calib-tokens, not both")
            }
            if !printRecipe && FileManager.default.fileExists(atPath: output) {
                throw ValidationError("output '\(output)' already exists; dsnotctl never overwrites")
            }
            if maxPplIncrease != nil && evalText == nil {
                throw ValidationError("--max-ppl-increase needs --eval-text")
            }
        }

        func run() throws {
            let options: PruneJobOptions
            let publisher: AtomicPublisher
            do {
                options = try makeOptions()
                if dsnot == true && options.recipe.dsnot == nil {
                    GlobalOptions.printError(
                        "notice: the \(DSnoT.Profile.default.rawValue) DSnoT profile leaves \(options.recipe.method.rawValue)'s masks as they are "
                            + "(dsnotd.toml(5)); name a profile or a DSnoT option to run it"
                    )
                }
                if printRecipe {
                    print(options.canonicalJSON)
                    return
                }
                publisher = try AtomicPublisher(target: output, id: "\(getpid())")
            } catch { throw failOffline(error) }
            var line = ProgressLine()
            let result: PruneJob.Result
            do {
                let job = try PruneJob(input: input, options: options)
                result = try job.run(into: publisher.stagingPath, logger: Logger(label: "dsnot.prune")) {
                    Self.draw($0, on: &line)
                }
                line.finish()
                try publisher.publish()
            } catch {
                line.finish()
                try? publisher.discard()
                throw failOffline(error)
            }
            if json {
                print(String(decoding: try PruneJob.encode(result.report), as: UTF8.self))
            } else {
                print(Self.summary(result, output: output))
            }
        }

        static func draw(_ progress: PruneJob.Progress, on line: inout ProgressLine) {
            switch progress {
            case .loading: line.update("loading", done: 0, total: 1)
            case .pruning(let p):
                line.update(
                    "block \(p.block + 1)/\(p.blockCount) \(p.phase.rawValue)",
                    done: Int(p.fractionDone * 1000),
                    total: 1000
                )
            case .evaluating(let pruned, let done, let total):
                line.update(pruned ? "perplexity (pruned)" : "perplexity (dense)", done: done, total: total)
            case .writing: line.update("writing", done: 1, total: 1)
            }
        }

        static func summary(_ result: PruneJob.Result, output: String) -> String {
            let r = result.report
            var lines = [
                "\(output): \(r.modelType), \(r.blockCount) blocks, \(r.layers.count) linear layers",
                "sparsity \(String(format: "%.4f", r.totals.sparsity)), DSnoT swaps \(r.totals.dsnotSwaps), "
                    + "time \(Formatting.duration(r.timings.total)), output \(result.outputBytes) bytes",
            ]
            if let p = r.perplexity {
                lines.append(
                    "perplexity (L=\(p.sequenceLength), \(p.windows) windows): dense \(String(format: "%.3f", p.dense)), "
                        + "pruned \(String(format: "%.3f", p.pruned)) (\(String(format: "%+.2f", p.increasePercent)) %)"
                )
            }
            return lines.joined(separator: "\n")
        }
    }
}
