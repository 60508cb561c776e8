// SPDX-License-Identifier: Apache-2.0
// PruneJob end to end on a tiny LLaMA with a real tokenizer: sparse output unpacks to exactly the dense
// output (fp32/fp16/bf16 × unstructured/2:4), the quality gate refuses a worse model, bad inputs fail clearly.

import DSnoTCore
import DSnoTPipeline
import DSnoTSupport
import DSnoTTestSupport
import Foundation
import Logging
import SafeTensors
import SparseFormat
import Testing

enum TinyCheckpoint {
    static let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("DSnoTCoreTests/Resources").path
    /// The SentencePiece-style BPE tokenizer (byte fallback) trained on Austen text, and real text.
    static let tokenizer = resources + "/tokenizers/sp-bpe/tokenizer.json"
    static let text = resources + "/tokenizers/corpus.txt"

    /// A random LLaMA (hidden 32, two blocks unless `blocks`) whose vocabulary covers the tokenizer, in `dtype`.
    static func write(to directory: String, dtype: DType, withTokenizer: Bool = true, blocks: Int = 2) throws {
        let vocab = try Tokenizer(contentsOf: tokenizer).vocabularySize
        let (hidden, mlp) = (32, 64)
        let config = """
            {"model_type": "llama", "hidden_size": \(hidden), "intermediate_size": \(mlp),
             "num_hidden_layers": \(blocks), "num_attention_heads": 4, "num_key_value_heads": 2,
             "rms_norm_eps": 1e-6, "vocab_size": \(vocab), "max_position_embeddings": 128,
             "tie_word_embeddings": true}
            """
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(config.utf8).write(to: URL(fileURLWithPath: directory + "/config.json"))
        if withTokenizer { try FileManager.default.copyItem(atPath: tokenizer, toPath: directory + "/tokenizer.json") }
        var rng = SplitMix64(seed: 11)
        var tensors: [(TensorDeclaration, [UInt8])] = []
        func add(_ name: String, _ shape: [Int], ones: Bool = false, scale: Float = 0.2) {
            let values = (0..<shape.reduce(1, *)).map { _ in ones ? 1 : rng.normal() * scale }
            tensors.append(
                (TensorDeclaration(name: name, dtype: dtype, shape: shape), FloatConversion.encode(values, as: dtype))
            )
        }
        add("model.embed_tokens.weight", [vocab, hidden], scale: 1)
        add("model.norm.weight", [hidden], ones: true)
        for b in 0..<blocks {
            let p = "model.layers.\(b)."
            add(p + "self_attn.q_proj.weight", [hidden, hidden])
            add(p + "self_attn.k_proj.weight", [hidden / 2, hidden])
            add(p + "self_attn.v_proj.weight", [hidden / 2, hidden])
            add(p + "self_attn.o_proj.weight", [hidden, hidden])
            add(p + "mlp.gate_proj.weight", [mlp, hidden])
            add(p + "mlp.up_proj.weight", [mlp, hidden])
            add(p + "mlp.down_proj.weight", [hidden, mlp])
            add(p + "input_layernorm.weight", [hidden], ones: true)
            add(p + "post_attention_layernorm.weight", [hidden], ones: true)
        }
        try SafeTensorsStreamWriter<AtomicFileSink>.writeFile(path: directory + "/model.safetensors", tensors: tensors)
    }

    static func options(pattern: SparsityPattern, format: OutputFormat, evaluation: EvaluationOptions? = nil)
        -> PruneJobOptions
    {
        let recipe = Recipe(
            method: .wanda,
            pattern: pattern,
            dsnot: DSnoT.Settings(skip: []),
            calibration: .init(source: .text, path: text, sequences: 4, sequenceLength: 64, seed: 3)
        )
        return PruneJobOptions(recipe: recipe, format: format, evaluation: evaluation)
    }
}

@Suite struct PruneJobTests {
    let logger = Logger(label: "test")

