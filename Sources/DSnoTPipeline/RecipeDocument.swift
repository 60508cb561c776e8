// SPDX-License-Identifier: Apache-2.0
// RecipeDocument: a recipe as keys and values (from TOML, `--set` or flags), layered, decoded once into
// PruneJobOptions with unknown keys rejected and every error naming its key, what was expected and what was got.

import DSnoTCore
import Foundation

/// A value in a recipe document: what TOML, JSON and command-line values have in common.
public enum RecipeValue: Sendable, Equatable {
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([RecipeValue])
    case table([String: RecipeValue])

    /// How an error shows the value: strings quoted, tables and arrays by kind.
    public var shown: String {
        switch self {
        case .bool(let b): return "\(b)"
        case .int(let i): return "\(i)"
        case .double(let d): return "\(d)"
        case .string(let s): return "\"\(s)\""
        case .array(let a): return "an array [" + a.map(\.shown).joined(separator: ", ") + "]"
        case .table: return "a table"
        }
    }

    var json: CanonicalJSON {
        switch self {
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        case .string(let s): return .string(s)
        case .array(let a): return .array(a.map(\.json))
        case .table(let t): return .object(t.mapValues(\.json))
        }
    }
}

/// Why a recipe document does not decode.
public enum RecipeDocumentError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A key the schema does not have (a typo, usually); the dotted path.
    case unknownKey(String)
    /// A value of the wrong type or out of range.
    case invalidValue(key: String, expected: String, got: String)
    /// Settings that do not go together; `key` is empty when no single key is to blame.
    case conflict(key: String, reason: String)

    public var key: String {
        switch self {
        case .unknownKey(let key), .invalidValue(let key, _, _), .conflict(let key, _): return key
        }
    }

    public var description: String {
        switch self {
        case .unknownKey(let key): return "unknown key '\(key)'"
        case .invalidValue(let key, let expected, let got): return "\(key): expected \(expected), got \(got)"
        case .conflict(let key, let reason): return key.isEmpty ? reason : "\(key): \(reason)"
        }
    }
}

/// A recipe as a tree of keys, in the schema of `PruneJobOptions`' Codable form (the core `Recipe` keys plus
/// `output`, `evaluation`, `error_sequences`). dsnotd.toml's `[watch.recipe]`, a checkpoint's `dsnot.toml`,
/// `dsnotctl submit --set` and `dsnotctl prune`'s flags each become one, later layers overlay earlier ones,
/// and `decode()` makes the result a validated `PruneJobOptions`: no key is known anywhere else.
///
/// ```swift
/// var document = RecipeDocument()
/// document.set("dsnot.max_cycles", .string("scaled"))
/// let options = try watchDocument.overlaid(by: document).decode()
/// ```
public struct RecipeDocument: Sendable, Equatable {
    public var table: [String: RecipeValue]

    public init(_ table: [String: RecipeValue] = [:]) {
        self.table = table
    }

    /// Sets the value at a dotted path (`calibration.sequences`), creating tables on the way and replacing
    /// a non-table value that is in the way.
    public mutating func set(_ path: String, _ value: RecipeValue) {
        Self.set(path.split(separator: ".").map(String.init)[...], value, in: &table)
    }

    private static func set(_ path: ArraySlice<String>, _ value: RecipeValue, in table: inout [String: RecipeValue]) {
        guard let first = path.first else { return }
        if path.count == 1 {
            table[first] = value
            return
        }
        var inner: [String: RecipeValue] = [:]
        if case .table(let existing) = table[first] { inner = existing }
        set(path.dropFirst(), value, in: &inner)
        table[first] = .table(inner)
    }

    /// The value at a dotted path, if any.
    public func value(at path: String) -> RecipeValue? {
        var current = RecipeValue.table(table)
        for component in path.split(separator: ".") {
            guard case .table(let t) = current, let next = t[String(component)] else { return nil }
            current = next
        }
        return current
    }

    /// `self` with `other`'s keys on top: tables merge key by key, any other value replaces.
    public func overlaid(by other: RecipeDocument) -> RecipeDocument {
        RecipeDocument(Self.merge(table, other.table))
    }

    private static func merge(_ base: [String: RecipeValue], _ top: [String: RecipeValue]) -> [String: RecipeValue] {
        var result = base
        for (key, value) in top {
            if case .table(let lower) = result[key], case .table(let upper) = value {
                result[key] = .table(merge(lower, upper))
            } else {
                result[key] = value
            }
        }
        return result
    }

    /// Relative paths made absolute: every string under a key named `path` (`calibration.path`,
    /// `evaluation.path`) that does not start with `/` is taken relative to `directory`.
    public func resolvingPaths(against directory: String) -> RecipeDocument {
        RecipeDocument(Self.resolve(table, directory))
    }

    private static func resolve(_ table: [String: RecipeValue], _ directory: String) -> [String: RecipeValue] {
        var result = table
        for (key, value) in table {
            switch value {
            case .table(let inner): result[key] = .table(resolve(inner, directory))
            case .string(let path) where key == "path" && !path.isEmpty && !path.hasPrefix("/"):
                result[key] = .string(
                    URL(fileURLWithPath: directory).appendingPathComponent(path).standardizedFileURL.path
                )
            default: break
            }
        }
        return result
    }

