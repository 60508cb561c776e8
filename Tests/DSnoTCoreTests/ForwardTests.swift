// SPDX-License-Identifier: Apache-2.0
// Forward tests: whole-model logits against Hugging Face transformers on the tiny committed checkpoints.

import DSnoTCore
import Foundation
import SafeTensors
import Testing

@Suite struct ForwardTests {
    /// Produced by `scripts/make-tiny-models.py` (transformers 5.24, eager attention, fp32).
    static let fixtures = [
        "llama_gqa_tied", "llama_gqa_tied_bf16", "llama_gqa_untied", "llama3_rope", "qwen2_bias", "mistral_window",
        "opt_pre_ln", "opt_post_ln_proj", "qwen3_untied", "qwen3_tied_bf16", "gemma2_tied", "gemma2_untied_bf16",
        "gemma3_text_tied", "gemma3_text_untied_bf16", "phi3_longrope", "phi3_tied_bf16", "gemma3_mm_tied",
        "gemma3_mm_untied_bf16", "mixtral_untied", "mixtral_tied_bf16", "qwen2_moe_untied", "qwen2_moe_tied_bf16",
        "qwen3_moe_untied", "qwen3_moe_tied_bf16",
    ]

    @Test(arguments: fixtures)
    func logitsMatchTransformers(_ name: String) throws {
        let model = try ModelRegistry.load(directory: ModelFixtures.path(name))
        let expected = try SafeTensorsFile(path: ModelFixtures.path(name, "expected.safetensors"))
        let tokens = try expected.integers(named: "input_ids")
        let reference = try ModelFixtures.matrix(expected, "logits")
        let logits = try model.logits(tokens: tokens)
        #expect(logits.rows == reference.rows && logits.columns == reference.columns)
        var worst: Float = 0
        for i in 0..<logits.count { worst = max(worst, abs(logits.storage[i] - reference.storage[i])) }
        // Acceptance bound of issue 3: max abs difference ≤ 1e-4 × max |reference logit|.
        #expect(worst <= 1e-4 * reference.maxAbs, "\(name): max |Δ| = \(worst), max |ref| = \(reference.maxAbs)")
        print("\(name): max |Δ| / max |ref| = \(worst / reference.maxAbs)")
    }

    /// A block run on a prefix of a sequence gives the same rows as on the whole sequence (causality).
    @Test func blockOutputsAreCausal() throws {
        let model = try ModelRegistry.load(directory: ModelFixtures.path("llama_gqa_untied"))
        let tokens = [5, 9, 1, 100, 42, 17, 3, 64, 8, 2]
        let block = try model.loadBlock(0)
        let full = block.forward(try model.embed(tokens: tokens))
        let prefix = block.forward(try model.embed(tokens: Array(tokens.prefix(4))))
        for r in 0..<4 {
            for c in 0..<full.columns {
                // Same kernels on different L: only the sgemm blocking may differ, fp32 round-off.
                #expect(abs(full[r, c] - prefix[r, c]) <= 1e-5 * max(1, abs(full[r, c])))
            }
        }
    }

    @Test func tapSeesEveryLinearInputInModuleOrder() throws {
        let model = try ModelRegistry.load(directory: ModelFixtures.path("opt_post_ln_proj"))
        let block = try model.loadBlock(1)
        var seen: [(LinearLayerName, Int, Int)] = []
        _ = block.forward(try model.embed(tokens: [1, 2, 3])) { name, input in
            seen.append((name, input.rows, input.columns))
        }
        #expect(seen.map(\.0) == block.linearLayerNames)
        let layers = model.prunableLinearLayers(block: 1)
        #expect(layers.map(\.name) == block.linearLayerNames)
        for (observed, layer) in zip(seen, layers) {
            #expect(observed.1 == 3 && observed.2 == layer.inFeatures)
            #expect(block.weight(of: layer.name).columns == layer.inFeatures)
        }
        #expect(layers.first?.tensorName == "model.decoder.layers.1.self_attn.q_proj.weight")
        #expect(layers.last?.tensorName == "model.decoder.layers.1.fc2.weight")
    }

    /// The statistics pass stops before the last linear layer; what it taps must be exactly what the
    /// full forward pass taps (both architectures, both OPT norm placements).
    @Test(arguments: [
        "llama_gqa_untied", "opt_pre_ln", "opt_post_ln_proj", "qwen3_untied", "gemma2_tied", "gemma3_text_tied",
        "phi3_longrope", "gemma3_mm_untied_bf16", "mixtral_untied", "qwen2_moe_untied", "qwen3_moe_tied_bf16",
    ])
    func tapLinearInputsSeesWhatForwardSees(_ fixture: String) throws {
        let model = try ModelRegistry.load(directory: ModelFixtures.path(fixture))
        let block = try model.loadBlock(0)
        let input = try model.embed(tokens: [3, 1, 4, 1, 5, 9, 2, 6])
        var full: [(LinearLayerName, Matrix)] = []
        _ = block.forward(input) { full.append(($0, $1)) }
        var early: [(LinearLayerName, Matrix)] = []
        block.tapLinearInputs(input) { early.append(($0, $1)) }
        #expect(early.map(\.0) == block.linearLayerNames)
        #expect(early.map(\.0) == full.map(\.0))
        #expect(zip(early, full).allSatisfy { $0.1 == $1.1 })
    }

    @Test func setWeightChangesTheBlockOutput() throws {
        let model = try ModelRegistry.load(directory: ModelFixtures.path("llama_gqa_tied"))
        var block = try model.loadBlock(0)
        let input = try model.embed(tokens: [4, 8, 15, 16, 23, 42])
        let dense = block.forward(input)
        let down = block.weight(of: "mlp.down_proj")
        block.setWeight(Matrix(rows: down.rows, columns: down.columns), of: "mlp.down_proj")
        #expect(block.weight(of: "mlp.down_proj").maxAbs == 0)
        #expect(block.forward(input) != dense)
        block.setWeight(down, of: "mlp.down_proj")
        #expect(block.forward(input) == dense)  // deterministic: identical bits with identical weights
    }
}
