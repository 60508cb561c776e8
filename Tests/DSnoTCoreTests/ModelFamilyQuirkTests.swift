// SPDX-License-Identifier: Apache-2.0
// Family quirks, one focused test each: Gemma soft-capping and alternating sliding windows, Gemma 3 local
// RoPE, Phi-3 LongRoPE on both sides of original_max_position_embeddings, Qwen3 q/k norms, fused layers.

import DSnoTCore
import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@Suite struct ModelFamilyQuirkTests {
    /// Max |Δ| between two logit matrices, and the bound of issue 3 (1e-4 × max |reference|).
    static func agreement(_ ours: Matrix, _ reference: Matrix) -> (worst: Float, bound: Float) {
        var worst: Float = 0
        for i in 0..<reference.count { worst = max(worst, abs(ours.storage[i] - reference.storage[i])) }
        return (worst, 1e-4 * reference.maxAbs)
    }

    /// A copy of a fixture whose `config.json` is edited.
    static func edited(_ fixture: String, _ edit: (inout [String: Any]) -> Void) throws -> String {
        let directory = try TemporaryDirectory("dsnot-model-tests").path
        try FileManager.default.copyItem(
            atPath: ModelFixtures.path(fixture, "model.safetensors"),
            toPath: directory + "/model.safetensors"
        )
        let data = try Data(contentsOf: URL(fileURLWithPath: ModelFixtures.path(fixture, "config.json")))
        var config = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: directory + "/config.json"))
        return directory
    }

    static func referenceLogits(_ fixture: String, suffix: String = "") throws -> (tokens: [Int], logits: Matrix) {
        let expected = try SafeTensorsFile(path: ModelFixtures.path(fixture, "expected.safetensors"))
        return (
            try expected.integers(named: "input_ids" + suffix), try ModelFixtures.matrix(expected, "logits" + suffix)
        )
    }

    /// Gemma 2's final-logit cap (3.0 in the fixture) binds: every logit is inside (−3, 3), the engine
    /// agrees with transformers, and the same weights without either soft-cap do not.
    @Test func gemma2SoftCappingBindsAndMatters() throws {
        let (tokens, reference) = try Self.referenceLogits("gemma2_tied")
        let model = try ModelRegistry.load(directory: ModelFixtures.path("gemma2_tied"))
        let logits = try model.logits(tokens: tokens)
        #expect(logits.maxAbs < 3 && reference.maxAbs > 2.9)
        let (worst, bound) = Self.agreement(logits, reference)
        #expect(worst <= bound)
        for key in ["final_logit_softcapping", "attn_logit_softcapping"] {
            // A huge cap is the identity to fp32 precision: the logits must move beyond the tolerance.
            let uncapped = try ModelRegistry.load(directory: try Self.edited("gemma2_tied") { $0[key] = 1e30 })
            let (moved, _) = Self.agreement(try uncapped.logits(tokens: tokens), reference)
            #expect(moved > 100 * bound, "\(key): without the cap the logits move by only \(moved)")
        }
    }

    /// Gemma 2 alternates sliding (window 8) and full layers. Over 24 tokens, changing the first token's
    /// hidden state leaves the last row of a sliding block bit-identical and changes that of a full block.
    @Test(arguments: ["gemma2_tied", "gemma3_text_tied"])
    func slidingLayersSeeOnlyTheirWindow(_ fixture: String) throws {
        let model = try ModelRegistry.load(directory: ModelFixtures.path(fixture))
        let (tokens, _) = try Self.referenceLogits(fixture)
        #expect(tokens.count == 24)
        let input = try model.embed(tokens: tokens)
        var perturbed = input
        for c in 0..<perturbed.columns { perturbed[0, c] += 1 }
        let expectedKinds: [Bool] = fixture == "gemma2_tied" ? [true, false, true, false] : [true, false, true]
        #expect(model.blockCount == expectedKinds.count)
        for (b, sliding) in expectedKinds.enumerated() {
            let block = try model.loadBlock(b)
            let a = Array(block.forward(input).storage.suffix(model.hiddenSize))  // row 23
            let p = Array(block.forward(perturbed).storage.suffix(model.hiddenSize))
            if sliding {
                #expect(a == p, "\(fixture) block \(b) is local: position 23 must not see position 0")
            } else {
                #expect(a != p, "\(fixture) block \(b) is global: position 23 must see position 0")
            }
        }
    }

    /// LongRoPE: the 24-token sequence is past original_max_position_embeddings (16) and uses the long
    /// factors; its 12-token prefix uses the short ones. Both match transformers, and the prefix's logits
    /// are not the first rows of the full sequence's (the factor set changes every position).
    @Test func phi3LongRopeSwitchesFactorsPastTheOriginalContext() throws {
        let model = try ModelRegistry.load(directory: ModelFixtures.path("phi3_longrope"))
        let (tokens, reference) = try Self.referenceLogits("phi3_longrope")
        let (shortTokens, shortReference) = try Self.referenceLogits("phi3_longrope", suffix: "_short")
        #expect(tokens.count > 16 && shortTokens.count <= 16 && Array(tokens.prefix(shortTokens.count)) == shortTokens)
        let long = try model.logits(tokens: tokens)
        let short = try model.logits(tokens: shortTokens)
        let (worstLong, boundLong) = Self.agreement(long, reference)
        let (worstShort, boundShort) = Self.agreement(short, shortReference)
        #expect(worstLong <= boundLong)
        #expect(worstShort <= boundShort)
        let prefixOfLong = Matrix(
            rows: short.rows,
            columns: short.columns,
            storage: Array(long.storage.prefix(short.count))
        )
        #expect(Self.agreement(prefixOfLong, shortReference).worst > 100 * boundShort)
    }

    /// Qwen3's q/k norms are read and used: flattening them to 1 changes the logits.
    @Test func qwen3QueryKeyNormsMatter() throws {
        let (tokens, reference) = try Self.referenceLogits("qwen3_untied")
        let directory = try TemporaryDirectory("dsnot-model-tests").path
        var tensors = try RawTensor.all(
            in: SafeTensorsFile(path: ModelFixtures.path("qwen3_untied", "model.safetensors"))
        )
        for i in tensors.indices
        where tensors[i].name.hasSuffix("q_norm.weight") || tensors[i].name.hasSuffix("k_norm.weight") {
            tensors[i] = .f32(
                tensors[i].name,
                shape: tensors[i].shape,
                values: [Float](repeating: 1, count: tensors[i].shape[0])
            )
        }
        try RawTensor.write(tensors, to: directory + "/model.safetensors")
        try FileManager.default.copyItem(
            atPath: ModelFixtures.path("qwen3_untied", "config.json"),
            toPath: directory + "/config.json"
        )
        let (moved, bound) = Self.agreement(
            try ModelRegistry.load(directory: directory).logits(tokens: tokens),
            reference
        )
        #expect(moved > 100 * bound)
    }

    /// Phi-3's fused layers are single prunable layers keyed by their tensors, with the fused shapes.
    @Test func phi3FusedLayersArePrunedAsOneLinearLayerEach() throws {
        let model = try ModelRegistry.load(directory: ModelFixtures.path("phi3_longrope"))
        let layers = model.prunableLinearLayers(block: 1)
        #expect(layers.map(\.name) == ["self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj"])
        #expect(layers[0].tensorName == "model.layers.1.self_attn.qkv_proj.weight")
        #expect(layers[0].outFeatures == 4 * 16 + 2 * 2 * 16 && layers[0].inFeatures == 64)
        #expect(layers[2].outFeatures == 2 * 128 && layers[2].inFeatures == 64)
        let block = try model.loadBlock(1)
        #expect(block.linearLayerNames == layers.map(\.name))
    }
}
