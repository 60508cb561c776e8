// SPDX-License-Identifier: Apache-2.0
// transformers loads `unpack --dense` of a pruned model, and its logits equal the engine's on that model.
// Opt-in: needs a Python with torch and transformers in DSNOT_TRANSFORMERS_PYTHON (e.g. the venv of
// scripts/make-tiny-models.py); CI's venv has neither, so CI skips it with this reason.

import DSnoTCore
import DSnoTPipeline
import DSnoTTestSupport
import Foundation
import Logging
import SafeTensors
import SparseFormat
import Testing

@Suite struct TransformersInteropTests {
    static let python = ProcessInfo.processInfo.environment["DSNOT_TRANSFORMERS_PYTHON"]

    static let script = """
        import sys, numpy as np, torch
        from safetensors.numpy import save_file
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32, attn_implementation="eager")
        model.eval()
        ids = torch.tensor([[int(t) for t in sys.argv[3].split(',')]])
        with torch.no_grad():
            logits = model(ids).logits[0].numpy().astype(np.float32)
        save_file({"logits": np.ascontiguousarray(logits)}, sys.argv[2])
        """

    @Test(.enabled(if: python != nil, "set DSNOT_TRANSFORMERS_PYTHON to a Python with torch and transformers"))
    func transformersLoadsTheDenseUnpackWithTheEnginesLogits() throws {
        let python = try #require(Self.python)
        let root = try TemporaryDirectory("dsnot-pipeline").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try TinyCheckpoint.write(to: root + "/in", dtype: .bf16)
        try FileManager.default.createDirectory(atPath: root + "/sparse", withIntermediateDirectories: true)
        let job = try PruneJob(
            input: root + "/in",
            options: TinyCheckpoint.options(pattern: .nOfM(2, 4), format: .sparse(level: .fast, bytePlanes: false))
        )
        _ = try job.run(into: root + "/sparse", logger: Logger(label: "test"))
        _ = try SparseUnpacker.unpack(outputDirectory: root + "/sparse", destination: root + "/dense", mode: .dense)

        try Self.expectTransformersAgrees(
            directory: root + "/dense",
            tokens: [5, 17, 300, 42, 1024, 7, 99, 2048, 13, 600],
            python: python,
            label: "llama 2:4"
        )
    }

    /// Every newer family (qwen3, gemma2, gemma3_text, phi3, gemma3 multimodal): Wanda 2:4 with DSnoT, sparse output,
    /// `unpack --dense`, and transformers' logits on the unpacked checkpoint equal the engine's.
    @Test(
        .enabled(if: python != nil, "set DSNOT_TRANSFORMERS_PYTHON to a Python with torch and transformers"),
        arguments: ModelFamilyPruneTests.families
    )
    func transformersLoadsEveryPrunedFamily(_ family: String) throws {
        let python = try #require(Self.python)
        let root = try TemporaryDirectory("dsnot-pipeline").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try ModelFamilyPruneTests.writeCalibration(to: root + "/calib.safetensors")
        try FileManager.default.createDirectory(atPath: root + "/sparse", withIntermediateDirectories: true)
        let options = ModelFamilyPruneTests.options(
            .wanda,
            .nOfM(2, 4),
            dsnot: true,
            calibration: root + "/calib.safetensors",
            format: .sparse(level: .fast, bytePlanes: false)
        )
        _ = try PruneJob(input: ModelFamilyPruneTests.models + "/" + family, options: options)
            .run(into: root + "/sparse", logger: Logger(label: "test"))
        _ = try SparseUnpacker.unpack(outputDirectory: root + "/sparse", destination: root + "/dense", mode: .dense)
        // gemma2's soft-caps (3.0 / 5.0) must stay floats through prune and unpack: transformers 5's
        // strict Gemma2Config refuses an int there.
        try Self.expectTransformersAgrees(
            directory: root + "/dense",
            tokens: Array(0..<30).map { ($0 * 37 + 11) % 128 },
            python: python,
            label: family
        )
    }

    /// Loads a checkpoint as an image-text-to-text model and checks it is `sys.argv[4]` with no missing,
    /// unexpected or mismatched tensor, runs an image prompt through the vision tower and projector
    /// (finite logits), and saves the text-only logits.
    static let multimodalScript = """
        import sys, numpy as np, torch
        from safetensors.numpy import save_file
        from transformers import AutoModelForImageTextToText
        model, info = AutoModelForImageTextToText.from_pretrained(
            sys.argv[1], dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
        assert type(model).__name__ == sys.argv[4], type(model).__name__
        bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
        assert not bad, bad
        model.eval()
        c = model.config
        ids = torch.tensor([[int(t) for t in sys.argv[3].split(',')]])
        prompt = torch.tensor([[2] + [c.image_token_id] * c.mm_tokens_per_image + [5, 6]])
        size = c.vision_config.image_size
        with torch.no_grad():
            logits = model(ids).logits[0].numpy().astype(np.float32)
            image = model(input_ids=prompt, pixel_values=torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)),
                          token_type_ids=(prompt == c.image_token_id).long()).logits
        assert torch.isfinite(image).all()
        save_file({"logits": np.ascontiguousarray(logits)}, sys.argv[2])
        print(type(model).__name__, "image prompt logits", tuple(image.shape))
        """