    @Test(arguments: [DType.f32, .f16, .bf16], [SparsityPattern.unstructured(0.5), .nOfM(2, 4)])
    func sparseOutputUnpacksToExactlyTheDenseOutput(_ dtype: DType, _ pattern: SparsityPattern) throws {
        let root = try TemporaryDirectory("dsnot-pipeline").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try TinyCheckpoint.write(to: root + "/in", dtype: dtype)
        for name in ["dense", "sparse"] {
            try FileManager.default.createDirectory(atPath: root + "/" + name, withIntermediateDirectories: true)
        }
        let dense = try PruneJob(input: root + "/in", options: TinyCheckpoint.options(pattern: pattern, format: .dense))
        let sparse = try PruneJob(
            input: root + "/in",
            options: TinyCheckpoint.options(pattern: pattern, format: .sparse(level: .fast, bytePlanes: false))
        )
        let denseResult = try dense.run(into: root + "/dense", logger: logger)
        let sparseResult = try sparse.run(into: root + "/sparse", logger: logger)
        #expect(denseResult.report.totals.sparsity == 0.5 && sparseResult.report.totals.sparsity == 0.5)
        _ = try SparseUnpacker.unpack(outputDirectory: root + "/sparse", destination: root + "/unpacked", mode: .dense)

        let expected = try Checkpoint(directory: root + "/dense")
        let unpacked = try Checkpoint(directory: root + "/unpacked")
        #expect(unpacked.tensorNames.sorted() == expected.tensorNames.sorted())
        for name in expected.tensorNames {
            #expect(try unpacked.info(named: name).dtype == dtype)
            #expect(Array(try unpacked.rawBytes(named: name)) == Array(try expected.rawBytes(named: name)), "\(name)")
        }
        let verified = try SparseVerifier.verify(directory: root + "/sparse")
        #expect(verified.filesChecked >= 3 && verified.shardsChecked == 1)
    }