    /// The document as validated job options.
    /// - Throws: `RecipeDocumentError` naming the first unknown key or bad value (dotted path, expected, got).
    public func decode() throws(RecipeDocumentError) -> PruneJobOptions {
        // JSON has no NaN or infinity: they would reach the decoder as null, an absent key, a default.
        try Self.rejectNonFinite(table, path: "")
        let options: PruneJobOptions
        do {
            options = try JSONDecoder().decode(
                PruneJobOptions.self,
                from: Data(RecipeValue.table(table).json.serialized.utf8)
            )
        } catch {
            throw describe(error)
        }
        try Self.rejectUnknown(table, known: options.schemaValue, path: "")
        do {
            try options.validate()
        } catch {
            throw describe(error)
        }
        return options
    }

    /// Decodes stored canonical JSON (`PruneJobOptions.canonicalJSON`, where `null` marks an unset value).
    /// - Throws: `RecipeDocumentError`.
    public static func decode(json: String) throws(RecipeDocumentError) -> PruneJobOptions {
        let document = RecipeDocument()
        let options: PruneJobOptions
        do {
            options = try JSONDecoder().decode(PruneJobOptions.self, from: Data(json.utf8))
            try options.validate()
        } catch {
            throw document.describe(error)
        }
        // Decoding ignores keys it does not know; a stored recipe with one is another schema's, not this.
        let object = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] ?? [:]
        try rejectUnknown(object, known: options.canonicalValue, path: "")
        return options
    }

    private static func rejectUnknown(_ object: [String: Any], known: CanonicalJSON, path: String)
        throws(RecipeDocumentError)
    {
        guard case .object(let knownKeys) = known else { return }
        for key in object.keys.sorted() {
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            guard let below = knownKeys[key] else { throw .unknownKey(keyPath) }
            if let inner = object[key] as? [String: Any] { try rejectUnknown(inner, known: below, path: keyPath) }
        }
    }

    private static func rejectNonFinite(_ table: [String: RecipeValue], path: String) throws(RecipeDocumentError) {
        for key in table.keys.sorted() {
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            switch table[key] {
            case .double(let d)?:
                if !d.isFinite { throw .invalidValue(key: keyPath, expected: "a finite number", got: "\(d)") }
            case .array(let elements)?:
                for case .double(let d) in elements where !d.isFinite {
                    throw .invalidValue(key: keyPath, expected: "finite numbers", got: "\(d)")
                }
            case .table(let inner)?: try rejectNonFinite(inner, path: keyPath)
            default: break
            }
        }
    }

    private static func rejectUnknown(_ table: [String: RecipeValue], known: CanonicalJSON, path: String)
        throws(RecipeDocumentError)
    {
        guard case .object(let knownKeys) = known else { return }
        for key in table.keys.sorted() {
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            guard let below = knownKeys[key] else { throw .unknownKey(keyPath) }
            if case .table(let inner) = table[key] { try rejectUnknown(inner, known: below, path: keyPath) }
        }
    }

    /// Any decoding or validation error as the key it is about, what was expected and what was found.
    func describe(_ error: any Error) -> RecipeDocumentError {
        switch error {
        case let error as RecipeDocumentError: return error
        case PruningError.invalidSetting(let name, let expected, let got):
            return .invalidValue(key: name, expected: expected, got: got)
        case PruningError.sparsityOutOfRange(let ratio):
            return .invalidValue(key: "pattern", expected: "a sparsity ratio in (0, 1)", got: "\(ratio)")
        case PruningError.unsupportedPattern(let n, let m):
            return .invalidValue(key: "pattern", expected: "\"2:4\" or \"4:8\"", got: "\"\(n):\(m)\"")
        case PruningError.patternRatioMismatch(let n, let m, let ratio):
            return .invalidValue(key: "pattern", expected: "ratio 0.5 for \(n):\(m)", got: "\(ratio)")
        case PruningError.unsupportedCombination(let reason):
            return .conflict(key: "", reason: reason)
        case DecodingError.typeMismatch(let type, let context), DecodingError.valueNotFound(let type, let context):
            let key = context.codingPath.settingName
            let element = context.codingPath.contains { $0.intValue != nil }
            return .invalidValue(
                key: key,
                expected: Self.noun(type) + (element ? " in every element" : ""),
                got: value(at: key)?.shown ?? "null"
            )
        case DecodingError.keyNotFound(let missing, let context):
            return .invalidValue(
                key: (context.codingPath + [missing]).settingName,
                expected: "a value",
                got: "none"
            )
        case DecodingError.dataCorrupted(let context):
            let key = context.codingPath.settingName
            return .invalidValue(key: key, expected: context.debugDescription, got: value(at: key)?.shown ?? "none")
        default:
            return .invalidValue(key: "", expected: "a valid recipe", got: "\(error)")
        }
    }

    private static func noun(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is UInt64.Type, is Int64.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is [String].Type: return "an array of strings"
        default:
            let name = "\(type)"
            if name.hasPrefix("Dictionary") { return "a table" }
            if name.hasPrefix("Array") { return "an array" }
            return "a value of type \(name)"
        }
    }
}
