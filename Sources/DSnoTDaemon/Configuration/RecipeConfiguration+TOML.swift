// SPDX-License-Identifier: Apache-2.0
// Reading a recipe table (or overrides of one) from TOML, with range checks per key.

public import Foundation
import TOMLKit

extension RecipeConfiguration {
    /// Applies the keys of `fields` over `self` (defaults, a watch's recipe, …) and validates the result.
    /// Relative paths are resolved against `baseDirectory`.
    mutating func apply(_ fields: inout TOMLFields, baseDirectory: URL) throws(ConfigurationError) {
        if let text = try fields.string("method") {
            guard let method = Method(rawValue: text) else {
                throw fields.invalid("method", expected: "one of magnitude, wanda, sparsegpt", got: "\"\(text)\"")
            }
            self.method = method
        }
        let hasSparsity = fields.contains("sparsity")
        let hasPattern = fields.contains("pattern")
        if hasSparsity && hasPattern {
            throw fields.conflict("pattern", "set either sparsity or pattern, not both")
        }
        if let sparsity = try fields.double("sparsity") {
            guard sparsity > 0, sparsity < 1 else {
                throw fields.invalid("sparsity", expected: "a number in (0, 1)", got: "\(sparsity)")
            }
            self.sparsity = sparsity
            self.pattern = nil
        }
        if let pattern = try fields.string("pattern") {
            guard ["2:4", "4:8"].contains(pattern) else {
                throw fields.invalid("pattern", expected: "\"2:4\" or \"4:8\"", got: "\"\(pattern)\"")
            }
            self.pattern = pattern
            self.sparsity = nil
        }
        try applyDSnoT(&fields)
        try applyCalibration(&fields, baseDirectory: baseDirectory)
        try applyOutput(&fields, baseDirectory: baseDirectory)
        try fields.rejectUnknownKeys()
    }

    private mutating func applyDSnoT(_ fields: inout TOMLFields) throws(ConfigurationError) {
        if let dsnot = try fields.bool("dsnot") { self.dsnot = dsnot }
        if let value = fields.value("max_cycles") {
            if let cycles = value.int, cycles >= 1 {
                maxCycles = cycles
            } else if value.string == "scaled" {
                maxCycles = nil
            } else {
                throw fields.invalid(
                    "max_cycles",
                    expected: "a positive integer or \"scaled\"",
                    got: TOMLFields.show(value)
                )
            }
        }
        if let threshold = try fields.double("update_threshold") {
            guard threshold >= 0, threshold.isFinite else {
                throw fields.invalid("update_threshold", expected: "a number ≥ 0", got: "\(threshold)")
            }
            updateThreshold = threshold
        }
        if let power = try fields.double("variance_power") {
            guard power >= 0, power.isFinite else {
                throw fields.invalid("variance_power", expected: "a number ≥ 0", got: "\(power)")
            }
            variancePower = power
        }
        if let sameSign = try fields.bool("same_sign") { self.sameSign = sameSign }
        if let skip = try fields.strings("skip") { self.skip = skip }
        if let text = try fields.string("accept") {
            guard let accept = Accept(rawValue: text) else {
                throw fields.invalid("accept", expected: "\"none\" or \"true-error\"", got: "\"\(text)\"")
            }
            self.accept = accept
        }
    }

    private mutating func applyCalibration(_ fields: inout TOMLFields, baseDirectory: URL) throws(ConfigurationError) {
        if let path = try fields.string("calibration_text") {
            calibrationText = Self.resolve(path, baseDirectory)
            calibrationTokens = nil
        }
        if let path = try fields.string("calibration_tokens") {
            if fields.contains("calibration_text") {
                throw fields.conflict("calibration_tokens", "set either calibration_text or calibration_tokens")
            }
            calibrationTokens = Self.resolve(path, baseDirectory)
            calibrationText = nil
        }
        if let n = try fields.int("nsamples", range: 1...65_536) { nsamples = n }
        if let l = try fields.int("seqlen", range: 1...1_048_576) { seqlen = l }
        if let seed = try fields.int("seed", range: 0...Int.max) { self.seed = seed }
    }

