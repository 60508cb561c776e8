// SPDX-License-Identifier: Apache-2.0
// Recipe+Codable: the one recipe schema (snake_case keys, documented defaults for absent keys) shared by
// reports, dsnotd.toml, a checkpoint's dsnot.toml, `dsnotctl submit --set` and `dsnotctl prune` flags.

extension SparsityPattern: Codable {
    enum CodingKeys: String, CodingKey {
        case type, ratio, n, m
    }

    /// `{"type": "unstructured", "ratio": 0.6}` or `{"type": "n_of_m", "n": 2, "m": 4}` (an optional
    /// `"ratio"` must then be 0.5); in configuration files also the short forms `0.6` (unstructured) and
    /// `"2:4"` / `"4:8"`.
    public init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer() {
            if let ratio = try? single.decode(Double.self) {
                self = .unstructured(ratio)
                return
            }
            if let text = try? single.decode(String.self) {
                let parts = text.split(separator: ":")
                guard parts.count == 2, let n = Int(parts[0]), let m = Int(parts[1]) else {
                    throw PruningError.invalidSetting(
                        name: decoder.codingPath.settingName,
                        expected: "a sparsity ratio in (0, 1), \"2:4\" or \"4:8\"",
                        got: "\"\(text)\""
                    )
                }
                self = .nOfM(n, m)
                return
            }
        }
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "unstructured":
            self = .unstructured(try c.decode(Double.self, forKey: .ratio))
        case "n_of_m":
            let n = try c.decode(Int.self, forKey: .n)
            let m = try c.decode(Int.self, forKey: .m)
            if let ratio = try c.decodeIfPresent(Double.self, forKey: .ratio), ratio != 0.5 {
                throw PruningError.patternRatioMismatch(n: n, m: m, ratio: ratio)
            }
            self = .nOfM(n, m)
        default:
            throw PruningError.invalidSetting(
                name: (decoder.codingPath + [CodingKeys.type]).settingName,
                expected: "\"unstructured\" or \"n_of_m\"",
                got: "\"\(type)\""
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .unstructured(let r):
            try c.encode("unstructured", forKey: .type)
            try c.encode(r, forKey: .ratio)
        case .nOfM(let n, let m):
            try c.encode("n_of_m", forKey: .type)
            try c.encode(n, forKey: .n)
            try c.encode(m, forKey: .m)
        }
    }
}

// Absent keys take the documented defaults, so a config may name only what it changes. These are the
// only recipe defaults: `dsnotctl prune` without flags, a `[watch.recipe]` without keys and an empty
// `dsnot.toml` all mean this.

extension Recipe {
    /// The recipe every key left out stands for: Wanda, 50 % unstructured, DSnoT with the default
    /// profile (`DSnoT.Profile.default`).
    public static let defaults = Recipe(
        method: .wanda,
        pattern: .unstructured(0.5),
        dsnot: DSnoT.Profile.default.settings(after: .wanda)
    )

    /// `dsnot`: absent or `true` = the default profile's choice after the method
    /// (`DSnoT.Profile.defaultSettings(after:)`: on after magnitude and Wanda, off after SparseGPT),
    /// `false` or `null` = off, a table = on with those settings over its `profile` (absent `accept`
    /// is `"true-error"` after SparseGPT, ALGORITHM.md D9).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let method = try c.decodeIfPresent(Method.self, forKey: .method) ?? Self.defaults.method
        var dsnot = DSnoT.Profile.default.defaultSettings(after: method)
        if c.contains(.dsnot) {
            if try c.decodeNil(forKey: .dsnot) {
                dsnot = nil
            } else if let on = try? c.decode(Bool.self, forKey: .dsnot) {
                if !on { dsnot = nil }
            } else {
                var settings = try c.decode(DSnoT.Settings.self, forKey: .dsnot)
                let keys = try c.nestedContainer(keyedBy: DSnoT.Settings.CodingKeys.self, forKey: .dsnot)
                if !keys.contains(.accept) { settings.accept = DSnoT.Profile.default.settings(after: method).accept }
                dsnot = settings
            }
        }
        self.init(
            method: method,
            pattern: try c.decodeIfPresent(SparsityPattern.self, forKey: .pattern) ?? Self.defaults.pattern,
            magnitudeScope: try c.decodeIfPresent(Magnitude.Scope.self, forKey: .magnitudeScope) ?? .layer,
            dsnot: dsnot,
            sparseGPT: try c.decodeIfPresent(SparseGPT.Settings.self, forKey: .sparseGPT) ?? SparseGPT.Settings(),
            calibration: try c.decodeIfPresent(Calibration.self, forKey: .calibration) ?? Calibration(),
            layerSparsity: try c.decodeIfPresent(LayerSparsity.self, forKey: .layerSparsity) ?? .uniform,
            owlThreshold: try c.decodeIfPresent(Double.self, forKey: .owlThreshold) ?? OWL.defaultThreshold,
            owlLambda: try c.decodeIfPresent(Double.self, forKey: .owlLambda) ?? OWL.defaultLambda,
            expertMinTokens: try c.decodeIfPresent(Int.self, forKey: .expertMinTokens)
                ?? Recipe.defaultExpertMinTokens,
            compute: try c.decodeIfPresent(ComputeFormat.self, forKey: .compute) ?? .fp32
        )
    }

    /// Every key, `"dsnot": null` when DSnoT is off (an absent key would mean on).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(method, forKey: .method)
        try c.encode(pattern, forKey: .pattern)
        try c.encode(magnitudeScope, forKey: .magnitudeScope)
        if let dsnot { try c.encode(dsnot, forKey: .dsnot) } else { try c.encodeNil(forKey: .dsnot) }
        try c.encode(sparseGPT, forKey: .sparseGPT)
        try c.encode(calibration, forKey: .calibration)
        try c.encode(layerSparsity, forKey: .layerSparsity)
        try c.encode(owlThreshold, forKey: .owlThreshold)
        try c.encode(owlLambda, forKey: .owlLambda)
        try c.encode(expertMinTokens, forKey: .expertMinTokens)
        try c.encode(compute, forKey: .compute)
    }
}

