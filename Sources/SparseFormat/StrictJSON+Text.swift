// SPDX-License-Identifier: Apache-2.0
// StrictJSON+Text: a StrictJSON.Value back to JSON text that keeps each value's spelling class.

import DSnoTSupport
import SafeTensors

extension StrictJSON {
    /// Parses `bytes`, which must be one JSON object (a `config.json`), keeping key order and
    /// telling integers (`.integer`) from other numbers (`.number`).
    /// - Throws: `SparseFormatError.invalidOutput` naming `what` when the text is not UTF-8, not
    ///   JSON or not an object.
    static func object(_ bytes: [UInt8], what: String) throws -> [(String, Value)] {
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw SparseFormatError.invalidOutput(path: what, reason: "not UTF-8")
        }
        let value: Value
        do {
            value = try bytes.withUnsafeBytes { buffer in
                var parser = Parser(bytes: buffer)
                return try parser.parseDocument()
            }
        } catch let failure as Failure {
            throw SparseFormatError.invalidOutput(path: what, reason: "not JSON: \(failure.reason)")
        }
        guard case .object(let pairs) = value else {
            throw SparseFormatError.invalidOutput(path: what, reason: "\(value.kindName), expected a JSON object")
        }
        return pairs
    }
}

extension StrictJSON.Value {
    /// Indented JSON text (two spaces, keys in their stored order) ending in a newline. Integers are
    /// written as integers and other numbers in their shortest round-trip spelling with a fraction or
    /// exponent, so a float read from a `config.json` (`30.0`) is written back as a float, not `30`
    /// as `JSONSerialization` does on Linux. Integer literals beyond `Int` were parsed as `.number`
    /// and are written as floats.
    /// - Throws: `SparseFormatError.invalidOutput` for a non-finite number (never parsed, only built).
    func prettyText(what: String) throws -> [UInt8] {
        var text = ""
        try write(into: &text, indent: "", what: what)
        return Array((text + "\n").utf8)
    }

    private func write(into text: inout String, indent: String, what: String) throws {
        let inner = indent + "  "
        switch self {
        case .null: text += "null"
        case .bool(let b): text += b ? "true" : "false"
        case .integer(let i): text += String(i)
        case .number(let d):
            guard let spelled = JSONText.number(d) else {
                throw SparseFormatError.invalidOutput(path: what, reason: "number \(d) has no JSON spelling")
            }
            text += spelled
        case .string(let s): text += JSONText.quoted(s)
        case .array(let values):
            guard !values.isEmpty else { return text += "[]" }
            text += "[\n"
            for (n, value) in values.enumerated() {
                text += inner
                try value.write(into: &text, indent: inner, what: what)
                text += n + 1 < values.count ? ",\n" : "\n"
            }
            text += indent + "]"
        case .object(let pairs):
            guard !pairs.isEmpty else { return text += "{}" }
            text += "{\n"
            for (n, (key, value)) in pairs.enumerated() {
                text += inner + JSONText.quoted(key) + ": "
                try value.write(into: &text, indent: inner, what: what)
                text += n + 1 < pairs.count ? ",\n" : "\n"
            }
            text += indent + "}"
        }
    }
}
