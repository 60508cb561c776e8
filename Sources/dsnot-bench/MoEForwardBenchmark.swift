// SPDX-License-Identifier: Apache-2.0
// MoEForwardBenchmark: a Mixtral-shaped MoE block's forward pass versus cblas_sgemm on the GEMMs of its top-k experts.

import DSnoTCore
import Foundation
import SafeTensors

/// One Mixtral block scaled to fit a small machine (hidden 1024, 8 query heads of 128 and 2 KV heads,
/// 8 experts of SwiGLU width 3584 — Mixtral's 3.5 × hidden —, top 2) with seeded random fp32 weights,
/// held in memory. At L = 128 and 512, best of 5 alternating runs, it times `DecoderBlock.forward` and,
/// in the same run, plain `cblas_sgemm` on the dense equivalent of what a token needs: the attention
/// projections at `L` rows and `k` experts' gate, up and down at `L` rows each (the FLOPs of top-k
/// routing). Ratio = those sgemm times / forward time: near the dense LLaMA block's efficiency when only
/// routed tokens are computed, and at most `k / E` = 0.25 if every expert ran on every token. A second
/// line compares with the GEMMs of all `E` experts on every token (what routing saves).
enum MoEForwardBenchmark {
    static let repetitions = 5
    static let hidden = 1024
    static let heads = 8
    static let kvHeads = 2
    static let headDim = 128
    static let experts = 8
    static let topK = 2
    static let width = 3584

    static let benchmark = Benchmark(name: "moe-forward") {
        let model = try mixtralShapedModel()
        let block = try model.loadBlock(0)
        for length in [128, 512] {
            var rng = SplitMix64(seed: 3)
            let input = Matrix(
                rows: length,
                columns: hidden,
                storage: (0..<(length * hidden)).map { _ in rng.normal() }
            )
            let attention = [
                (length, heads * headDim, hidden), (length, kvHeads * headDim, hidden),
                (length, kvHeads * headDim, hidden), (length, hidden, heads * headDim),
            ]
            let expert = [(length, width, hidden), (length, width, hidden), (length, hidden, width)]
            let routed = attention + Array(repeating: expert, count: topK).flatMap(\.self)
            let everyExpert = attention + Array(repeating: expert, count: experts).flatMap(\.self)
            let (forward, sgemm) = bestTimes({ _ = block.forward(input) }, { sgemmRun(routed) })
            let allExperts = BenchmarkSupport.bestOf(2) { sgemmRun(everyExpert) }
            let flops = routed.reduce(0.0) { $0 + 2 * Double($1.0) * Double($1.1) * Double($1.2) }
            BenchmarkSupport.report(
                "moe-forward.mixtral_block_h1024_e8_top2_L\(length)_vs_topk_sgemm",
                ratio: sgemm / forward,
                "sgemm time of the top-k GEMMs",
                over: "MoE block forward time",
                details: [
                    "block \(BenchmarkSupport.format(flops / forward / 1e9, digits: 1)) GFLOP/s of top-k work, "
                        + "sgemm \(BenchmarkSupport.format(flops / sgemm / 1e9, digits: 1)) GFLOP/s at the same shapes",
                    "every-expert sgemm / block forward = \(BenchmarkSupport.format(allExperts / forward, digits: 2)) "
                        + "(> 1: routing computes less than all experts on all tokens)",
                ]
            )
        }
    }

    /// `cblas_sgemm` on each `(m, n, k)`, `C = A Bᵀ` as a linear layer runs it.
    static func sgemmRun(_ shapes: [(Int, Int, Int)]) {
        let largest = shapes.reduce(0) { max($0, $1.0 * $1.2, $1.1 * $1.2, $1.0 * $1.1) }
        let a = [Float](repeating: 0.5, count: largest)
        let b = [Float](repeating: 0.25, count: largest)
        var c = [Float](repeating: 0, count: largest)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    for (m, n, k) in shapes {
                        Linalg.gemm(
                            m: m,
                            n: n,
                            k: k,
                            a: pa.baseAddress,
                            lda: k,
                            b: pb.baseAddress,
                            ldb: k,
                            transposeB: true,
                            c: pc.baseAddress,
                            ldc: n
                        )
                    }
                }
            }
        }
        BenchmarkSupport.blackHole(c)
    }

    /// Best of `repetitions` runs of each, alternating (after one warm-up each), so machine load hits both.
    static func bestTimes(_ first: () -> Void, _ second: () -> Void) -> (Double, Double) {
        first()
        second()
        var best = (Double.infinity, Double.infinity)
        for _ in 0..<repetitions {
            best.0 = min(best.0, BenchmarkSupport.bestOf(1, first))
            best.1 = min(best.1, BenchmarkSupport.bestOf(1, second))
        }
        return best
    }

    static var config: String {
        """
        {"model_type": "mixtral", "hidden_size": \(hidden), "intermediate_size": \(width), "num_hidden_layers": 1,
         "num_attention_heads": \(heads), "num_key_value_heads": \(kvHeads), "head_dim": \(headDim),
         "num_local_experts": \(experts), "num_experts_per_tok": \(topK), "rms_norm_eps": 1e-5,
         "rope_theta": 1000000.0, "max_position_embeddings": 4096, "vocab_size": 64, "tie_word_embeddings": true}
        """
    }

    static func mixtralShapedModel() throws -> any DecoderModel {
        var tensors = InMemoryTensors()
        var rng = SplitMix64(seed: 8)
        func add(_ name: String, _ shape: [Int], scale: Float, offset: Float = 0) {
            let count = shape.reduce(1, *)
            tensors.add(name, shape: shape, values: (0..<count).map { _ in offset + scale * rng.normal() })
        }
        add("model.embed_tokens.weight", [64, hidden], scale: 0.05)
        add("model.norm.weight", [hidden], scale: 0.1, offset: 1)
        let p = "model.layers.0."
        add(p + "input_layernorm.weight", [hidden], scale: 0.1, offset: 1)
        add(p + "post_attention_layernorm.weight", [hidden], scale: 0.1, offset: 1)
        for (name, rows, columns) in [
            ("q_proj", heads * headDim, hidden), ("k_proj", kvHeads * headDim, hidden),
            ("v_proj", kvHeads * headDim, hidden), ("o_proj", hidden, heads * headDim),
        ] {
            add(p + "self_attn.\(name).weight", [rows, columns], scale: 1 / Float(columns).squareRoot())
        }
        add(p + "block_sparse_moe.gate.weight", [experts, hidden], scale: 1 / Float(hidden).squareRoot())
        for e in 0..<experts {
            for (name, rows, columns) in [("w1", width, hidden), ("w3", width, hidden), ("w2", hidden, width)] {
                add(
                    p + "block_sparse_moe.experts.\(e).\(name).weight",
                    [rows, columns],
                    scale: 1 / Float(columns).squareRoot()
                )
            }
        }
        return try ModelRegistry.model(config: Data(config.utf8), path: "mixtral-shaped", tensors: tensors)
    }
}
