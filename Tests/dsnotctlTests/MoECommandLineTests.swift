// SPDX-License-Identifier: Apache-2.0
// The MoE families end to end through the built binaries: `dsnotctl eval` and `dsnotctl prune
// --expert-min-tokens` on a tiny Qwen2-MoE, and dsnotd pruning dropped Qwen3-MoE checkpoints with
// `expert_min_tokens` from [watch.recipe] and from a checkpoint's dsnot.toml.

import DSnoTControlProtocol
import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@Suite(.serialized) struct MoECommandLineTests {
    static let models = PipelineEndToEndTests.repo + "/Tests/DSnoTCoreTests/Resources/models"
    static let tokenizers = PipelineEndToEndTests.repo + "/Tests/DSnoTCoreTests/Resources/tokenizers"

    /// 4 windows of 32 ids below 128 (every fixture's vocabulary).
    static func writeCalibration(to path: String) throws {
        var state: UInt64 = 7
        let ids = (0..<(4 * 32)).map { _ -> Int64 in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int64(state >> 57)  // 0..<128
        }
        try SafeTensorsStreamWriter<AtomicFileSink>.writeFile(
            path: path,
            tensors: [
                (TensorDeclaration(name: "input_ids", dtype: .i64, shape: [4, 32]), ids.withUnsafeBytes { Array($0) })
            ]
        )
    }

    /// `qwen2_moe_untied` with the vocabulary of the sp-bpe tokenizer (4256 ids: new random embedding and
    /// LM head) and that tokenizer, so text can be evaluated; every block tensor is the fixture's.
    static func writeEvaluableModel(to directory: String) throws {
        let fixture = models + "/qwen2_moe_untied"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let vocab = 4256
        var config = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: fixture + "/config.json")))
                as? [String: Any]
        )
        config["vocab_size"] = vocab
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: directory + "/config.json"))
        try FileManager.default.copyItem(
            atPath: tokenizers + "/sp-bpe/tokenizer.json",
            toPath: directory + "/tokenizer.json"
        )
        let file = try SafeTensorsFile(path: fixture + "/model.safetensors")
        var state: UInt64 = 11
        var tensors: [(TensorDeclaration, [UInt8])] = []
        for name in file.tensorNames.sorted() {
            let info = try file.info(named: name)
            if name == "model.embed_tokens.weight" || name == "lm_head.weight" {
                let values = (0..<(vocab * info.shape[1])).map { _ -> Float in
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23) * 0.15
                }
                tensors.append(
                    (
                        TensorDeclaration(name: name, dtype: .f32, shape: [vocab, info.shape[1]]),
                        values.withUnsafeBytes { Array($0) }
                    )
                )
            } else {
                tensors.append(
                    (
                        TensorDeclaration(name: name, dtype: info.dtype, shape: info.shape),
                        Array(file.rawBytes(of: info))
                    )
                )
            }
        }
        try SafeTensorsStreamWriter<AtomicFileSink>.writeFile(path: directory + "/model.safetensors", tensors: tensors)
    }

    static func json(_ text: String) -> [String: Any]? {
        try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    }

    @Test func evalAndPruneAMoECheckpoint() throws {
        let scratch = try TemporaryDirectory("dsnot-moe").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try Self.writeEvaluableModel(to: scratch + "/model")
        try Self.writeCalibration(to: scratch + "/calib.safetensors")
        let dsnotctl = try Binaries.path("dsnotctl")
        let text = Self.tokenizers + "/corpus.txt"

        let eval = try runProgram(
            dsnotctl,
            ["eval", scratch + "/model", "--text", text, "--seqlen", "64", "--max-windows", "2", "--json"]
        )
        #expect(eval.status == 0, "\(eval.stderr)")
        let perplexity = try #require(Self.json(eval.stdout)?["perplexity"] as? Double)
        #expect(perplexity.isFinite && perplexity > 1)

        let prune = try runProgram(
            dsnotctl,
            [
                "prune", scratch + "/model", scratch + "/out", "--calib-tokens", scratch + "/calib.safetensors",
                "--sparsity", "0.5", "--expert-min-tokens", "40", "--eval-text", text, "--eval-seqlen", "64",
                "--eval-windows", "2", "--json",
            ]
        )
        #expect(prune.status == 0, "\(prune.stderr)")
        let report = try #require(Self.json(prune.stdout))
        #expect((report["recipe"] as? [String: Any])?["expert_min_tokens"] as? Int == 40)
        let blocks = try #require(report["blocks"] as? [[String: Any]])
        // mlp_only_layers = [1]: blocks 0 and 2 are sparse (4 experts each), block 1 is dense.
        #expect(blocks.map { ($0["experts"] as? [[String: Any]])?.count ?? 0 } == [4, 0, 4])
        for experts in blocks.compactMap({ $0["experts"] as? [[String: Any]] }) {
            let tokens = experts.compactMap { $0["tokens"] as? Int }
            #expect(tokens.reduce(0, +) == 2 * 4 * 32)
            for expert in experts {
                #expect(expert["fallback"] as? Bool == ((expert["tokens"] as? Int ?? 0) < 40), "\(expert)")
                #expect(expert["sparsity"] as? Double == 0.5 && expert["dsnot_swaps"] is Int)
            }
        }
        let pruned = try #require((report["perplexity"] as? [String: Any])?["pruned"] as? Double)
        #expect(pruned.isFinite)

        let invalid = try runProgram(
            dsnotctl,
            [
                "prune", scratch + "/model", scratch + "/out2", "--calib-tokens", scratch + "/calib.safetensors",
                "--expert-min-tokens", "0",
            ]
        )
        #expect(invalid.status != 0)
        #expect(invalid.stderr.contains("--expert-min-tokens") && invalid.stderr.contains("≥ 1"), "\(invalid.stderr)")
    }

    @Test func dsnotdPrunesDroppedMoECheckpointsWithTheRecipesExpertMinimum() throws {
        let scratch = try TemporaryDirectory("dsnot-moe").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try Self.writeCalibration(to: scratch + "/calib.safetensors")
        let daemon = try DaemonUnderTest(
            watches: """
                [[watch]]
                name = "main"
                inbox = "in"
                outbox = "out"
                [watch.recipe]
                method = "wanda"
                pattern = "2:4"
                expert_min_tokens = 8
                calibration = { source = "tokens", path = "\(scratch)/calib.safetensors" }

                """
        )
        defer { daemon.stop() }
        try daemon.drop(Self.models + "/qwen3_moe_untied", into: "in", as: "routed")
        try daemon.drop(Self.models + "/qwen3_moe_untied", into: "in", as: "thin") { directory in
            try Data("expert_min_tokens = 1000\n".utf8).write(to: URL(fileURLWithPath: directory + "/dsnot.toml"))
        }
        #expect(daemon.waitForDone(2, timeout: 120), "\(daemon.log)")
        for job in try daemon.jobs() {
            let output = try #require(job.outputPath)
            let report = try #require(
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: URL(fileURLWithPath: output + "/dsnot-report.json"))
                )
                    as? [String: Any]
            )
            let minimum = job.inputPath.hasSuffix("/thin") ? 1000 : 8
            #expect((report["recipe"] as? [String: Any])?["expert_min_tokens"] as? Int == minimum)
            let experts = (report["blocks"] as? [[String: Any]] ?? []).flatMap {
                $0["experts"] as? [[String: Any]] ?? []
            }
            #expect(experts.count == 2 * 8)
            #expect(experts.allSatisfy { ($0["fallback"] as? Bool) == (($0["tokens"] as? Int ?? 0) < minimum) })
            if minimum == 1000 { #expect(experts.allSatisfy { $0["fallback"] as? Bool == true }) }
            #expect(try runProgram(try Binaries.path("dsnotctl"), ["verify", output]).status == 0)
        }
    }
}