extension Recipe.Calibration {
    /// `seed` is an integer or, as in the canonical JSON, its decimal text.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var seed: UInt64 = 0
        if let text = try? c.decodeIfPresent(String.self, forKey: .seed) {
            guard let value = UInt64(text) else {
                throw PruningError.invalidSetting(
                    name: (c.codingPath + [CodingKeys.seed]).settingName,
                    expected: "an integer in 0...\(UInt64.max)",
                    got: "\"\(text)\""
                )
            }
            seed = value
        } else if c.contains(.seed) {
            if let int = try? c.decode(Int.self, forKey: .seed), int < 0 {
                throw PruningError.invalidSetting(
                    name: (c.codingPath + [CodingKeys.seed]).settingName,
                    expected: "an integer in 0...\(UInt64.max)",
                    got: "\(int)"
                )
            }
            seed = try c.decode(UInt64.self, forKey: .seed)
        }
        self.init(
            source: try c.decodeIfPresent(Source.self, forKey: .source) ?? .text,
            path: try c.decodeIfPresent(String.self, forKey: .path),
            sequences: try c.decodeIfPresent(Int.self, forKey: .sequences) ?? 128,
            sequenceLength: try c.decodeIfPresent(Int.self, forKey: .sequenceLength) ?? 2048,
            seed: seed
        )
    }
}

extension DSnoT.Settings {
    /// `profile` (default `DSnoT.Profile.default`) gives the values of the keys that are absent.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let p = try c.decodeIfPresent(DSnoT.Profile.self, forKey: .profile) ?? .default
        let preset = p.settings
        self.init(
            maxCycles: try c.decodeIfPresent(DSnoT.MaxCycles.self, forKey: .maxCycles) ?? preset.maxCycles,
            updateThreshold: try c.decodeIfPresent(Double.self, forKey: .updateThreshold) ?? preset.updateThreshold,
            variancePower: try c.decodeIfPresent(Double.self, forKey: .variancePower) ?? preset.variancePower,
            sameSign: try c.decodeIfPresent(Bool.self, forKey: .sameSign) ?? preset.sameSign,
            skip: try c.decodeIfPresent([String].self, forKey: .skip) ?? preset.skip,
            accept: try c.decodeIfPresent(DSnoT.Acceptance.self, forKey: .accept) ?? preset.accept,
            outputCheck: try c.decodeIfPresent(DSnoT.OutputCheck.self, forKey: .outputCheck) ?? preset.outputCheck,
            lossCheck: try c.decodeIfPresent(Bool.self, forKey: .lossCheck) ?? preset.lossCheck
        )
    }

    /// Every setting, so that a written recipe reads back the same whatever the default profile is.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(maxCycles, forKey: .maxCycles)
        try c.encode(updateThreshold, forKey: .updateThreshold)
        try c.encode(variancePower, forKey: .variancePower)
        try c.encode(sameSign, forKey: .sameSign)
        try c.encode(skip, forKey: .skip)
        try c.encode(accept, forKey: .accept)
        try c.encode(outputCheck, forKey: .outputCheck)
        try c.encode(lossCheck, forKey: .lossCheck)
    }
}

extension SparseGPT.Settings {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            blockSize: try c.decodeIfPresent(Int.self, forKey: .blockSize) ?? 128,
            dampening: try c.decodeIfPresent(Float.self, forKey: .dampening) ?? 0.01,
            maxRetries: try c.decodeIfPresent(Int.self, forKey: .maxRetries) ?? 3
        )
    }
}

/// A string-valued setting (`method`, `accept`, …) that names its choices when the value is not one of them.
public protocol RecipeChoice: RawRepresentable, CaseIterable, Codable where RawValue == String {}

extension RecipeChoice {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(rawValue: text) else {
            throw PruningError.invalidSetting(
                name: decoder.codingPath.settingName,
                expected: "one of " + Self.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "),
                got: "\"\(text)\""
            )
        }
        self = value
    }
}

extension Recipe.Method: RecipeChoice {}
extension Recipe.Calibration.Source: RecipeChoice {}
extension Magnitude.Scope: RecipeChoice {}
extension DSnoT.Acceptance: RecipeChoice {}

extension [any CodingKey] {
    /// The dotted key path (`dsnot.max_cycles`, `calibration.seed`) that setting errors name; an array
    /// element is named by its array (`dsnot.skip`).
    public var settingName: String {
        prefix { $0.intValue == nil }.map(\.stringValue).joined(separator: ".")
    }
}
