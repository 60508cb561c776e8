// SPDX-License-Identifier: Apache-2.0
// PruneJob (what `dsnotctl prune` and the daemon run) on the tiny transformers checkpoints of every newer
// family: each block's linear layers at the requested per-row sparsity, everything else byte for byte the
// input, the output evaluates, and the sparse output unpacks to exactly the dense one.

import DSnoTCore
import DSnoTPipeline
import DSnoTTestSupport
import Foundation
import Logging
import SafeTensors
import SparseFormat
import Testing

@Suite struct ModelFamilyPruneTests {
    static let models = TinyCheckpoint.resources + "/models"
    static let families = [
        "qwen3_untied", "gemma2_tied", "gemma3_text_untied_bf16", "phi3_longrope", "phi3_tied_bf16", "gemma3_mm_tied",
        "gemma3_mm_untied_bf16",
    ]

    /// A pre-tokenized calibration file: 4 sequences of 32 random ids below 128 (the fixtures' vocabulary;
    /// longer than Gemma's window of 8 and Phi-3 longrope's original context of 16).
    static func writeCalibration(to path: String) throws {
        var rng = SplitMix64(seed: 5)
        let ids = (0..<(4 * 32)).map { _ in Int64(rng.next() % 128) }
        let bytes = ids.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        try SafeTensorsStreamWriter<AtomicFileSink>.writeFile(
            path: path,
            tensors: [(TensorDeclaration(name: "input_ids", dtype: .i64, shape: [4, 32]), bytes)]
        )
    }

    static func options(
        _ method: Recipe.Method,
        _ pattern: SparsityPattern,
        dsnot: Bool,
        calibration: String,
        format: OutputFormat
    )
        -> PruneJobOptions
    {
        let recipe = Recipe(
            method: method,
            pattern: pattern,
            magnitudeScope: .row,
            dsnot: dsnot ? DSnoT.Settings(skip: []) : nil,
            calibration: .init(source: .tokens, path: calibration, sequences: 4, sequenceLength: 32, seed: 0)
        )
        return PruneJobOptions(recipe: recipe, format: format)
    }

    static let recipes: [(Recipe.Method, SparsityPattern, Bool)] = [
        (.wanda, .unstructured(0.5), true),
        (.sparsegpt, .nOfM(2, 4), true),
        (.magnitude, .unstructured(0.5), false),
    ]

