// SPDX-License-Identifier: Apache-2.0
// BF16GEMMBenchmark: oneDNN's bf16 GEMM (fp32 accumulation) against cblas_sgemm at the pipeline's linear shapes.

import DSnoTCore
import DSnoTSupport

/// Issue 14 §1's first measurement: how much faster a linear layer's `x · Wᵀ` is with bf16 inputs
/// (`BF16GEMM`, oneDNN) than in fp32 (`cblas_sgemm`), one thread each, as the pipeline runs one
/// sequence per core. Shapes: SmolLM2-135M's linears and LLaMA-7B's at L = 512. The bf16 time
/// includes rounding the activations at every call (the weights are converted once, as a block's
/// would be). Ratio = sgemm time / bf16 time; the prune aim (bf16 wall ≤ 0.5 × fp32) needs
/// about 2 here, since norms, softmax and statistics stay fp32. Best of 5, alternating.
enum BF16GEMMBenchmark {
    static let benchmark = Benchmark(name: "bf16-gemm") {
        let length = 512
        let shapes: [(model: String, name: String, out: Int, in: Int)] = [
            ("smollm2", "q_o_proj", 576, 576), ("smollm2", "k_v_proj", 192, 576),
            ("smollm2", "gate_up_proj", 1536, 576), ("smollm2", "down_proj", 576, 1536),
            ("llama7b", "q_k_v_o_proj", 4096, 4096), ("llama7b", "gate_up_proj", 11008, 4096),
            ("llama7b", "down_proj", 4096, 11008),
        ]
        var rng = SplitMix64(seed: 11)
        for shape in shapes {
            let x = Matrix(
                rows: length,
                columns: shape.in,
                storage: (0..<(length * shape.in)).map { _ in rng.normal() }
            )
            let weight = Matrix(
                rows: shape.out,
                columns: shape.in,
                storage: (0..<(shape.out * shape.in)).map { _ in 0.02 * rng.normal() }
            )
            let packed = BF16GEMM.Weights(weight)
            var failure: (any Error)?
            let (bf16, sgemm) = Linalg.withSingleThreadedBLAS {
                ForwardBenchmark.bestTimes(
                    5,
                    {
                        do { BenchmarkSupport.blackHole(try BF16GEMM.multiply(x, packed, threads: 1)) } catch {
                            failure = error
                        }
                    },
                    { BenchmarkSupport.blackHole(Linalg.matmul(x, weight, transposeB: true)) }
                )
            }
            if let failure { throw failure }
            let flops = 2 * Double(length) * Double(shape.out) * Double(shape.in)
            BenchmarkSupport.report(
                "bf16_gemm.\(shape.model)_\(shape.name)_L\(length)",
                ratio: sgemm / bf16,
                "sgemm time",
                over: "bf16 GEMM time",
                details: [
                    "(\(length), \(shape.in)) · (\(shape.in), \(shape.out)): bf16 \(BenchmarkSupport.format(flops / bf16 / 1e9, digits: 1)) "
                        + "GFLOP/s, sgemm \(BenchmarkSupport.format(flops / sgemm / 1e9, digits: 1)) GFLOP/s, one thread each; "
                        + "native bf16: \(BF16GEMM.isAccelerated)"
                ]
            )
        }
        try blockForward(length: length)
    }

    /// SmolLM2-135M's block (seeded weights) at L = `length`, one sequence on one thread as on a pipeline
    /// worker: the bf16 block forward against the same GEMMs alone (its linears and the attention's
    /// `Q Kᵀ` and `P V` through `BF16GEMM`, operands already rounded), aim ≥ 0.7, and against the fp32 block.
    static func blockForward(length: Int) throws {
        let model = try ForwardPassBenchmark.smolLM2ShapedModel()
        let fp32Block = try model.loadBlock(0)
        var block = fp32Block
        block.setCompute(.bf16)
        var rng = SplitMix64(seed: 12)
        let hidden = Matrix(
            rows: length,
            columns: model.hiddenSize,
            storage: (0..<(length * model.hiddenSize)).map { _ in rng.normal() }
        )
        let linears = model.prunableLinearLayers(block: 0)
        let packed = linears.map { BF16GEMM.Weights(fp32Block.weight(of: $0.name)) }
        let inputs = linears.map { layer in
            Matrix(
                rows: length,
                columns: layer.inFeatures,
                storage: (0..<(length * layer.inFeatures)).map { _ in rng.normal() }
            )
        }
        let attention = ForwardBenchmark.shapes(model: model, block: 0, length: length).dropFirst(linears.count)
        let operands = ForwardBenchmark.Operands(for: attention, rng: &rng)
        var failure: (any Error)?
        let gemms = {
            do {
                for (x, w) in zip(inputs, packed) {
                    BenchmarkSupport.blackHole(try BF16GEMM.multiply(x, w, threads: 1))
                }
                try operands.bf16(attention)
            } catch { failure = error }
        }
        let ((forward, gemm), fp32) = Linalg.withSingleThreadedBLAS {
            (
                ForwardBenchmark.bestTimes(5, { BenchmarkSupport.blackHole(block.forward(hidden)) }, gemms),
                BenchmarkSupport.bestOf(5) { BenchmarkSupport.blackHole(fp32Block.forward(hidden)) }
            )
        }
        if let failure { throw failure }
        BenchmarkSupport.report(
            "bf16_gemm.smollm2_block_L\(length)_forward_vs_its_gemms",
            ratio: gemm / forward,
            "time of the block's GEMMs alone (linears and attention products bf16)",
            over: "bf16 block forward time",
            details: ["one sequence, one thread; aim ≥ 0.7"]
        )
        BenchmarkSupport.report(
            "bf16_gemm.smollm2_block_L\(length)_bf16_vs_fp32_forward",
            ratio: fp32 / forward,
            "fp32 block forward time",
            over: "bf16 block forward time",
            details: ["one sequence, one thread"]
        )
    }
}
