// SPDX-License-Identifier: Apache-2.0
// PruneJobOptions+Codable: the recipe schema's job keys (`output`, `evaluation`, `error_sequences`) beside the
// core Recipe's, one canonical JSON form (stored by dsnotd, hashed into job keys) and one validation.

public import DSnoTCore
import DSnoTSupport
import SafeTensors
import SparseFormat

/// One recipe document: the core `Recipe` keys (`method`, `pattern`, `dsnot`, `calibration`, …) and, beside
/// them, `output = {format, compression, byte_planes}`, `evaluation = {path, sequence_length, windows,
/// max_increase_percent}` and `error_sequences`. Absent keys take the defaults of the decoders.
extension PruneJobOptions: Codable {
    enum CodingKeys: String, CodingKey {
        case output, evaluation
        case errorSequences = "error_sequences"
    }

    /// The options every key left out stands for (`Recipe.defaults`, sparse LZ4 fast output, no evaluation).
    public static let defaults = PruneJobOptions(recipe: .defaults)

    public init(from decoder: any Decoder) throws {
        let recipe = try Recipe(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        var evaluation: EvaluationOptions?
        if c.contains(.evaluation), try !c.decodeNil(forKey: .evaluation) {
            evaluation = try c.decode(EvaluationOptions.self, forKey: .evaluation)
        }
        self.init(
            recipe: recipe,
            format: try c.decodeIfPresent(OutputFormat.self, forKey: .output) ?? Self.defaults.format,
            evaluation: evaluation,
            errorSequences: try c.decodeIfPresent(Int.self, forKey: .errorSequences) ?? Self.defaults.errorSequences
        )
    }

    public func encode(to encoder: any Encoder) throws {
        try recipe.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(format, forKey: .output)
        if let evaluation {
            try c.encode(evaluation, forKey: .evaluation)
        } else {
            try c.encodeNil(forKey: .evaluation)
        }
        try c.encode(errorSequences, forKey: .errorSequences)
    }

    /// Checks everything that can be checked without the checkpoint. A missing calibration path is left to
    /// the job (`PruneJob` reports it when it loads the calibration), so a watch may leave it to each
    /// checkpoint's `dsnot.toml`.
    /// - Throws: `PruningError.invalidSetting` naming the key (`evaluation.windows`), expected and got.
    public func validate() throws {
        var probe = recipe
        if probe.calibration.path == nil { probe.calibration.path = "-" }
        try probe.validate()
        guard errorSequences >= 0 else {
            throw PruningError.invalidSetting(
                name: "error_sequences",
                expected: "an integer ≥ 0",
                got: "\(errorSequences)"
            )
        }
        if let evaluation { try evaluation.validate() }
    }

    /// The canonical form: `Recipe.canonicalValue` plus the job keys, every key present (`null` when unset).
    ///
    /// `Recipe.canonicalValue` leaves out `dsnot.output_check = "none"` and the layer-sparsity keys of a
    /// uniform recipe so that `recipe_hash` stays what it was before those settings existed. Here they
    /// are always written: a stored recipe must read back the same whatever the default profile is (an
    /// absent `output_check` would decode as the default profile's). `expert_min_tokens` stays absent at
    /// its default (128) here too: job keys (the SHA-256 of this form) of every recipe stored before MoE
    /// support keep their value, so a daemon upgrade re-prunes nothing; changing that default would have
    /// to write the key always. `compute` likewise stays absent at `fp32`.
    public var canonicalValue: CanonicalJSON {
        guard case .object(var object) = recipe.canonicalValue else { return recipe.canonicalValue }
        if let dsnot = recipe.dsnot, case .object(var settings)? = object["dsnot"] {
            settings["output_check"] = .string(dsnot.outputCheck.rawValue)
            settings["loss_check"] = .bool(dsnot.lossCheck)
            object["dsnot"] = .object(settings)
        }
        object["layer_sparsity"] = .string(recipe.layerSparsity.rawValue)
        object["owl_threshold"] = .double(recipe.owlThreshold)
        object["owl_lambda"] = .double(recipe.owlLambda)
        let (name, compression, bytePlanes) = format.words
        object["output"] = .object([
            "format": .string(name), "compression": .string(compression), "byte_planes": .bool(bytePlanes),
        ])
        object["evaluation"] =
            evaluation.map {
                .object([
                    "path": .string($0.textPath), "sequence_length": .int($0.sequenceLength),
                    "windows": $0.maxWindows.map { .int($0) } ?? .null,
                    "max_increase_percent": $0.maxIncreasePercent.map { .double($0) } ?? .null,
                ])
            } ?? .null
        object["error_sequences"] = .int(errorSequences)
        return .object(object)
    }

    /// The canonical JSON text (sorted keys, no whitespace): what dsnotd stores, and decodes back.
    public var canonicalJSON: String { canonicalValue.serialized }

    /// `sha256(canonicalJSON)` in hex: together with the input's fingerprint, a daemon job's key.
    public var stableHash: String { SHA256.hex(Array(canonicalJSON.utf8)) }

    /// The keys a recipe document may hold: the canonical form plus `dsnot.profile`, which names the
    /// preset the other DSnoT keys override and is not stored (the stored form lists every setting), and
    /// `expert_min_tokens` and `compute`, which the stored form leaves out at their defaults.
    var schemaValue: CanonicalJSON {
        guard case .object(var object) = canonicalValue else { return canonicalValue }
        object["expert_min_tokens"] = .int(recipe.expertMinTokens)
        object["compute"] = .string(recipe.compute.rawValue)
        if case .object(var settings)? = object["dsnot"] {
            settings["profile"] = .string(DSnoT.Profile.default.rawValue)
            object["dsnot"] = .object(settings)
        }
        return .object(object)
    }

    /// Every key of the schema as a dotted path (`dsnot.max_cycles`, `output.byte_planes`), leaves only.
    public static var schemaKeys: [String] {
        var full = PruneJobOptions(recipe: .defaults)
        full.recipe.calibration.path = "-"
        full.evaluation = EvaluationOptions(textPath: "-", maxWindows: 1, maxIncreasePercent: 1)
        return full.schemaValue.leafPaths.sorted()
    }
}

extension CanonicalJSON {
    /// Dotted paths of the leaves under objects (arrays and scalars are leaves).
    var leafPaths: [String] {
        guard case .object(let object) = self else { return [] }
        return object.flatMap { key, value -> [String] in
            let below = value.leafPaths
            return below.isEmpty ? [key] : below.map { "\(key).\($0)" }
        }
    }
}

extension OutputFormat: Codable {
    enum CodingKeys: String, CodingKey {
        case format, compression
        case bytePlanes = "byte_planes"
    }

