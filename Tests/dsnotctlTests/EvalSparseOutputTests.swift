// SPDX-License-Identifier: Apache-2.0
// `dsnotctl eval` on a sparse output: the built binary prunes a tiny LLaMA to bitmask + LZ4, then eval on the
// output directly gives bit for bit the perplexity of eval on its `unpack --dense`.

import DSnoTCore
import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@Suite(.serialized) struct EvalSparseOutputTests {
    static let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("DSnoTCoreTests/Resources/tokenizers").path
    static let tokenizer = resources + "/sp-bpe/tokenizer.json"
    static let text = resources + "/corpus.txt"

    /// A random three-block LLaMA (hidden 64, bf16) whose vocabulary covers the tokenizer, with its tokenizer.
    static func writeModel(_ directory: String) throws {
        let vocab = try Tokenizer(contentsOf: tokenizer).vocabularySize
        let (hidden, mlp, blocks) = (64, 128, 3)
        let config = """
            {"model_type": "llama", "hidden_size": \(hidden), "intermediate_size": \(mlp),
             "num_hidden_layers": \(blocks), "num_attention_heads": 4, "num_key_value_heads": 2,
             "rms_norm_eps": 1e-6, "vocab_size": \(vocab), "max_position_embeddings": 128,
             "tie_word_embeddings": true}
            """
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(config.utf8).write(to: URL(fileURLWithPath: directory + "/config.json"))
        try FileManager.default.copyItem(atPath: tokenizer, toPath: directory + "/tokenizer.json")
        var rng = SplitMix64(seed: 29)
        var tensors: [(TensorDeclaration, [UInt8])] = []
        func add(_ name: String, _ shape: [Int], ones: Bool = false, scale: Float = 0.15) {
            let values = (0..<shape.reduce(1, *)).map { _ in ones ? 1 : rng.normal() * scale }
            tensors.append(
                (TensorDeclaration(name: name, dtype: .bf16, shape: shape), FloatConversion.encode(values, as: .bf16))
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

    /// `dsnotctl eval DIR --text corpus --seqlen 64 --json`, parsed.
    static func eval(_ directory: String) throws -> [String: Any] {
        let ctl = try Binaries.path("dsnotctl")
        let output = try runProgram(ctl, ["eval", directory, "--text", text, "--seqlen", "64", "--json"])
        #expect(output.status == 0, "\(output.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
    }

    @Test(arguments: [["--sparsity", "0.5"], ["--pattern", "2:4"]])
    func evalOnTheSparseOutputEqualsEvalOnItsDenseUnpack(_ pattern: [String]) throws {
        let scratch = try TemporaryDirectory("dsnot-eval-sparse").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try Self.writeModel(scratch + "/model")
        let ctl = try Binaries.path("dsnotctl")
        let prune = try runProgram(
            ctl,
            [
                "prune", scratch + "/model", scratch + "/out", "--calib-text", Self.text, "--nsamples", "4", "--seqlen",
                "64",
            ]
                + pattern
        )
        #expect(prune.status == 0, "\(prune.stderr)")
        let unpack = try runProgram(ctl, ["unpack", scratch + "/out", scratch + "/dense", "--dense"])
        #expect(unpack.status == 0, "\(unpack.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch + "/out").contains("model.safetensors.lz4"))

        let sparse = try Self.eval(scratch + "/out")
        let dense = try Self.eval(scratch + "/dense")
        let perplexity = try #require(sparse["perplexity"] as? Double)
        // Bit for bit: JSON carries the shortest round-tripping spelling of each Double.
        #expect(perplexity == dense["perplexity"] as? Double && perplexity.isFinite && perplexity > 1)
        #expect(sparse["mean_loss"] as? Double == dense["mean_loss"] as? Double)
        #expect(sparse["windows"] as? Int == dense["windows"] as? Int && (sparse["windows"] as? Int ?? 0) > 1)
        let original = try Self.eval(scratch + "/model")
        #expect(original["perplexity"] as? Double != perplexity, "pruning changed the model")
    }

    @Test func evalOfACorruptSparseOutputFailsNamingTheFile() throws {
        let scratch = try TemporaryDirectory("dsnot-eval-sparse").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        try Self.writeModel(scratch + "/model")
        let ctl = try Binaries.path("dsnotctl")
        let prune = try runProgram(
            ctl,
            ["prune", scratch + "/model", scratch + "/out", "--method", "magnitude", "--sparsity", "0.5", "--no-dsnot"]
        )
        #expect(prune.status == 0, "\(prune.stderr)")
        let frame = scratch + "/out/model.safetensors.lz4"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: frame))
        bytes[bytes.count / 2] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: frame))
        let output = try runProgram(ctl, ["eval", scratch + "/out", "--text", Self.text, "--seqlen", "64"])
        #expect(output.status == 1)
        #expect(output.stderr.contains("model.safetensors.lz4") && output.stderr.contains("sha256"), "\(output.stderr)")
    }
}
