// SPDX-License-Identifier: Apache-2.0
// RecipeDocument+TOML: `[watch.recipe]`, a checkpoint's dsnot.toml and `submit --set` as recipe documents;
// the schema, defaults and validation are the pipeline's (PruneJobOptions), errors gain file and line here.

import DSnoTPipeline
import Foundation
import TOMLKit

extension RecipeDocument {
    /// A TOML table as a recipe document, relative `path` values resolved against `baseDirectory`.
    /// - Throws: `ConfigurationError.invalidValue` for a TOML date or time (no recipe key takes one).
    init(_ fields: TOMLFields, baseDirectory: String) throws(ConfigurationError) {
        guard case .table(let table) = try Self.value(fields.table, path: fields.path, fields: fields) else {
            self.init()
            return
        }
        self = RecipeDocument(table).resolvingPaths(against: baseDirectory)
    }

    private static func value(_ value: any TOMLValueConvertible, path: String, fields: TOMLFields)
        throws(ConfigurationError) -> RecipeValue
    {
        switch value.type {
        case .bool: return .bool(value.bool ?? false)
        case .int: return .int(value.int ?? 0)
        case .double: return .double(value.double ?? 0)
        case .string: return .string(value.string ?? "")
        case .array:
            var elements: [RecipeValue] = []
            if let array = value.array {
                for element in array { elements.append(try Self.value(element, path: path, fields: fields)) }
            }
            return .array(elements)
        case .table:
            var table: [String: RecipeValue] = [:]
            if let inner = value.table {
                for key in inner.keys {
                    guard let element = inner[key] else { continue }
                    table[key] = try Self.value(element, path: path.isEmpty ? key : "\(path).\(key)", fields: fields)
                }
            }
            return .table(table)
        case .date, .time, .dateTime:
            throw ConfigurationError.invalidValue(
                file: fields.file,
                line: fields.locator.line(of: path),
                key: path,
                expected: "a string, number, boolean, array or table",
                got: value.debugDescription
            )
        }
    }

    /// `decode()` with the error placed in `file` at the key's line (`prefix` is the table's dotted path).
    func decode(file: String, prefix: String, locator: TOMLKeyLocator?) throws(ConfigurationError)
        -> PruneJobOptions
    {
        do {
            return try decode()
        } catch {
            let key = [prefix, error.key].filter { !$0.isEmpty }.joined(separator: ".")
            let line = locator?.line(of: key)
            switch error {
            case .unknownKey: throw .unknownKey(file: file, line: line, key: key)
            case .invalidValue(_, let expected, let got):
                throw .invalidValue(file: file, line: line, key: key, expected: expected, got: got)
            case .conflict(_, let reason): throw .conflict(file: file, line: line, key: key, reason: reason)
            }
        }
    }
}

extension WatchConfiguration {
    /// The job options for one checkpoint: this watch's recipe, then the checkpoint's `dsnot.toml` (its text,
    /// keys at the top or under `[recipe]`, relative paths against the checkpoint), then `submit --set`
    /// overrides (dotted keys, `dsnot.max_cycles=scaled`; a value that is not a TOML literal is a string).
    /// - Throws: `ConfigurationError` naming the layer's file (`overrides` for `--set`), the line and the key.
    func recipe(dsnotTOML source: String?, file: String, checkpoint: String, overrides: [String: String] = [:])
        throws(ConfigurationError) -> PruneJobOptions
    {
        var document = recipeDocument
        var options = recipe
        if let source {
            let (table, locator) = try TOMLFields.parseDocument(source, file: file)
            let nested = table.keys == ["recipe"] ? table["recipe"]?.table : nil
            let fields = TOMLFields(nested ?? table, path: nested == nil ? "" : "recipe", file: file, locator: locator)
            document = document.overlaid(by: try RecipeDocument(fields, baseDirectory: checkpoint))
            options = try document.decode(file: file, prefix: fields.path, locator: locator)
        }
        if !overrides.isEmpty {
            var lines: [String] = []
            for (key, value) in overrides.sorted(by: { $0.key < $1.key }) {
                guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." }) else {
                    throw .unknownKey(file: "overrides", line: nil, key: key)
                }
                let literal = (try? TOMLTable(string: "v = \(value)")) != nil ? value : Self.quoted(value)
                lines.append("\(key) = \(literal)")
            }
            let (table, _) = try TOMLFields.parseDocument(lines.joined(separator: "\n"), file: "overrides")
            let fields = TOMLFields(table, path: "", file: "overrides", locator: TOMLKeyLocator(source: ""))
            document = document.overlaid(by: try RecipeDocument(fields, baseDirectory: checkpoint))
            options = try document.decode(file: "overrides", prefix: "", locator: nil)
        }
        return options
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