    /// `format`, `compression` and `byte_planes` as written in a recipe.
    var words: (format: String, compression: String, bytePlanes: Bool) {
        switch self {
        case .dense: return ("dense", "none", false)
        case .sparse(let level, let bytePlanes):
            switch level {
            case .fast: return ("sparse", "fast", bytePlanes)
            case .hc(let n): return ("sparse", "hc-\(n)", bytePlanes)
            case .accelerated(let a): return ("sparse", "accelerated-\(a)", bytePlanes)
            }
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let format = try c.decodeIfPresent(String.self, forKey: .format) ?? "sparse"
        let compression = try c.decodeIfPresent(String.self, forKey: .compression) ?? "fast"
        do {
            self = try OutputFormat.parse(
                format: format,
                compression: compression,
                bytePlanes: try c.decodeIfPresent(Bool.self, forKey: .bytePlanes) ?? false
            )
        } catch PruneJobError.invalidOption(let name, let value, let expected) {
            throw PruningError.invalidSetting(
                name: (c.codingPath + [name == "format" ? CodingKeys.format : CodingKeys.compression]).settingName,
                expected: expected,
                got: "\"\(value)\""
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        let (format, compression, bytePlanes) = words
        try c.encode(format, forKey: .format)
        try c.encode(compression, forKey: .compression)
        try c.encode(bytePlanes, forKey: .bytePlanes)
    }
}

extension EvaluationOptions: Codable {
    enum CodingKeys: String, CodingKey {
        case path, windows
        case sequenceLength = "sequence_length"
        case maxIncreasePercent = "max_increase_percent"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            textPath: try c.decode(String.self, forKey: .path),
            sequenceLength: try c.decodeIfPresent(Int.self, forKey: .sequenceLength) ?? 2048,
            maxWindows: try c.decodeIfPresent(Int.self, forKey: .windows),
            maxIncreasePercent: try c.decodeIfPresent(Double.self, forKey: .maxIncreasePercent)
        )
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(textPath, forKey: .path)
        try c.encode(sequenceLength, forKey: .sequenceLength)
        try c.encodeIfPresent(maxWindows, forKey: .windows)
        try c.encodeIfPresent(maxIncreasePercent, forKey: .maxIncreasePercent)
    }

    /// - Throws: `PruningError.invalidSetting` naming `evaluation.<key>`.
    func validate() throws {
        guard !textPath.isEmpty else {
            throw PruningError.invalidSetting(name: "evaluation.path", expected: "a text file", got: "\"\"")
        }
        guard sequenceLength >= 2 else {
            throw PruningError.invalidSetting(
                name: "evaluation.sequence_length",
                expected: "an integer ≥ 2",
                got: "\(sequenceLength)"
            )
        }
        if let windows = maxWindows, windows < 1 {
            throw PruningError.invalidSetting(name: "evaluation.windows", expected: "an integer ≥ 1", got: "\(windows)")
        }
        if let percent = maxIncreasePercent, !(percent > 0 && percent.isFinite) {
            throw PruningError.invalidSetting(
                name: "evaluation.max_increase_percent",
                expected: "a number > 0",
                got: "\(percent)"
            )
        }
    }
}
