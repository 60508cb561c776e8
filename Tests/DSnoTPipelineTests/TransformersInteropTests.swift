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

    /// Every newer family (qwen3, gemma2, gemma3_text, phi3): Wanda 2:4 with DSnoT, sparse output,
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