    private mutating func applyOutput(_ fields: inout TOMLFields, baseDirectory: URL) throws(ConfigurationError) {
        if let compression = try fields.string("compression") {
            guard Self.isValidCompression(compression) else {
                throw fields.invalid(
                    "compression",
                    expected: "\"fast\", \"hc\", \"hc-N\" with N in 3...12, or \"none\" (dense format only)",
                    got: "\"\(compression)\""
                )
            }
            self.compression = compression
        }
        if let text = try fields.string("format") {
            guard let format = Format(rawValue: text) else {
                throw fields.invalid("format", expected: "\"sparse\" or \"dense\"", got: "\"\(text)\"")
            }
            self.format = format
        }
        if compression == "none" && format == .sparse {
            throw fields.conflict(
                "compression",
                "the sparse format is always LZ4-compressed; \"none\" needs format = \"dense\""
            )
        }
        if let path = try fields.string("eval_text") { evalText = Self.resolve(path, baseDirectory) }
        if let l = try fields.int("eval_seqlen", range: 2...1_048_576) { evalSeqlen = l }
        if let k = try fields.int("eval_windows", range: 1...1_000_000) { evalWindows = k }
        if let percent = try fields.double("max_ppl_increase_percent") {
            guard percent > 0, percent.isFinite else {
                throw fields.invalid("max_ppl_increase_percent", expected: "a number > 0", got: "\(percent)")
            }
            maxPerplexityIncreasePercent = percent
        }
        if maxPerplexityIncreasePercent != nil && evalText == nil {
            throw fields.conflict("max_ppl_increase_percent", "the quality gate needs eval_text")
        }
    }

    static func isValidCompression(_ text: String) -> Bool {
        if ["fast", "hc", "none"].contains(text) { return true }
        guard text.hasPrefix("hc-"), let level = Int(text.dropFirst(3)) else { return false }
        // liblz4 treats HC levels below 3 as its fast mode; accept only real HC levels.
        return (3...12).contains(level)
    }

    static func resolve(_ path: String, _ base: URL) -> String {
        path.hasPrefix("/") ? path : base.appendingPathComponent(path).standardizedFileURL.path
    }

    /// Parses a recipe override document (a checkpoint's `dsnot.toml`, whose keys may sit at the top or
    /// under `[recipe]`) over `self`.
    /// - Throws: `ConfigurationError` naming the key and line.
    public func overridden(byTOML source: String, file: String, baseDirectory: URL) throws(ConfigurationError)
        -> RecipeConfiguration
    {
        let (table, locator) = try TOMLFields.parseDocument(source, file: file)
        var result = self
        if table.keys == ["recipe"], let inner = table["recipe"]?.table {
            var fields = TOMLFields(inner, path: "recipe", file: file, locator: locator)
            try result.apply(&fields, baseDirectory: baseDirectory)
        } else {
            var fields = TOMLFields(table, path: "", file: file, locator: locator)
            try result.apply(&fields, baseDirectory: baseDirectory)
        }
        return result
    }

    /// Applies `key → value` overrides from `dsnotctl submit --set key=value`. A value that is not a
    /// TOML literal is taken as a string (`method=wanda`).
    public func overridden(by overrides: [String: String], baseDirectory: URL) throws(ConfigurationError)
        -> RecipeConfiguration
    {
        var lines: [String] = []
        for (key, value) in overrides.sorted(by: { $0.key < $1.key }) {
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw .unknownKey(file: "overrides", line: nil, key: key)
            }
            let literal = (try? TOMLTable(string: "v = \(value)")) != nil ? value : Self.quoted(value)
            lines.append("\(key) = \(literal)")
        }
        return try overridden(byTOML: lines.joined(separator: "\n"), file: "overrides", baseDirectory: baseDirectory)
    }

    private static func quoted(_ text: String) -> String {
        var escaped = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            default:
                if scalar.value < 0x20 {
                    escaped += String(format: "\\u%04X", scalar.value)
                } else {
                    escaped.unicodeScalars.append(scalar)
                }
            }
        }
        return escaped + "\""
    }
}
