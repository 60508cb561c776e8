// SPDX-License-Identifier: Apache-2.0
// PruneJob (what `dsnotctl prune` and the daemon run) on the tiny Mixtral, Qwen2-MoE and Qwen3-MoE checkpoints:
// every linear layer of every block, each expert's included, at the requested sparsity; routers and norms
// byte for byte the input; per-expert report (tokens, fallback); the output evaluates and the sparse output
// unpacks to exactly the dense one.

import DSnoTCore
import DSnoTPipeline
import DSnoTTestSupport
import Foundation
import Logging
import SafeTensors
import SparseFormat
import Testing

@Suite struct MoEPruneTests {
    static let families = ["mixtral_untied", "qwen2_moe_tied_bf16", "qwen3_moe_untied"]

    /// Method, pattern, DSnoT on/off: both bases of Wanda and SparseGPT, both patterns, with and without DSnoT.
    static let recipes: [(Recipe.Method, SparsityPattern, Bool)] = [
        (.wanda, .unstructured(0.5), true),
        (.wanda, .nOfM(2, 4), false),
        (.sparsegpt, .nOfM(2, 4), true),
        (.sparsegpt, .unstructured(0.5), false),
        (.magnitude, .unstructured(0.5), false),
        (.magnitude, .nOfM(2, 4), true),
    ]

    /// The options of `ModelFamilyPruneTests` (4 × 32 calibration tokens) with `expert_min_tokens`.
    static func options(
        _ method: Recipe.Method,
        _ pattern: SparsityPattern,
        dsnot: Bool,
        calibration: String,
        format: OutputFormat,
        expertMinTokens: Int
    ) -> PruneJobOptions {
        var options = ModelFamilyPruneTests.options(
            method,
            pattern,
            dsnot: dsnot,
            calibration: calibration,
            format: format
        )
        options.recipe.expertMinTokens = expertMinTokens
        return options
    }

    @Test(arguments: families, 0..<recipes.count)
    func pruneEveryExpertAndNothingElse(_ family: String, _ recipeIndex: Int) throws {
        let (method, pattern, dsnot) = Self.recipes[recipeIndex]
        let root = try TemporaryDirectory("dsnot-pipeline").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try ModelFamilyPruneTests.writeCalibration(to: root + "/calib.safetensors")
        let input = ModelFamilyPruneTests.models + "/" + family
        try FileManager.default.createDirectory(atPath: root + "/dense", withIntermediateDirectories: true)
        let options = Self.options(
            method,
            pattern,
            dsnot: dsnot,
            calibration: root + "/calib.safetensors",
            format: .dense,
            expertMinTokens: 8
        )
        let result = try PruneJob(input: input, options: options).run(
            into: root + "/dense",
            logger: Logger(label: "test")
        )
        let report = result.report

        let model = try ModelRegistry.load(directory: input)
        let routing = try #require(model.expertRouting)
        let original = try Checkpoint(directory: input)
        let pruned = try Checkpoint(directory: root + "/dense")
        #expect(pruned.tensorNames.sorted() == original.tensorNames.sorted())
        var prunable: Set<String> = []
        var expertLayers = 0
        for b in 0..<model.blockCount {
            for layer in model.prunableLinearLayers(block: b) {
                prunable.insert(layer.tensorName)
                if layer.expert != nil { expertLayers += 1 }
                let weights = try pruned.floats(named: layer.tensorName)
                #expect(try pruned.info(named: layer.tensorName).dtype == layer.dtype)
                let zeros = weights.filter { $0 == 0 }.count
                switch pattern {
                case .unstructured(let s) where method == .sparsegpt:
                    // SparseGPT ranks a block of columns over all rows at once: the layer, not each row,
                    // is at the target (to within one weight per row, its threshold's ties).
                    #expect(abs(zeros - Int(s * Double(weights.count))) <= layer.outFeatures, "\(layer.tensorName)")
                case .unstructured(let s):
                    for r in 0..<layer.outFeatures {
                        let row = weights[(r * layer.inFeatures)..<((r + 1) * layer.inFeatures)]
                        #expect(
                            row.filter { $0 == 0 }.count == Int(s * Double(layer.inFeatures)),
                            "\(layer.tensorName) row \(r)"
                        )
                    }
                case .nOfM(let n, let m):
                    for g in stride(from: 0, to: weights.count, by: m) {
                        #expect(weights[g..<(g + m)].filter { $0 != 0 }.count <= n, "\(layer.tensorName) group \(g)")
                    }
                }
            }
        }
        #expect(expertLayers > 0)
        var routers = 0
        for name in original.tensorNames where !prunable.contains(name) {
            // Routers, shared-expert gates, norms, embeddings and the LM head are copied byte for byte.
            if name.hasSuffix(".gate.weight") || name.hasSuffix("shared_expert_gate.weight") { routers += 1 }
            #expect(Array(try pruned.rawBytes(named: name)) == Array(try original.rawBytes(named: name)), "\(name)")
        }
        #expect(routers > 0)