    /// The report's recipe states what ran: L capped at the model's 128 positions, not the 4096 asked for;
    /// its hash stays the requested recipe's.
    @Test func reportRecipeStatesTheCalibrationThatRan() throws {
        let root = try TemporaryDirectory("dsnot-pipeline").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try TinyCheckpoint.write(to: root + "/in", dtype: .f32)
        try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
        var options = TinyCheckpoint.options(pattern: .unstructured(0.5), format: .dense)
        options.recipe.calibration.sequenceLength = 4096
        let result = try PruneJob(input: root + "/in", options: options)
            .run(into: root + "/out", jobID: "job-7f3a", logger: logger)
        let ran = result.report.recipe.calibration
        #expect(
            ran.sequences == 4 && ran.sequenceLength == 128 && ran.source == .text && ran.path == TinyCheckpoint.text
        )
        #expect(result.report.calibration?.sequenceLength == 128)
        #expect(result.report.recipeHash == options.recipe.stableHash)
        let written = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: root + "/out/dsnot-report.json"))
        )
        let calibration = ((written as? [String: Any])?["recipe"] as? [String: Any])?["calibration"] as? [String: Any]
        #expect(calibration?["sequence_length"] as? Int == 128 && calibration?["sequences"] as? Int == 4)
        // The job id is a run argument, written as `job`, and no part of the recipe or its hash.
        #expect((written as? [String: Any])?["job"] as? String == "job-7f3a")
        #expect(((written as? [String: Any])?["recipe"] as? [String: Any])?["job"] == nil)
        #expect(result.report.job == "job-7f3a")

        // Magnitude alone reads no calibration data, and the report says so instead of the default 128 × 2048.
        try FileManager.default.createDirectory(atPath: root + "/magnitude", withIntermediateDirectories: true)
        let magnitude = PruneJobOptions(recipe: Recipe(method: .magnitude, pattern: .unstructured(0.5)), format: .dense)
        let none = try PruneJob(input: root + "/in", options: magnitude).run(into: root + "/magnitude", logger: logger)
        #expect(none.report.recipe.calibration.sequences == 0 && none.report.recipe.calibration.sequenceLength == 0)
        #expect(none.report.calibration == nil && none.report.recipeHash == magnitude.recipe.stableHash)
    }

    @Test func qualityGateRefusesAModelWorseThanTheLimit() throws {
        let root = try TemporaryDirectory("dsnot-pipeline").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try TinyCheckpoint.write(to: root + "/in", dtype: .f32)
        try FileManager.default.createDirectory(atPath: root + "/strict", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/loose", withIntermediateDirectories: true)
        func evaluation(_ limit: Double) -> EvaluationOptions {
            EvaluationOptions(
                textPath: TinyCheckpoint.text,
                sequenceLength: 64,
                maxWindows: 4,
                maxIncreasePercent: limit
            )
        }
        let loose = try PruneJob(
            input: root + "/in",
            options: TinyCheckpoint.options(pattern: .unstructured(0.7), format: .dense, evaluation: evaluation(1e6))
        )
        let passed = try loose.run(into: root + "/loose", logger: logger)
        let p = try #require(passed.report.perplexity)
        #expect(p.windows == 4 && p.sequenceLength == 64 && p.dense.isFinite && p.pruned.isFinite)
        #expect(p.pruned != p.dense)
        // Evaluation leaves nothing behind in the output (the spill file is removed).
        #expect(!(try FileManager.default.contentsOfDirectory(atPath: root + "/loose")).contains { $0.hasPrefix(".") })

        let strict = try PruneJob(
            input: root + "/in",
            options: TinyCheckpoint.options(pattern: .unstructured(0.7), format: .dense, evaluation: evaluation(1e-9))
        )
        #expect(throws: PruneJobError.self) { try strict.run(into: root + "/strict", logger: logger) }
        do {
            _ = try strict.run(into: try TemporaryDirectory("dsnot-pipeline").path, logger: logger)
        } catch let PruneJobError.qualityGate(dense, pruned, limit) {
            #expect(dense == p.dense && pruned == p.pruned && limit == 1e-9)
        }
    }

    /// A sparse output's estimate counts the LZ4 frame writer's buffers (a batch of 4 MiB blocks per core,
    /// two sets of compressed blocks, the compressor states); a dense output has none.
    @Test func theSparseWritersBuffersAreInTheMemoryEstimate() throws {
        let root = try TemporaryDirectory("dsnot-pipeline").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try TinyCheckpoint.write(to: root + "/in", dtype: .f32)
        func memory(_ format: OutputFormat) throws -> Int {
            try PruneJob(
                input: root + "/in",
                options: TinyCheckpoint.options(pattern: .unstructured(0.5), format: format)
            )
            .estimate().memoryBytes
        }
        let dense = try memory(.dense)
        for level in [LZ4Level.fast, .hc(9)] {
            let buffers = LZ4FrameWriter<FileSink>.workingSetBytes(level: level)
            #expect(buffers >= 3 * Parallel.workers * (4 << 20))
            #expect(try memory(.sparse(level: level, bytePlanes: false)) - dense == buffers)
        }
    }

    @Test func textCalibrationWithoutATokenizerIsAClearError() throws {
        let root = try TemporaryDirectory("dsnot-pipeline").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try TinyCheckpoint.write(to: root + "/in", dtype: .f32, withTokenizer: false)
        try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
        let job = try PruneJob(
            input: root + "/in",
            options: TinyCheckpoint.options(pattern: .unstructured(0.5), format: .dense)
        )
        #expect(throws: PruneJobError.missingTokenizer(directory: root + "/in")) {
            try job.run(into: root + "/out", logger: logger)
        }
        try Data("x".utf8).write(to: URL(fileURLWithPath: root + "/out/stray"))
        #expect(throws: PruneJobError.outputNotEmpty(path: root + "/out")) {
            try job.run(into: root + "/out", logger: logger)
        }
    }

    @Test func outputFormatStringsParseOrFailClearly() throws {
        #expect(
            try OutputFormat.parse(format: "sparse", compression: "hc-12") == .sparse(level: .hc(12), bytePlanes: false)
        )
        #expect(try OutputFormat.parse(format: "dense", compression: "none") == .dense)
        #expect(throws: PruneJobError.self) { try OutputFormat.parse(format: "sparse", compression: "none") }
        #expect(throws: PruneJobError.self) { try OutputFormat.parse(format: "sparse", compression: "hc-2") }
        #expect(throws: PruneJobError.self) { try OutputFormat.parse(format: "gguf", compression: "fast") }
    }
}
