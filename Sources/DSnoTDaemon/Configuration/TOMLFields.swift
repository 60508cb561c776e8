// SPDX-License-Identifier: Apache-2.0
// Typed, key-checked reading of one TOML table: every read key is remembered, leftovers are errors.

import Foundation
import TOMLKit

/// Reads typed values from one TOML table and reports unknown keys, with the key's line in every error.
struct TOMLFields {
    let table: TOMLTable
    /// Dotted path of this table (`""` at the top, `watch[0].recipe`).
    let path: String
    let file: String
    let locator: TOMLKeyLocator
    private var seen: Set<String> = []

    init(_ table: TOMLTable, path: String, file: String, locator: TOMLKeyLocator) {
        self.table = table
        self.path = path
        self.file = file
        self.locator = locator
    }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func invalid(_ key: String, expected: String, got: String) -> ConfigurationError {
        .invalidValue(file: file, line: locator.line(of: keyPath(key)), key: keyPath(key), expected: expected, got: got)
    }

    func conflict(_ key: String, _ reason: String) -> ConfigurationError {
        .conflict(file: file, line: locator.line(of: keyPath(key)), key: keyPath(key), reason: reason)
    }

    func contains(_ key: String) -> Bool { table.contains(key: key) }

    mutating func value(_ key: String) -> (any TOMLValueConvertible)? {
        seen.insert(key)
        return table[key]
    }

    mutating func string(_ key: String) throws(ConfigurationError) -> String? {
        guard let value = value(key) else { return nil }
        guard let string = value.string else { throw invalid(key, expected: "a string", got: Self.show(value)) }
        return string
    }

    mutating func int(_ key: String, range: ClosedRange<Int>? = nil) throws(ConfigurationError) -> Int? {
        guard let value = value(key) else { return nil }
        guard let int = value.int else { throw invalid(key, expected: "an integer", got: Self.show(value)) }
        if let range, !range.contains(int) {
            throw invalid(key, expected: "an integer in \(range.lowerBound)...\(range.upperBound)", got: "\(int)")
        }
        return int
    }

    mutating func double(_ key: String) throws(ConfigurationError) -> Double? {
        guard let value = value(key) else { return nil }
        if let double = value.double { return double }
        if let int = value.int { return Double(int) }
        throw invalid(key, expected: "a number", got: Self.show(value))
    }

    mutating func bool(_ key: String) throws(ConfigurationError) -> Bool? {
        guard let value = value(key) else { return nil }
        guard let bool = value.bool else { throw invalid(key, expected: "true or false", got: Self.show(value)) }
        return bool
    }

    mutating func strings(_ key: String) throws(ConfigurationError) -> [String]? {
        guard let value = value(key) else { return nil }
        guard let array = value.array else {
            throw invalid(key, expected: "an array of strings", got: Self.show(value))
        }
        var result: [String] = []
        for element in array {
            guard let string = element.string else {
                throw invalid(key, expected: "an array of strings", got: "an element \(Self.show(element))")
            }
            result.append(string)
        }
        return result
    }

    /// A byte size: an integer (bytes) or a string with a binary unit (`"512MiB"`, `"2G"`).
    /// Parses a TOML document; a syntax error names the file, line and column.
    static func parseDocument(_ source: String, file: String) throws(ConfigurationError) -> (TOMLTable, TOMLKeyLocator)
    {
        do {
            return (try TOMLTable(string: source), TOMLKeyLocator(source: source))
        } catch let error as TOMLParseError {
            throw .syntax(
                file: file,
                line: error.source.begin.line,
                column: error.source.begin.column,
                reason: error.description
            )
        } catch {
            throw .syntax(file: file, line: 0, column: 0, reason: "\(error)")
        }
    }

    mutating func size(_ key: String) throws(ConfigurationError) -> Int? {
        guard let value = value(key) else { return nil }
        if let int = value.int, int >= 0 { return int }
        if let text = value.string, let bytes = Self.parseSize(text) { return bytes }
        throw invalid(key, expected: "a size in bytes or a string like \"512MiB\" or \"2G\"", got: Self.show(value))
    }

    /// Throws for the first key that was never read.
    func rejectUnknownKeys() throws(ConfigurationError) {
        for key in table.keys.sorted() where !seen.contains(key) {
            throw ConfigurationError.unknownKey(file: file, line: locator.line(of: keyPath(key)), key: keyPath(key))
        }
    }

    /// `path` made absolute against `base` (configuration paths are relative to the file's directory).
    static func resolve(_ path: String, _ base: URL) -> String {
        path.hasPrefix("/") ? path : base.appendingPathComponent(path).standardizedFileURL.path
    }

    static func parseSize(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isNumber }
        guard let number = Int(digits) else { return nil }
        let units: [String: Int] = [
            "": 1, "B": 1, "K": 1 << 10, "KiB": 1 << 10, "M": 1 << 20, "MiB": 1 << 20, "G": 1 << 30, "GiB": 1 << 30,
            "T": 1 << 40, "TiB": 1 << 40,
        ]
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
        guard let scale = units[unit] else { return nil }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: scale)
        return overflow ? nil : bytes
    }

    static func show(_ value: any TOMLValueConvertible) -> String {
        switch value.type {
        case .string: return "\"\(value.string ?? "")\""
        case .table: return "a table"
        case .array: return "an array"
        default: return value.debugDescription
        }
    }
}