    /// Gemma 3 multimodal, pruned (Wanda unstructured 50 % + DSnoT, sparse output) and unpacked: transformers
    /// loads it as `Gemma3ForConditionalGeneration` with every tensor accounted for, runs an image prompt,
    /// and its text-only logits equal the engine's.
    @Test(
        .enabled(if: python != nil, "set DSNOT_TRANSFORMERS_PYTHON to a Python with torch and transformers"),
        arguments: ["gemma3_mm_tied", "gemma3_mm_untied_bf16"]
    )
    func transformersLoadsThePrunedMultimodalModelAsItsClass(_ fixture: String) throws {
        let python = try #require(Self.python)
        let root = try TemporaryDirectory("dsnot-pipeline").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try ModelFamilyPruneTests.writeCalibration(to: root + "/calib.safetensors")
        try FileManager.default.createDirectory(atPath: root + "/sparse", withIntermediateDirectories: true)
        let options = ModelFamilyPruneTests.options(
            .wanda,
            .unstructured(0.5),
            dsnot: true,
            calibration: root + "/calib.safetensors",
            format: .sparse(level: .fast, bytePlanes: false)
        )
        _ = try PruneJob(input: ModelFamilyPruneTests.models + "/" + fixture, options: options)
            .run(into: root + "/sparse", logger: Logger(label: "test"))
        let dense = root + "/dense"
        _ = try SparseUnpacker.unpack(outputDirectory: root + "/sparse", destination: dense, mode: .dense)
        let tokens = Array(0..<30).map { ($0 * 37 + 11) % 128 }
        let ours = try ModelRegistry.load(directory: dense).logits(tokens: tokens)
        let (status, output) = try ExternalProcess.run(
            python,
            [
                "-c", Self.multimodalScript, dense, dense + "/logits.safetensors",
                tokens.map(String.init).joined(separator: ","), "Gemma3ForConditionalGeneration",
            ]
        )
        #expect(status == 0, "\(output)")
        let reference = try SafeTensorsFile(path: dense + "/logits.safetensors").floats(named: "logits")
        #expect(reference.count == ours.count)
        let maxReference = reference.reduce(0) { max($0, abs($1)) }
        let maxDifference = zip(ours.storage, reference).reduce(0) { max($0, abs($1.0 - $1.1)) }
        print("\(fixture): transformers vs engine: max |Δ| \(maxDifference), max |ref| \(maxReference)")
        // The engine's tolerance against transformers (issue 3): 1e-4 of the largest reference logit.
        #expect(maxDifference <= 1e-4 * maxReference, "max |Δ| \(maxDifference), max |ref| \(maxReference)")
    }

    /// The MoE families (mixtral, qwen2_moe, qwen3_moe): Wanda 2:4 with DSnoT, every expert pruned with its
    /// routed tokens (`expert_min_tokens` 8), sparse output, `unpack --dense`; transformers loads the
    /// per-expert layout back into its fused experts and its logits equal the engine's.
    @Test(
        .enabled(if: python != nil, "set DSNOT_TRANSFORMERS_PYTHON to a Python with torch and transformers"),
        arguments: MoEPruneTests.families
    )
    func transformersLoadsEveryPrunedMoEFamily(_ family: String) throws {
        let python = try #require(Self.python)
        let root = try TemporaryDirectory("dsnot-pipeline").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try ModelFamilyPruneTests.writeCalibration(to: root + "/calib.safetensors")
        try FileManager.default.createDirectory(atPath: root + "/sparse", withIntermediateDirectories: true)
        let options = MoEPruneTests.options(
            .wanda,
            .nOfM(2, 4),
            dsnot: true,
            calibration: root + "/calib.safetensors",
            format: .sparse(level: .fast, bytePlanes: false),
            expertMinTokens: 8
        )
        _ = try PruneJob(input: ModelFamilyPruneTests.models + "/" + family, options: options)
            .run(into: root + "/sparse", logger: Logger(label: "test"))
        _ = try SparseUnpacker.unpack(outputDirectory: root + "/sparse", destination: root + "/dense", mode: .dense)
        try Self.expectTransformersAgrees(
            directory: root + "/dense",
            tokens: Array(0..<30).map { ($0 * 37 + 11) % 128 },
            python: python,
            label: family
        )
    }

    /// Runs transformers on `directory` and compares its logits with the engine's (issue 3's bound).
    static func expectTransformersAgrees(directory: String, tokens: [Int], python: String, label: String) throws {
        let ours = try ModelRegistry.load(directory: directory).logits(tokens: tokens)
        let (status, output) = try ExternalProcess.run(
            python,
            [
                "-c", script, directory, directory + "/logits.safetensors",
                tokens.map(String.init).joined(separator: ","),
            ]
        )
        #expect(status == 0, "\(output)")
        let reference = try SafeTensorsFile(path: directory + "/logits.safetensors").floats(named: "logits")
        #expect(reference.count == ours.count)
        let maxReference = reference.reduce(0) { max($0, abs($1)) }
        let maxDifference = zip(ours.storage, reference).reduce(0) { max($0, abs($1.0 - $1.1)) }
        print(
            "\(label): transformers vs engine on the unpacked model: max |Δ| \(maxDifference), max |ref| \(maxReference)"
        )
        // The engine's tolerance against transformers (issue 3): 1e-4 of the largest reference logit.
        #expect(maxDifference <= 1e-4 * maxReference, "max |Δ| \(maxDifference), max |ref| \(maxReference)")
    }
}
