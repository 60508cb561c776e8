// SPDX-License-Identifier: Apache-2.0
// Recipe+Codable: decoding with defaults for absent keys, and the on-disk form of SparsityPattern (snake_case keys).

extension SparsityPattern: Codable {
    enum CodingKeys: String, CodingKey {
        case type, ratio, n, m
    }

    /// `{"type": "unstructured", "ratio": 0.6}` or `{"type": "n_of_m", "n": 2, "m": 4}` (an optional
    /// `"ratio"` must then be 0.5).
    public init(from decoder: any Decoder) throws {
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
            throw DecodingError.dataCorruptedError(
                forKey: .type,
                in: c,
                debugDescription: "pattern type: expected \"unstructured\" or \"n_of_m\", got \"\(type)\""
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

// Absent keys take the documented defaults, so a config may name only what it changes.

extension Recipe {
    /// A `dsnot` object without `accept` takes its method's default: `true-error` after SparseGPT (D9).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            method: try c.decode(Method.self, forKey: .method),
            pattern: try c.decode(SparsityPattern.self, forKey: .pattern),
            magnitudeScope: try c.decodeIfPresent(Magnitude.Scope.self, forKey: .magnitudeScope) ?? .layer,
            dsnot: try c.decodeIfPresent(DSnoT.Settings.self, forKey: .dsnot),
            sparseGPT: try c.decodeIfPresent(SparseGPT.Settings.self, forKey: .sparseGPT) ?? SparseGPT.Settings(),
            calibration: try c.decodeIfPresent(Calibration.self, forKey: .calibration) ?? Calibration(),
            layerSparsity: try c.decodeIfPresent(LayerSparsity.self, forKey: .layerSparsity) ?? .uniform,
            owlThreshold: try c.decodeIfPresent(Double.self, forKey: .owlThreshold) ?? OWL.defaultThreshold,
            owlLambda: try c.decodeIfPresent(Double.self, forKey: .owlLambda) ?? OWL.defaultLambda
        )
        if method == .sparsegpt, dsnot != nil,
            let d = try? c.nestedContainer(keyedBy: DSnoT.Settings.CodingKeys.self, forKey: .dsnot),
            !d.contains(.accept)
        {
            dsnot?.accept = .trueError
        }
    }
}

extension Recipe.Calibration {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            source: try c.decodeIfPresent(Source.self, forKey: .source) ?? .text,
            path: try c.decodeIfPresent(String.self, forKey: .path),
            sequences: try c.decodeIfPresent(Int.self, forKey: .sequences) ?? 128,
            sequenceLength: try c.decodeIfPresent(Int.self, forKey: .sequenceLength) ?? 2048,
            seed: try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0
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
            outputCheck: try c.decodeIfPresent(DSnoT.OutputCheck.self, forKey: .outputCheck) ?? preset.outputCheck
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
