// SPDX-License-Identifier: Apache-2.0
// `dsnotctl eval MODEL_DIR --text FILE`: perplexity by the protocol of ALGORITHM.md D10.

import ArgumentParser
import DSnoTCore
import DSnoTPipeline
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension DsnotCtl {
    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Measure a checkpoint's perplexity on a text (non-overlapping windows, no BOS).",
            discussion: """
                The whole text is tokenized once with the checkpoint's tokenizer.json and cut into \
                floor(tokens / L) windows of L tokens; perplexity is exp of the mean window loss. \
                The model directory may be a dense checkpoint or a dsnot sparse output (bitmask + LZ4 shards, recognised \
                by its *.safetensors.lz4 files or the output manifest of dsnot-report.json): a sparse output is \
                checked first (SHA-256 of every file in the manifest, one pass over every frame), then each tensor \
                is decoded when the model reads it, one at a time, with no `unpack --dense` and no scratch files.
                """
        )

        @Argument(
            help:
                "Checkpoint directory (config.json, *.safetensors, tokenizer.json) or a dsnot sparse output directory."
        ) var model: String
        @Option(help: "Text file to evaluate on.") var text: String
        @Option(help: "Window length L (capped at the model's context).") var seqlen = 2048
        @Option(help: "Evaluate only the first K windows.") var maxWindows: Int?
        @Option(
            help: "Blocks' GEMM inputs: fp32 (default) or bf16 (fp32 accumulation; fp32 on CPUs without AVX-512 BF16)."
        )
        var compute = "fp32"
        @Flag(help: "Print the result as JSON.") var json = false

        func validate() throws {
            guard ComputeFormat(rawValue: compute) != nil else {
                throw ValidationError("--compute: expected fp32 or bf16, got \(compute)")
            }
        }

        /// glibc raises its mmap threshold whenever a large block is freed, and from then on serves
        /// such blocks from a heap it does not give back. Evaluation allocates and frees multi-MB
        /// buffers (activations, and the sparse reader's one decoded tensor at a time), so the threshold
        /// is pinned at glibc's default: large buffers return to the kernel when freed. Measured on
        /// SmolLM2-135M (docs/results.md): without it, eval of a sparse output peaks 40 MB higher.
        /// `mallopt(3)` is looked up at run time (Swift's Glibc module does not include <malloc.h>),
        /// as `DurableFile` does for `renameat2`.
        static func pinMallocThreshold() {
            #if canImport(Glibc)
                typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
                let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD from <malloc.h>
                guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
                _ = unsafeBitCast(symbol, to: Mallopt.self)(mmapThreshold, 128 << 10)
            #endif
        }

        /// Returns the heap's free pages to the kernel once the model is open: checking a sparse
        /// output (manifest, every frame's header and `.shape` values) leaves small freed blocks
        /// under what the tokenizer and the engine allocate next (`malloc_trim(3)`, looked up as above).
        static func trimMallocHeap() {
            #if canImport(Glibc)
                typealias MallocTrim = @convention(c) (Int) -> Int32
                guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return }
                _ = unsafeBitCast(symbol, to: MallocTrim.self)(0)
            #endif
        }

        struct Output: Codable {
            var model: String
            var text: String
            var tokens: Int
            var sequenceLength: Int
            var windows: Int
            var perplexity: Double
            var meanLoss: Double
            /// The format the blocks ran in (`ComputeFormat.effective` of `--compute`).
            var compute: String
            enum CodingKeys: String, CodingKey {
                case model, text, tokens, windows, perplexity, compute
                case sequenceLength = "sequence_length"
                case meanLoss = "mean_loss"
            }
        }

        func run() throws {
            Self.pinMallocThreshold()
            var line = ProgressLine()
            let output: Output
            do {
                let tensors = try SparseOutputSource.tensors(ofModelDirectory: model)
                let loaded = try ModelRegistry.load(directory: model, tensors: tensors)
                Self.trimMallocHeap()
                let tokenizer = try Tokenizer(contentsOf: model + "/tokenizer.json")
                let ids = try tokenizer.encode(try String(contentsOfFile: text, encoding: .utf8)).map(Int.init)
                let length = min(seqlen, loaded.maxPositions)
                let format = (ComputeFormat(rawValue: compute) ?? .fp32).effective
                if let notice = format.notice { FileHandle.standardError.write(Data("dsnotctl: \(notice)\n".utf8)) }
                let result = try Perplexity.evaluate(
                    model: loaded,
                    tokens: ids,
                    sequenceLength: length,
                    maxWindows: maxWindows,
                    compute: format.format,
                    progress: { line.update("perplexity", done: $0, total: $1) }
                )
                line.finish()
                output = Output(
                    model: model,
                    text: text,
                    tokens: ids.count,
                    sequenceLength: length,
                    windows: result.windowLosses.count,
                    perplexity: result.perplexity,
                    meanLoss: result.meanLoss,
                    compute: format.format.rawValue
                )
            } catch {
                line.finish()
                throw failOffline(error)
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(output), as: UTF8.self))
            } else {
                print(
                    "perplexity \(String(format: "%.4f", output.perplexity)) "
                        + "(\(output.windows) windows of \(output.sequenceLength) tokens, \(output.tokens) tokens)"
                )
            }
        }
    }
}
