// SPDX-License-Identifier: Apache-2.0
// ForwardPassBenchmark: a SmolLM2-135M-shaped decoder block's forward pass versus cblas_sgemm on the same GEMMs.

import DSnoTCore
import DSnoTSupport
import Foundation
import SafeTensors

/// One LLaMA block with SmolLM2-135M's shapes (hidden 576, 9 query / 3 KV heads of 64, SwiGLU 1536)
/// and seeded random fp32 weights, held in memory (throughput does not depend on the values, so
/// `make bench` needs no downloaded model). At L = 128, 512 and 2048, best of 5 each, it times
/// `DecoderBlock.forward` and, in the same run, plain `cblas_sgemm` on exactly the block's GEMMs
/// (`ForwardBenchmark`). Ratio = sgemm time / forward time, the share of the
/// same-shape GEMM rate the whole block reaches (target ≥ 0.7 at L = 512). The last line runs 4
/// sequences at L = 512 one per core, as the pruner's passes do (`Parallel.forEach` in DSnoTCore).
enum ForwardPassBenchmark {
    static let repetitions = 5

    static let benchmark = Benchmark(name: "forward") {
        let model = try smolLM2ShapedModel()
        for (length, sequences) in [(128, 1), (512, 1), (2048, 1), (512, 4)] {
            let r = try ForwardBenchmark.run(
                model: model,
                block: 0,
                sequenceLength: length,
                repetitions: repetitions,
                sequences: sequences
            )
            BenchmarkSupport.report(
                "forward.smollm2_block_L\(length)\(sequences > 1 ? "_x\(sequences)_one_per_core" : "")_vs_sgemm",
                ratio: r.efficiency,
                "sgemm time",
                over: "block forward time",
                details: [
                    "\(BenchmarkSupport.format(r.tokensPerSecond, digits: 0)) tokens/s",
                    "block \(BenchmarkSupport.format(r.forwardGFLOPS, digits: 1)) GFLOP/s, "
                        + "sgemm \(BenchmarkSupport.format(r.sgemmGFLOPS, digits: 1)) GFLOP/s at the same shapes",
                ]
            )
        }
    }

    static let config = """
        {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 1,
         "num_attention_heads": 9, "num_key_value_heads": 3, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
         "max_position_embeddings": 8192, "vocab_size": 64, "tie_word_embeddings": true}
        """

    static func smolLM2ShapedModel() throws -> any DecoderModel {
        var tensors = InMemoryTensors()
        var rng = SplitMix64(seed: 7)
        func add(_ name: String, _ shape: [Int], scale: Float, offset: Float = 0) {
            let count = shape.reduce(1, *)
            tensors.add(name, shape: shape, values: (0..<count).map { _ in offset + scale * rng.normal() })
        }
        add("model.embed_tokens.weight", [64, 576], scale: 0.05)
        add("model.norm.weight", [576], scale: 0.1, offset: 1)
        add("model.layers.0.input_layernorm.weight", [576], scale: 0.1, offset: 1)
        add("model.layers.0.post_attention_layernorm.weight", [576], scale: 0.1, offset: 1)
        let linears: [(String, Int, Int)] = [
            ("self_attn.q_proj", 576, 576), ("self_attn.k_proj", 192, 576), ("self_attn.v_proj", 192, 576),
            ("self_attn.o_proj", 576, 576), ("mlp.gate_proj", 1536, 576), ("mlp.up_proj", 1536, 576),
            ("mlp.down_proj", 576, 1536),
        ]
        for (name, rows, columns) in linears {
            add("model.layers.0.\(name).weight", [rows, columns], scale: 1 / Float(columns).squareRoot())
        }
        return try ModelRegistry.model(config: Data(config.utf8), path: "smollm2-shaped", tensors: tensors)
    }
}

/// F32 tensors in memory, as a `TensorSource`.
struct InMemoryTensors: TensorSource {
    private var infos: [String: TensorInfo] = [:]
    private var bytes: [String: [UInt8]] = [:]
    private(set) var tensorNames: [String] = []

    var location: String { "memory" }

    mutating func add(_ name: String, shape: [Int], values: [Float]) {
        let data = values.withUnsafeBytes { Array($0) }
        infos[name] = TensorInfo(name: name, dtype: .f32, shape: shape, dataOffsets: 0..<data.count)
        bytes[name] = data
        tensorNames.append(name)
    }

    func tensorInfo(named name: String) -> TensorInfo? { infos[name] }

    func withTensorBytes<R>(named name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        guard let data = bytes[name] else { throw SafeTensorsError.tensorNotFound(name: name, file: location) }
        return try data.withUnsafeBytes(body)
    }
}
