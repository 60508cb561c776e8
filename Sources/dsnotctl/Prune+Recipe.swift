// SPDX-License-Identifier: Apache-2.0
// Prune+Recipe: the command line flags as a DSnoTCore Recipe and a job's options.

import DSnoTCore
import DSnoTPipeline

extension DsnotCtl.Prune {
    func makeOptions() throws -> PruneJobOptions {
        guard let method = Recipe.Method(rawValue: method) else {
            throw PruneJobError.invalidOption(
                name: "method",
                value: self.method,
                expected: "magnitude, wanda or sparsegpt"
            )
        }
        let pattern = try Recipe.pattern(type: self.pattern ?? "unstructured", ratio: sparsity ?? 0.5)
        guard let scope = Magnitude.Scope(rawValue: magnitudeScope) else {
            throw PruneJobError.invalidOption(name: "magnitude-scope", value: magnitudeScope, expected: "layer or row")
        }
        var settings: DSnoT.Settings? = nil
        if dsnot {
            guard let profile = DSnoT.Profile(rawValue: dsnotProfile) else {
                throw PruneJobError.invalidOption(
                    name: "dsnot-profile",
                    value: dsnotProfile,
                    expected: DSnoT.Profile.allCases.map(\.rawValue).joined(separator: " or ")
                )
            }
            var s = profile.settings(after: method)
            if let cycles = dsnotMaxCycles { s.maxCycles = try Self.cycles(cycles) }
            if let threshold = dsnotThreshold { s.updateThreshold = threshold }
            if let power = dsnotVariancePower { s.variancePower = power }
            if dsnotSameSign { s.sameSign = true }
            if !dsnotSkip.isEmpty { s.skip = dsnotSkip == ["none"] ? [] : dsnotSkip }
            if let accept = dsnotAccept {
                guard let a = DSnoT.Acceptance(rawValue: accept) else {
                    throw PruneJobError.invalidOption(
                        name: "dsnot-accept",
                        value: accept,
                        expected: "none or true-error"
                    )
                }
                s.accept = a
            }
            if let check = dsnotOutputCheck {
                guard let c = DSnoT.OutputCheck(rawValue: check) else {
                    throw PruneJobError.invalidOption(
                        name: "dsnot-output-check",
                        value: check,
                        expected: "none, block, layer or model"
                    )
                }
                s.outputCheck = c
            }
            settings = s
        }
        guard let allocation = Recipe.LayerSparsity(rawValue: layerSparsity) else {
            throw PruneJobError.invalidOption(name: "layer-sparsity", value: layerSparsity, expected: "uniform or owl")
        }
        let calibration = Recipe.Calibration(
            source: calibTokens != nil ? .tokens : .text,
            path: calibTokens ?? calibText,
            sequences: nsamples,
            sequenceLength: seqlen,
            seed: seed
        )
        let recipe = Recipe(
            method: method,
            pattern: pattern,
            magnitudeScope: scope,
            dsnot: settings,
            calibration: calibration,
            layerSparsity: allocation,
            owlThreshold: owlThreshold,
            owlLambda: owlLambda
        )
        try recipe.validate()
        let evaluation = evalText.map {
            EvaluationOptions(
                textPath: $0,
                sequenceLength: evalSeqlen,
                maxWindows: evalWindows,
                maxIncreasePercent: maxPplIncrease
            )
        }
        return PruneJobOptions(
            recipe: recipe,
            format: try OutputFormat.parse(format: format, compression: compression, bytePlanes: bytePlanes),
            evaluation: evaluation
        )
    }

    static func cycles(_ text: String) throws -> DSnoT.MaxCycles {
        if text == "scaled" { return .scaled }
        guard let n = Int(text), n >= 0 else {
            throw PruneJobError.invalidOption(
                name: "dsnot-max-cycles",
                value: text,
                expected: "a count ≥ 0 or 'scaled'"
            )
        }
        return .fixed(n)
    }
}
