// SPDX-License-Identifier: Apache-2.0
// transformers loads `unpack --dense` of a pruned model, and its logits equal the engine's on that model.
// Opt-in: needs a Python with torch and transformers in DSNOT_TRANSFORMERS_PYTHON (e.g. the venv of
// scripts/make-tiny-models.py); CI's venv has neither, so CI skips it with this reason.

import DSnoTCore
import DSnoTPipeline
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
        model = AutoModelForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.float32)
        model.eval()
        ids = torch.tensor([[int(t) for t in sys.argv[3].split(',')]])
        with torch.no_grad():
            logits = model(ids).logits[0].numpy().astype(np.float32)
        save_file({"logits": np.ascontiguousarray(logits)}, sys.argv[2])
        """

    @Test(.enabled(if: python != nil, "set DSNOT_TRANSFORMERS_PYTHON to a Python with torch and transformers"))
    func transformersLoadsTheDenseUnpackWithTheEnginesLogits() throws {
        let python = try #require(Self.python)
        let root = try TinyCheckpoint.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try TinyCheckpoint.write(to: root + "/in", dtype: .bf16)
        try FileManager.default.createDirectory(atPath: root + "/sparse", withIntermediateDirectories: true)
        let job = try PruneJob(
            input: root + "/in",
            options: TinyCheckpoint.options(pattern: .nOfM(2, 4), format: .sparse(level: .fast, bytePlanes: false))
        )
        _ = try job.run(into: root + "/sparse", logger: Logger(label: "test"))
        _ = try SparseUnpacker.unpack(outputDirectory: root + "/sparse", destination: root + "/dense", mode: .dense)

        let tokens = [5, 17, 300, 42, 1024, 7, 99, 2048, 13, 600]
        let ours = try ModelRegistry.load(directory: root + "/dense").logits(tokens: tokens)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [
            "-c", Self.script, root + "/dense", root + "/logits.safetensors",
            tokens.map(String.init).joined(separator: ","),
        ]
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let reference = try SafeTensorsFile(path: root + "/logits.safetensors").floats(named: "logits")
        #expect(reference.count == ours.count)
        let maxReference = reference.reduce(0) { max($0, abs($1)) }
        let maxDifference = zip(ours.storage, reference).reduce(0) { max($0, abs($1.0 - $1.1)) }
        print("transformers vs engine on the unpacked 2:4 model: max |Δ| \(maxDifference), max |ref| \(maxReference)")
        // The engine's tolerance against transformers (issue 3): 1e-4 of the largest reference logit.
        #expect(maxDifference <= 1e-4 * maxReference, "max |Δ| \(maxDifference), max |ref| \(maxReference)")
    }
}
