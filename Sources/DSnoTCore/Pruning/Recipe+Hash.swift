// SPDX-License-Identifier: Apache-2.0
// Recipe+Hash: a canonical JSON form (sorted keys, fixed number formatting) and its SHA-256.
import DSnoTSupport

extension Recipe {
    /// The canonical JSON text: keys sorted, no whitespace, integers in decimal, floating-point
    /// values in Swift's shortest round-trip form (identical on every platform), absent optionals
    /// as `null`. Independent of `Codable` so that the hash only changes when the recipe does.
    public var canonicalJSON: String { canonicalValue.serialized }

    /// `sha256(canonicalJSON)` in lower-case hex: the recipe's identity in reports and output names.
    public var stableHash: String { SHA256.hex(Array(canonicalJSON.utf8)) }

    /// The canonical form as a value: every key of the recipe schema, absent settings as `null`.
    public var canonicalValue: CanonicalJSON {
        let patternValue: CanonicalJSON
        switch pattern {
        case .unstructured(let r): patternValue = .object(["type": .string("unstructured"), "ratio": .double(r)])
        case .nOfM(let n, let m): patternValue = .object(["type": .string("n_of_m"), "n": .int(n), "m": .int(m)])
        }
        var dsnotValue = CanonicalJSON.null
        if let d = dsnot {
            let cycles: CanonicalJSON
            switch d.maxCycles {
            case .fixed(let t): cycles = .int(t)
            case .scaled: cycles = .string("scaled")
            }
            var settings: [String: CanonicalJSON] = [
                "max_cycles": cycles, "update_threshold": .double(d.updateThreshold),
                "variance_power": .double(d.variancePower), "same_sign": .bool(d.sameSign),
                "skip": .array(d.skip.map { .string($0) }), "accept": .string(d.accept.rawValue),
            ]
            // Only when it differs from the reference, so recipes that existed before the check keep their hash.
            if d.outputCheck != .none { settings["output_check"] = .string(d.outputCheck.rawValue) }
            if d.lossCheck { settings["loss_check"] = .bool(true) }
            dsnotValue = .object(settings)
        }
        var value: [String: CanonicalJSON] = [
            "method": .string(method.rawValue),
            "pattern": patternValue,
            "magnitude_scope": .string(magnitudeScope.rawValue),
            "dsnot": dsnotValue,
            "sparsegpt": .object([
                "block_size": .int(sparseGPT.blockSize), "dampening": .float(sparseGPT.dampening),
                "max_retries": .int(sparseGPT.maxRetries),
            ]),
            "calibration": .object([
                "source": .string(calibration.source.rawValue), "path": calibration.path.map { .string($0) } ?? .null,
                "sequences": .int(calibration.sequences), "sequence_length": .int(calibration.sequenceLength),
                "seed": .string(String(calibration.seed)),
            ]),
        ]
        // Only for OWL: uniform recipes keep the hash they had before layer sparsity existed.
        if layerSparsity != .uniform {
            value["layer_sparsity"] = .string(layerSparsity.rawValue)
            value["owl_threshold"] = .double(owlThreshold)
            value["owl_lambda"] = .double(owlLambda)
        }
        // Only when it differs from the default, so recipes that existed before MoE support keep their hash.
        if expertMinTokens != Recipe.defaultExpertMinTokens { value["expert_min_tokens"] = .int(expertMinTokens) }
        // Only for bf16, so fp32 recipes keep the hash they had before the setting existed.
        if compute != .fp32 { value["compute"] = .string(compute.rawValue) }
        return .object(value)
    }
}

/// A minimal JSON value with one canonical serialization.
public enum CanonicalJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case float(Float)
    case string(String)
    case array([CanonicalJSON])
    case object([String: CanonicalJSON])

    /// Sorted keys, no whitespace, shortest round-trip numbers.
    public var serialized: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d):
            // Integral values keep a ".0" (Swift's description), so 1 and 1.0 hash differently only by type.
            return d.isFinite ? d.description : "null"
        case .float(let f): return f.isFinite ? f.description : "null"
        case .string(let s): return JSONText.quoted(s)
        case .array(let a): return "[" + a.map(\.serialized).joined(separator: ",") + "]"
        case .object(let o):
            // Keys sorted by their UTF-8 bytes.
            let keys = o.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            return "{" + keys.map { JSONText.quoted($0) + ":" + (o[$0] ?? .null).serialized }.joined(separator: ",")
                + "}"
        }
    }
}
