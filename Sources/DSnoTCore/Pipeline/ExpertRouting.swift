// SPDX-License-Identifier: Apache-2.0
// ExpertRouting: the MoE side of the block loop: which experts fall back to magnitude, and the per-expert report.

/// What one block's routed experts got during the calibration forward, and how they were pruned.
///
/// Each expert's layers are pruned with the statistics of the tokens the block's dense router sent
/// to it (its tap inputs are those tokens' rows). An expert that received fewer than
/// `Recipe.expertMinTokens` tokens falls back to `fallbackRecipe`: its statistics rest on too few
/// samples (none at all for an expert no token chose) to rank its weights.
struct ExpertRouting {
    /// Tokens per expert, as its layers' statistics counted them.
    private(set) var tokens: [Int: Int] = [:]
    /// Experts pruned by the fallback.
    private(set) var fellBack: Set<Int> = []

    /// Notes `layer`'s expert and says whether it is pruned by the fallback: only routed experts, only
    /// when the recipe would use statistics (magnitude without DSnoT does not), and only when the run
    /// has calibration data.
    mutating func record(_ layer: LinearLayerInfo, statistics: BlockStatistics, recipe: Recipe, calibrated: Bool)
        -> Bool
    {
        guard let expert = layer.expert, calibrated else { return false }
        let count = statistics.statistics(for: layer.name)?.tokenCount ?? 0
        tokens[expert] = count
        guard recipe.method != .magnitude || recipe.dsnot != nil, count < recipe.expertMinTokens else { return false }
        fellBack.insert(expert)
        return true
    }

    /// The fallback: magnitude per row (each row at the pattern's sparsity, as Wanda's rows are), no DSnoT
    /// (its swaps are driven by the same too-thin statistics).
    static func fallbackRecipe(_ recipe: Recipe) -> Recipe {
        var r = recipe
        r.method = .magnitude
        r.magnitudeScope = .row
        r.dsnot = nil
        return r
    }

    /// The per-expert summary of a block, `nil` when it has no routed expert.
    /// - Parameter entries: per layer (same order as `layers`), its final report and pruned count.
    func reports(layers: [LinearLayerInfo], entries: [(report: PruneReport.LayerReport, pruned: Int)])
        -> [PruneReport.ExpertReport]?
    {
        var totals: [Int: (weights: Int, pruned: Int, swaps: Int)] = [:]
        for (layer, entry) in zip(layers, entries) {
            guard let expert = layer.expert else { continue }
            var t = totals[expert, default: (0, 0, 0)]
            t.weights += layer.outFeatures * layer.inFeatures
            t.pruned += entry.pruned
            t.swaps += entry.report.dsnot.map { $0.kept == false ? 0 : $0.swaps } ?? 0
            totals[expert] = t
        }
        guard !totals.isEmpty else { return nil }
        return totals.sorted { $0.key < $1.key }.map { e, t in
            PruneReport.ExpertReport(
                expert: e,
                tokens: tokens[e],
                sparsity: t.weights == 0 ? 0 : Double(t.pruned) / Double(t.weights),
                dsnotSwaps: t.swaps,
                fallback: fellBack.contains(e)
            )
        }
    }
}
