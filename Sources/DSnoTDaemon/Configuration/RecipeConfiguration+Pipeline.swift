// SPDX-License-Identifier: Apache-2.0
// RecipeConfiguration+Pipeline: a configured recipe as the pipeline's Recipe and job options.

import DSnoTCore
import DSnoTPipeline

extension RecipeConfiguration {
    /// The job options this recipe stands for.
    /// - Throws: `PruningError` / `PruneJobError` for values the pipeline rejects (permanent failures).
    func pruneJobOptions() throws -> PruneJobOptions {
        let method: Recipe.Method =
            switch self.method {
            case .magnitude: .magnitude
            case .wanda: .wanda
            case .sparsegpt: .sparsegpt
            }
        let pattern = try Recipe.pattern(type: self.pattern ?? "unstructured", ratio: sparsity ?? 0.5)
        var settings: DSnoT.Settings? = nil
        if dsnot {
            settings = DSnoT.Settings(
                maxCycles: maxCycles.map { .fixed($0) } ?? .scaled,
                updateThreshold: updateThreshold,
                variancePower: variancePower,
                sameSign: sameSign,
                skip: skip,
                accept: (accept ?? (method == .sparsegpt ? .trueError : .none)) == .trueError ? .trueError : .none
            )
        }
        let calibration = Recipe.Calibration(
            source: calibrationTokens != nil ? .tokens : .text,
            path: calibrationTokens ?? calibrationText,
            sequences: nsamples,
            sequenceLength: seqlen,
            seed: UInt64(max(0, seed))
        )
        let recipe = Recipe(method: method, pattern: pattern, dsnot: settings, calibration: calibration)
        try recipe.validate()
        let evaluation = evalText.map {
            EvaluationOptions(
                textPath: $0,
                sequenceLength: evalSeqlen ?? 2048,
                maxWindows: evalWindows,
                maxIncreasePercent: maxPerplexityIncreasePercent
            )
        }
        return PruneJobOptions(
            recipe: recipe,
            format: try OutputFormat.parse(format: format.rawValue, compression: compression),
            evaluation: evaluation
        )
    }
}
