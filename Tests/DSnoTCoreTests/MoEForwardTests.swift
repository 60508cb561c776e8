// SPDX-License-Identifier: Apache-2.0
// MoE quirks, one focused test each: routing ties, experts with no token (not computed), norm_topk_prob on
// and off, Qwen2-MoE's sigmoid-gated shared expert, dense layers from mlp_only_layers / decoder_sparse_step.

import DSnoTCore
import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@Suite struct MoEForwardTests {
    static let moeFixtures = [
        "mixtral_untied", "mixtral_tied_bf16", "qwen2_moe_untied", "qwen2_moe_tied_bf16", "qwen3_moe_untied",
        "qwen3_moe_tied_bf16",
    ]

    /// Exactly equal probabilities: the lower expert index wins, in the selection and in its order.
    @Test func routingTiesPickTheLowerIndex() {
        let logits = Matrix(rows: 3, columns: 4, storage: [1, 2, 2, 0, 3, 3, 3, 3, 0, 5, 1, 5])
        let top1 = MoERouting(logits: logits, topK: 1, normalize: false)
        #expect(top1.selected == [1, 0, 1])
        let top2 = MoERouting(logits: logits, topK: 2, normalize: true)
        #expect(top2.selected == [1, 2, 0, 1, 1, 3])
        // Renormalised over two equal probabilities: exactly one half each (fp32 division of equal values).
        #expect(top2.weights == [0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
        #expect(top2.tokenCounts == [1, 3, 1, 1])
        #expect(top2.assignments[1].tokens == [0, 1, 2])
    }

    /// Without renormalisation the weights are the softmax probabilities themselves (summing to < 1).
    @Test func routingWeightsAreSoftmaxProbabilities() {
        let logits = Matrix(rows: 1, columns: 4, storage: [0.5, -1, 2, 0])
        let routing = MoERouting(logits: logits, topK: 2, normalize: false)
        let exps = logits.storage.map { Foundation.exp(Double($0)) }
        let total = exps.reduce(0, +)
        #expect(routing.selected == [2, 0])
        // Vector exp against Foundation's: a few ulp (relative 1e-6).
        #expect(abs(Double(routing.weights[0]) - exps[2] / total) <= 1e-6)
        #expect(abs(Double(routing.weights[1]) - exps[0] / total) <= 1e-6)
    }

    /// One token uses k experts: the other E − k of every sparse block get an empty tap input, their
    /// weights are never read (NaN weights leave the output bit-identical), and the logits still match
    /// transformers on that one-token sequence.
    @Test(arguments: ["mixtral_untied", "qwen2_moe_untied", "qwen3_moe_untied"])
    func expertsWithoutTokensAreNotComputed(_ fixture: String) throws {
        let model = try ModelRegistry.load(directory: ModelFixtures.path(fixture))
        let (tokens, reference) = try ModelFamilyQuirkTests.referenceLogits(fixture, suffix: "_short")
        #expect(tokens.count == 1)
        let (worst, bound) = ModelFamilyQuirkTests.agreement(try model.logits(tokens: tokens), reference)
        #expect(worst <= bound, "\(fixture): max |Δ| = \(worst)")

        let routing = try #require(model.expertRouting)
        let input = try model.embed(tokens: tokens)
        var block = try model.loadBlock(0)
        var routed: [Int: Int] = [:]
        let dense = block.forward(input) { name, x in
            if let e = Self.expert(of: name), name.rawValue.hasSuffix(Self.gateName(fixture)) { routed[e] = x.rows }
        }
        #expect(routed.count == routing.experts)
        #expect(routed.values.filter { $0 == 1 }.count == routing.perToken)
        let idle = routed.filter { $0.value == 0 }.map(\.key)
        #expect(idle.count == routing.experts - routing.perToken)
        for name in block.linearLayerNames where Self.expert(of: name).map(idle.contains) == true {
            let w = block.weight(of: name)
            block.setWeight(
                Matrix(rows: w.rows, columns: w.columns, storage: .init(repeating: .nan, count: w.count)),
                of: name
            )
        }
        #expect(block.forward(input) == dense)
    }

    /// `norm_topk_prob`: the fixtures match transformers with their setting, and flipping it moves the
    /// logits far beyond the tolerance (the setting is read and matters).
    @Test(arguments: ["qwen2_moe_untied", "qwen3_moe_untied", "qwen3_moe_tied_bf16"])
    func normTopKProbIsHonoured(_ fixture: String) throws {
        let (tokens, reference) = try ModelFamilyQuirkTests.referenceLogits(fixture)
        let data = try Data(contentsOf: URL(fileURLWithPath: ModelFixtures.path(fixture, "config.json")))
        let config = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let setting = try #require(config["norm_topk_prob"] as? Bool)
        let flipped = try ModelRegistry.load(
            directory: try ModelFamilyQuirkTests.edited(fixture) { $0["norm_topk_prob"] = !setting }
        )
        let (moved, bound) = ModelFamilyQuirkTests.agreement(try flipped.logits(tokens: tokens), reference)
        #expect(moved > 100 * bound, "\(fixture): flipping norm_topk_prob moves the logits by only \(moved)")
    }

    /// Qwen2-MoE's shared expert: removing it (its down projection zeroed) changes each row of the block
    /// output by exactly `sigmoid(shared_expert_gate · n) · shared_expert(n)`, computed here from the
    /// tapped input `n` and the checkpoint's gate.
    @Test func sharedExpertIsSigmoidGated() throws {
        let fixture = "qwen2_moe_untied"
        let model = try ModelRegistry.load(directory: ModelFixtures.path(fixture))
        let file = try SafeTensorsFile(path: ModelFixtures.path(fixture, "model.safetensors"))
        let gateWeights = try file.floats(named: "model.layers.0.mlp.shared_expert_gate.weight")
        let input = try model.embed(tokens: [3, 17, 99, 4, 56, 120, 7])
        var block = try model.loadBlock(0)
        var n = Matrix(rows: 0, columns: 0)
        let full = block.forward(input) { name, x in if name == "mlp.shared_expert.gate_proj" { n = x } }
        #expect(n.rows == 7 && n.columns == model.hiddenSize)
        let gate = block.weight(of: "mlp.shared_expert.gate_proj")
        let up = block.weight(of: "mlp.shared_expert.up_proj")
        let down = block.weight(of: "mlp.shared_expert.down_proj")
        block.setWeight(Matrix(rows: down.rows, columns: down.columns), of: "mlp.shared_expert.down_proj")
        let without = block.forward(input)
        var worst = 0.0
        var largest = 0.0
        for t in 0..<n.rows {
            let row = (0..<n.columns).map { Double(n[t, $0]) }
            let g = 1 / (1 + Foundation.exp(-zip(row, gateWeights).reduce(0) { $0 + $1.0 * Double($1.1) }))
            let product = (0..<gate.rows).map { i -> Double in
                let a = (0..<n.columns).reduce(0.0) { $0 + row[$1] * Double(gate[i, $1]) }
                let b = (0..<n.columns).reduce(0.0) { $0 + row[$1] * Double(up[i, $1]) }
                return a / (1 + Foundation.exp(-a)) * b
            }
            for c in 0..<down.rows {
                let shared = (0..<down.columns).reduce(0.0) { $0 + product[$1] * Double(down[c, $1]) }
                let delta = Double(full[t, c]) - Double(without[t, c])
                worst = max(worst, abs(delta - g * shared))
                largest = max(largest, abs(g * shared))
            }
        }
        #expect(largest > 0.01)
        // fp32 forward against a Double reference of the same expression: 1e-4 of its largest value.
        #expect(worst <= 1e-4 * largest, "max |Δ − g·shared| = \(worst), largest \(largest)")
    }

    /// `mlp_only_layers` and `decoder_sparse_step` make dense layers with LLaMA's MLP names; sparse layers
    /// list every expert's three layers (and the shared expert's) but never the router.
    @Test func denseAndSparseLayersFollowTheConfig() throws {
        let shared = try ModelRegistry.load(directory: ModelFixtures.path("qwen2_moe_untied"))  // mlp_only_layers [1]
        let step = try ModelRegistry.load(directory: ModelFixtures.path("qwen2_moe_tied_bf16"))  // step 2
        let dense: [LinearLayerName] = ["mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
        for (model, sparseBlocks) in [(shared, [0, 2]), (step, [1, 3])] {
            for b in 0..<model.blockCount {
                let layers = model.prunableLinearLayers(block: b)
                let names = layers.map(\.name)
                #expect(try model.loadBlock(b).linearLayerNames == names)
                #expect(!names.contains("mlp.gate") && !names.contains("mlp.shared_expert_gate"))
                if sparseBlocks.contains(b) {
                    #expect(names.count == 4 + 3 * 4 + 3, "block \(b)")
                    #expect(
                        names.suffix(3) == [
                            "mlp.shared_expert.gate_proj", "mlp.shared_expert.up_proj", "mlp.shared_expert.down_proj",
                        ]
                    )
                    #expect(layers.compactMap(\.expert) == (0..<4).flatMap { [$0, $0, $0] })
                    #expect(names[4] == "mlp.experts.0.gate_proj" && layers[4].outFeatures == 32)
                } else {
                    #expect(Array(names.suffix(3)) == dense && layers.last?.inFeatures == 96, "block \(b)")
                    #expect(layers.allSatisfy { $0.expert == nil })
                }
            }
        }
        let mixtral = try ModelRegistry.load(directory: ModelFixtures.path("mixtral_untied"))
        let names = mixtral.prunableLinearLayers(block: 1).map(\.name.rawValue)
        #expect(
            names[4...6] == [
                "block_sparse_moe.experts.0.w1", "block_sparse_moe.experts.0.w3", "block_sparse_moe.experts.0.w2",
            ]
        )
        #expect(names.count == 4 + 3 * 4)
    }

    static func expert(of name: LinearLayerName) -> Int? {
        let parts = name.rawValue.split(separator: ".")
        guard let i = parts.firstIndex(of: "experts"), i + 1 < parts.count else { return nil }
        return Int(parts[i + 1])
    }

    static func gateName(_ fixture: String) -> String { fixture.hasPrefix("mixtral") ? ".w1" : ".gate_proj" }
}
