// SPDX-License-Identifier: Apache-2.0
// Prune+Recipe: the command line flags as a recipe document, decoded by the same schema as dsnotd's recipes.

import DSnoTCore
import DSnoTPipeline

extension DsnotCtl.Prune {
    /// Every recipe flag and the recipe keys it sets: the one place where the command line meets the schema
    /// (`PruneJobOptions`' Codable keys, the keys of dsnotd.toml's `[watch.recipe]`).
    static let recipeFlags: [String: [String]] = [
        "method": ["method"], "sparsity": ["pattern"], "pattern": ["pattern"], "magnitude-scope": ["magnitude_scope"],
        "dsnot": ["dsnot"], "dsnot-skip": ["dsnot.skip"], "dsnot-max-cycles": ["dsnot.max_cycles"],
        "dsnot-threshold": ["dsnot.update_threshold"], "dsnot-variance-power": ["dsnot.variance_power"],
        "dsnot-same-sign": ["dsnot.same_sign"], "dsnot-accept": ["dsnot.accept"],
        "dsnot-profile": ["dsnot.profile"], "dsnot-output-check": ["dsnot.output_check"],
        "dsnot-loss-check": ["dsnot.loss_check"],
        "layer-sparsity": ["layer_sparsity"], "owl-threshold": ["owl_threshold"], "owl-lambda": ["owl_lambda"],
        "expert-min-tokens": ["expert_min_tokens"], "compute": ["compute"],
        "sparsegpt-block-size": ["sparsegpt.block_size"], "sparsegpt-dampening": ["sparsegpt.dampening"],
        "sparsegpt-max-retries": ["sparsegpt.max_retries"],
        "calib-text": ["calibration.path", "calibration.source"],
        "calib-tokens": ["calibration.path", "calibration.source"], "nsamples": ["calibration.sequences"],
        "seqlen": ["calibration.sequence_length"], "seed": ["calibration.seed"], "error-sequences": ["error_sequences"],
        "eval-text": ["evaluation.path"], "eval-seqlen": ["evaluation.sequence_length"],
        "eval-windows": ["evaluation.windows"], "max-ppl-increase": ["evaluation.max_increase_percent"],
        "format": ["output.format"], "compression": ["output.compression"], "byte-planes": ["output.byte_planes"],
    ]

    /// The flags that were given, as a recipe document (unset flags are absent keys: the schema's defaults).
    var recipeDocument: RecipeDocument {
        var d = RecipeDocument()
        func set(_ flag: String, _ value: RecipeValue?, key index: Int = 0) {
            guard let value, let key = Self.recipeFlags[flag]?[index] else { return }
            d.set(key, value)
        }
        set("method", method.map { .string($0) })
        set("sparsity", sparsity.map { .double($0) })
        set("pattern", pattern.map { .string($0) })
        set("magnitude-scope", magnitudeScope.map { .string($0) })
        set("dsnot-skip", dsnotSkip.isEmpty ? nil : .array(dsnotSkip == ["none"] ? [] : dsnotSkip.map { .string($0) }))
        set("dsnot-max-cycles", dsnotMaxCycles.map { text in Int(text).map { .int($0) } ?? .string(text) })
        set("dsnot-threshold", dsnotThreshold.map { .double($0) })
        set("dsnot-variance-power", dsnotVariancePower.map { .double($0) })
        set("dsnot-same-sign", dsnotSameSign.map { .bool($0) })
        set("dsnot-accept", dsnotAccept.map { .string($0) })
        set("dsnot-profile", dsnotProfile.map { .string($0) })
        set("dsnot-output-check", dsnotOutputCheck.map { .string($0) })
        set("dsnot-loss-check", dsnotLossCheck.map { .bool($0) })
        // `--no-dsnot` wins over DSnoT settings; `--dsnot` alone keeps them or the defaults.
        if let dsnot, !dsnot || d.value(at: "dsnot") == nil { set("dsnot", .bool(dsnot)) }
        set("layer-sparsity", layerSparsity.map { .string($0) })
        set("owl-threshold", owlThreshold.map { .double($0) })
        set("owl-lambda", owlLambda.map { .double($0) })
        set("expert-min-tokens", expertMinTokens.map { .int($0) })
        set("compute", compute.map { .string($0) })
        set("sparsegpt-block-size", sparsegptBlockSize.map { .int($0) })
        set("sparsegpt-dampening", sparsegptDampening.map { .double(Double($0)) })
        set("sparsegpt-max-retries", sparsegptMaxRetries.map { .int($0) })
        set("calib-text", calibText.map { .string($0) })
        set("calib-text", calibText.map { _ in .string("text") }, key: 1)
        set("calib-tokens", calibTokens.map { .string($0) })
        set("calib-tokens", calibTokens.map { _ in .string("tokens") }, key: 1)
        set("nsamples", nsamples.map { .int($0) })
        set("seqlen", seqlen.map { .int($0) })
        set("seed", seed.map { Int(exactly: $0).map { .int($0) } ?? .string(String($0)) })
        set("error-sequences", errorSequences.map { .int($0) })
        set("eval-text", evalText.map { .string($0) })
        set("eval-seqlen", evalSeqlen.map { .int($0) })
        set("eval-windows", evalWindows.map { .int($0) })
        set("max-ppl-increase", maxPplIncrease.map { .double($0) })
        set("format", format.map { .string($0) })
        set("compression", compression.map { .string($0) })
        set("byte-planes", bytePlanes.map { .bool($0) })
        return d
    }

    /// The flags as validated job options (calibration included: `prune` runs now).
    /// - Throws: `PruneJobError.invalidOption` naming the flag, the value and what was expected.
    func makeOptions() throws -> PruneJobOptions {
        do {
            let options = try recipeDocument.decode()
            try options.recipe.validate()
            return options
        } catch let error as RecipeDocumentError {
            throw Self.flagError(error)
        } catch PruningError.invalidSetting(let name, let expected, let got) {
            throw Self.flagError(.invalidValue(key: name, expected: expected, got: got))
        }
    }

    /// A recipe error in terms of the flags that set the key.
    static func flagError(_ error: RecipeDocumentError) -> PruneJobError {
        let flags = recipeFlags.filter { $0.value.contains(error.key) }.keys.sorted().map { "--\($0)" }
        let name = flags.isEmpty ? error.key : flags.joined(separator: "/")
        switch error {
        case .invalidValue(_, let expected, let got):
            // The message quotes the value itself: `invalid --method 'sparsegtp'`.
            let bare =
                got.count >= 2 && got.hasPrefix("\"") && got.hasSuffix("\"") ? String(got.dropFirst().dropLast()) : got
            return .invalidOption(name: name, value: bare, expected: expected)
        case .unknownKey, .conflict: return .invalidOption(name: name, value: "", expected: "\(error)")
        }
    }
}