    @Test(arguments: families, 0..<recipes.count)
    func pruneEveryLinearLayerAndNothingElse(_ family: String, _ recipeIndex: Int) throws {
        let (method, pattern, dsnot) = Self.recipes[recipeIndex]
        let root = try TemporaryDirectory("dsnot-pipeline").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.writeCalibration(to: root + "/calib.safetensors")
        let input = Self.models + "/" + family
        try FileManager.default.createDirectory(atPath: root + "/dense", withIntermediateDirectories: true)
        let job = try PruneJob(
            input: input,
            options: Self.options(
                method,
                pattern,
                dsnot: dsnot,
                calibration: root + "/calib.safetensors",
                format: .dense
            )
        )
        let result = try job.run(into: root + "/dense", logger: Logger(label: "test"))
        #expect(result.report.totals.sparsity == 0.5)

        let model = try ModelRegistry.load(directory: input)
        let original = try Checkpoint(directory: input)
        let pruned = try Checkpoint(directory: root + "/dense")
        #expect(pruned.tensorNames.sorted() == original.tensorNames.sorted())
        var prunable: Set<String> = []
        for b in 0..<model.blockCount {
            for layer in model.prunableLinearLayers(block: b) {
                prunable.insert(layer.tensorName)
                let weights = try pruned.floats(named: layer.tensorName)
                #expect(try pruned.info(named: layer.tensorName).dtype == layer.dtype)
                for r in 0..<layer.outFeatures {
                    let row = weights[(r * layer.inFeatures)..<((r + 1) * layer.inFeatures)]
                    switch pattern {
                    case .unstructured(let s):
                        let zeros = row.filter { $0 == 0 }.count
                        #expect(
                            zeros == Int(s * Double(layer.inFeatures)),
                            "\(layer.tensorName) row \(r): \(zeros) zeros"
                        )
                    case .nOfM(let n, let m):
                        for g in stride(from: row.startIndex, to: row.endIndex, by: m) {
                            #expect(row[g..<(g + m)].filter { $0 != 0 }.count <= n, "\(layer.tensorName) row \(r)")
                        }
                    }
                }
            }
        }
        #expect(prunable.count == model.blockCount * model.prunableLinearLayers(block: 0).count)
        for name in original.tensorNames where !prunable.contains(name) {
            // Norms, embeddings, the LM head (and a multimodal model's vision tower and projector) are copied
            // byte for byte.
            #expect(Array(try pruned.rawBytes(named: name)) == Array(try original.rawBytes(named: name)), "\(name)")
        }
        let logits = try ModelRegistry.load(directory: root + "/dense").logits(tokens: [
            3, 17, 99, 4, 56, 120, 7, 7, 81,
        ])
        #expect(logits.storage.allSatisfy { $0.isFinite })
    }

    @Test(arguments: families)
    func sparseOutputUnpacksToExactlyTheDenseOutput(_ family: String) throws {
        try Self.checkSparseUnpacksToDense(family) { calibration, format in
            Self.options(.wanda, .nOfM(2, 4), dsnot: true, calibration: calibration, format: format)
        }
    }

    /// Prunes `family` with `options(calibration path, format)` into a dense and a sparse output, and checks
    /// that the sparse one unpacks to exactly the dense one's tensors.
    static func checkSparseUnpacksToDense(
        _ family: String,
        options: (String, OutputFormat) -> PruneJobOptions
    ) throws {
        let root = try TemporaryDirectory("dsnot-pipeline").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeCalibration(to: root + "/calib.safetensors")
        for (name, format) in [("dense", OutputFormat.dense), ("sparse", .sparse(level: .fast, bytePlanes: false))] {
            try FileManager.default.createDirectory(atPath: root + "/" + name, withIntermediateDirectories: true)
            _ = try PruneJob(input: models + "/" + family, options: options(root + "/calib.safetensors", format))
                .run(into: root + "/" + name, logger: Logger(label: "test"))
        }
        _ = try SparseUnpacker.unpack(outputDirectory: root + "/sparse", destination: root + "/unpacked", mode: .dense)
        let expected = try Checkpoint(directory: root + "/dense")
        let unpacked = try Checkpoint(directory: root + "/unpacked")
        #expect(unpacked.tensorNames.sorted() == expected.tensorNames.sorted())
        for name in expected.tensorNames {
            #expect(Array(try unpacked.rawBytes(named: name)) == Array(try expected.rawBytes(named: name)), "\(name)")
        }
    }

    /// A multimodal checkpoint's processor settings, chat template and added tokens travel to the dense and
    /// the sparse output (and through `unpack`) unchanged, as does every vision-tower and projector tensor.
    @Test func multimodalCompanionFilesAndVisionTowerTravelUnchanged() throws {
        let root = try TemporaryDirectory("dsnot-pipeline").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.writeCalibration(to: root + "/calib.safetensors")
        let input = Self.models + "/gemma3_mm_tied"
        let companions = [
            "preprocessor_config.json", "processor_config.json", "chat_template.jinja", "added_tokens.json",
        ]
        #expect(companions.allSatisfy { Checkpoint.companionFiles.contains($0) })
        for (name, format) in [("dense", OutputFormat.dense), ("sparse", .sparse(level: .fast, bytePlanes: false))] {
            try FileManager.default.createDirectory(atPath: root + "/" + name, withIntermediateDirectories: true)
            let options = Self.options(
                .sparsegpt,
                .unstructured(0.5),
                dsnot: false,
                calibration: root + "/calib.safetensors",
                format: format
            )
            _ = try PruneJob(input: input, options: options).run(into: root + "/" + name, logger: Logger(label: "test"))
        }
        _ = try SparseUnpacker.unpack(outputDirectory: root + "/sparse", destination: root + "/unpacked", mode: .dense)
        for output in ["dense", "sparse", "unpacked"] {
            for file in companions {
                let original = try Data(contentsOf: URL(fileURLWithPath: input + "/" + file))
                let copied = try Data(contentsOf: URL(fileURLWithPath: root + "/\(output)/" + file))
                #expect(copied == original, "\(output)/\(file)")
            }
        }
        let original = try Checkpoint(directory: input)
        let unpacked = try Checkpoint(directory: root + "/unpacked")
        let vision = original.tensorNames.filter {
            $0.hasPrefix("vision_tower.") || $0.hasPrefix("multi_modal_projector.")
        }
        #expect(vision.count > 20)
        for name in vision {
            #expect(Array(try unpacked.rawBytes(named: name)) == Array(try original.rawBytes(named: name)), "\(name)")
        }
        let model = try ModelRegistry.load(directory: root + "/unpacked")
        #expect(model.modelType == "gemma3")
        #expect(try model.logits(tokens: [3, 17, 99, 4]).storage.allSatisfy(\.isFinite))
    }
}
