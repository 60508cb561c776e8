// SPDX-License-Identifier: Apache-2.0
// kill -9 of dsnotd in the middle of a real prune, then a restart: the job completes exactly once,
// no partial output is ever visible, and the job database is intact.

import DSnoTControlProtocol
import Foundation
import SafeTensors
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.serialized) struct CrashRecoveryTests {
    /// A random LLaMA big enough that pruning takes seconds (6 blocks, hidden 256), and `input_ids` [64, 256].
    static func writeModel(_ directory: String, calibration: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let (hidden, mlp, blocks, vocab) = (256, 512, 6, 512)
        let config = """
            {"model_type": "llama", "hidden_size": \(hidden), "intermediate_size": \(mlp),
             "num_hidden_layers": \(blocks), "num_attention_heads": 4, "num_key_value_heads": 4,
             "rms_norm_eps": 1e-6, "vocab_size": \(vocab), "max_position_embeddings": 512,
             "tie_word_embeddings": true}
            """
        try Data(config.utf8).write(to: URL(fileURLWithPath: directory + "/config.json"))
        var tensors: [(TensorDeclaration, [UInt8])] = []
        var state: UInt64 = 0x9E37_79B9
        func random(_ count: Int, scale: Float) -> [UInt8] {
            let values = (0..<count).map { _ -> Float in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return (Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)) * scale
            }
            return values.withUnsafeBytes { Array($0) }
        }
        func add(_ name: String, _ shape: [Int], scale: Float = 0.05, ones: Bool = false) {
            let count = shape.reduce(1, *)
            let bytes =
                ones ? [Float](repeating: 1, count: count).withUnsafeBytes { Array($0) } : random(count, scale: scale)
            tensors.append((TensorDeclaration(name: name, dtype: .f32, shape: shape), bytes))
        }
        add("model.embed_tokens.weight", [vocab, hidden], scale: 1)
        add("model.norm.weight", [hidden], ones: true)
        for b in 0..<blocks {
            let p = "model.layers.\(b)."
            for name in ["q_proj", "k_proj", "v_proj", "o_proj"] {
                add(p + "self_attn.\(name).weight", [hidden, hidden])
            }
            add(p + "mlp.gate_proj.weight", [mlp, hidden])
            add(p + "mlp.up_proj.weight", [mlp, hidden])
            add(p + "mlp.down_proj.weight", [hidden, mlp])
            add(p + "input_layernorm.weight", [hidden], ones: true)
            add(p + "post_attention_layernorm.weight", [hidden], ones: true)
        }
        try SafeTensorsStreamWriter<AtomicFileSink>.writeFile(path: directory + "/model.safetensors", tensors: tensors)
        let ids = (0..<(64 * 256)).map { Int32(($0 * 7919 + $0 / 13) % vocab) }
        try SafeTensorsStreamWriter<AtomicFileSink>.writeFile(
            path: calibration,
            tensors: [
                (
                    TensorDeclaration(name: "input_ids", dtype: .i32, shape: [64, 256]),
                    ids.withUnsafeBytes { Array($0) }
                )
            ]
        )
    }

    @Test func killMinusNineMidJobThenRestartCompletesTheJobOnce() throws {
        var template = Array("/tmp/dsnot-crash-XXXXXX".utf8CString)
        let scratch = String(cString: try #require(mkdtemp(&template)))
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try Self.writeModel(scratch + "/model", calibration: scratch + "/calib.safetensors")
        let watches = """
            [[watch]]
            name = "main"
            inbox = "in"
            outbox = "out"
            [watch.recipe]
            method = "sparsegpt"
            sparsity = 0.5
            calibration_tokens = "\(scratch)/calib.safetensors"

            """
        let first = try DaemonUnderTest(watches: watches)
        let root = first.root
        try first.drop(scratch + "/model", into: "in", as: "big")
        #expect(
            waitUntil(timeout: 60) {
                guard let job = try? first.jobs().first else { return false }
                return job.state == .running && (job.block ?? 0) >= 1
            },
            "\(first.log)"
        )
        kill(first.process.processIdentifier, SIGKILL)
        first.process.waitUntilExit()
        // Only the hidden staging directory may exist; nothing under the output's final name.
        let visible = try FileManager.default.contentsOfDirectory(atPath: root + "/out").filter { !$0.hasPrefix(".") }
        #expect(visible.isEmpty)

        // Restart on the same state directory and inbox (the DaemonUnderTest root is reused).
        let second = try DaemonUnderTest(reusing: root)
        defer { second.stop() }
        #expect(waitUntil(timeout: 120) { (try? second.jobs().first?.state) == .done }, "\(second.log)")
        let jobs = try second.jobs()
        #expect(jobs.count == 1)
        let output = try #require(jobs.first?.outputPath)
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/out") == ["big-sparsegpt-u50-dsnot"])
        #expect(try runProgram(try Binaries.path("dsnotctl"), ["verify", output]).status == 0)
        let integrity = try runProgram("/usr/bin/sqlite3", [root + "/state/jobs.sqlite", "PRAGMA integrity_check"])
        #expect(integrity.stdout == "ok\n", "\(integrity)")
    }
}