        // Per-expert report of every sparse block: k tokens routed per calibration token, fallback below 8.
        let sparseBlocks = (0..<model.blockCount).filter { b in
            model.prunableLinearLayers(block: b).contains { $0.expert != nil }
        }
        #expect(report.blocks.filter { $0.experts != nil }.map(\.index) == sparseBlocks)
        for block in report.blocks {
            guard let experts = block.experts else { continue }
            #expect(experts.map(\.expert) == Array(0..<routing.experts))
            // Magnitude without DSnoT reads no statistics: nothing to fall back from.
            let usesStatistics = method != .magnitude || dsnot
            if usesStatistics || experts.contains(where: { $0.tokens != nil }) {
                #expect(
                    experts.reduce(0) { $0 + ($1.tokens ?? 0) } == routing.perToken * 4 * 32,
                    "block \(block.index)"
                )
            }
            #expect(experts.allSatisfy { $0.fallback == (usesStatistics && ($0.tokens ?? 0) < 8) })
            #expect(experts.allSatisfy { abs($0.sparsity - 0.5) <= 0.05 })
            if !dsnot { #expect(experts.allSatisfy { $0.dsnotSwaps == 0 }) }
        }
        let logits = try ModelRegistry.load(directory: root + "/dense").logits(tokens: [
            3, 17, 99, 4, 56, 120, 7, 7, 81,
        ])
        #expect(logits.storage.allSatisfy { $0.isFinite })
    }

    /// An expert below `expert_min_tokens` is pruned by magnitude per row: its weights are the dense ones
    /// under `Magnitude`'s per-row mask, whatever its tokens' statistics say; the report says which.
    @Test func expertsBelowTheMinimumFallBackToMagnitude() throws {
        let family = "mixtral_untied"
        let root = try TemporaryDirectory("dsnot-pipeline").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try ModelFamilyPruneTests.writeCalibration(to: root + "/calib.safetensors")
        let input = ModelFamilyPruneTests.models + "/" + family
        try FileManager.default.createDirectory(atPath: root + "/out", withIntermediateDirectories: true)
        // 4 × 32 tokens, top 2 of 4: no expert reaches 1000 tokens, so every expert falls back.
        let options = Self.options(
            .wanda,
            .unstructured(0.5),
            dsnot: true,
            calibration: root + "/calib.safetensors",
            format: .dense,
            expertMinTokens: 1000
        )
        let report = try PruneJob(input: input, options: options).run(
            into: root + "/out",
            logger: Logger(label: "test")
        )
        .report
        let experts = report.blocks.compactMap(\.experts).flatMap(\.self)
        #expect(experts.count == 2 * 4 && experts.allSatisfy { $0.fallback && $0.dsnotSwaps == 0 })
        let model = try ModelRegistry.load(directory: input)
        let original = try Checkpoint(directory: input)
        let pruned = try Checkpoint(directory: root + "/out")
        let fallback = Recipe(method: .magnitude, pattern: .unstructured(0.5), magnitudeScope: .row)
        for layer in model.prunableLinearLayers(block: 1) where layer.expert != nil {
            let dense = Matrix(
                rows: layer.outFeatures,
                columns: layer.inFeatures,
                storage: try original.floats(named: layer.tensorName)
            )
            let expected = try LayerPruner.prune(
                weights: dense,
                statistics: nil,
                recipe: fallback,
                layer: layer.tensorName
            )
            .sparseWeights(dense: dense)
            #expect(try pruned.floats(named: layer.tensorName) == expected.storage, "\(layer.tensorName)")
        }
        // The attention layers still ran Wanda + DSnoT.
        let attention = report.layers.filter { $0.name.contains("self_attn") }
        #expect(!attention.isEmpty && attention.allSatisfy { $0.dsnot != nil || $0.dsnotSkipped })
    }

    /// The memory estimate holds the largest block (a sparse one, with every expert, not the dense block 0
    /// of `qwen2_moe_tied_bf16`) and one statistics entry per expert input.
    @Test func memoryEstimateCountsOneSparseBlockWithAllItsExperts() throws {
        let model = try ModelRegistry.load(directory: ModelFamilyPruneTests.models + "/qwen2_moe_tied_bf16")
        let dense = model.prunableLinearLayers(block: 0)
        let sparse = model.prunableLinearLayers(block: 1)
        #expect(dense.allSatisfy { $0.expert == nil } && sparse.contains { $0.expert != nil })
        let estimate = try SequentialPruner(recipe: Recipe(method: .wanda, pattern: .unstructured(0.5)))
            .memoryEstimate(model: model, sequences: 4, length: 32)
        let sparseWeights = sparse.reduce(0) { $0 + $1.outFeatures * $1.inFeatures }
        #expect(sparseWeights > dense.reduce(0) { $0 + $1.outFeatures * $1.inFeatures })
        #expect(estimate.blockWeights == 4 * sparseWeights)
        #expect(estimate.checkpointPages == 2 * sparseWeights)  // bf16
        // Inputs: the attention's (q/k/v share), o_proj's, and per MLP (4 experts, the shared expert) the
        // gate/up input and the down input: 2 + 2 · 5 entries of 5 Double vectors each.
        let widths = [64, 64] + Array(repeating: [64, 32], count: 4).flatMap(\.self) + [64, 48]
        #expect(estimate.statistics == widths.reduce(0) { $0 + 5 * $1 * 8 } + widths.reduce(0) { $0 + $1 * $1 * 4 })
    }

    @Test(arguments: families)
    func sparseOutputUnpacksToExactlyTheDenseOutput(_ family: String) throws {
        try ModelFamilyPruneTests.checkSparseUnpacksToDense(family) { calibration, format in
            Self.options(.wanda, .nOfM(2, 4), dsnot: true, calibration: calibration, format: format, expertMinTokens: 8)
        }
    }
}
