// SPDX-License-Identifier: Apache-2.0
// Typed, path-aware accessors over a JSONSerialization object, for tokenizer.json loading.

import Foundation

/// A JSON object plus its path in the document, so that every error names the field it is about.
struct JSONObject {
    let fields: [String: Any]
    let path: String

    init(_ fields: [String: Any], path: String) {
        self.fields = fields
        self.path = path
    }

    /// Parses `data` as a JSON document whose root is an object.
    static func parse(_ data: Data) throws(TokenizerError) -> JSONObject {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data, options: [])
        } catch {
            throw .invalidJSON(reason: "\(error.localizedDescription)")
        }
        guard let object = root as? [String: Any] else {
            throw .invalidJSON(reason: "root is \(JSONObject.kind(of: root)), expected an object")
        }
        return JSONObject(object, path: "")
    }

    func fieldPath(_ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    /// True when the key is absent or JSON null.
    func isNull(_ key: String) -> Bool {
        guard let value = fields[key] else { return true }
        return value is NSNull
    }

    func value(_ key: String, expected: String) throws(TokenizerError) -> Any {
        guard let value = fields[key], !(value is NSNull) else {
            throw .missingField(path: fieldPath(key), expected: expected)
        }
        return value
    }

    func string(_ key: String) throws(TokenizerError) -> String {
        let value = try value(key, expected: "a string")
        guard let string = value as? String else {
            throw .invalidField(path: fieldPath(key), expected: "a string", got: JSONObject.kind(of: value))
        }
        return string
    }

    func optionalString(_ key: String) throws(TokenizerError) -> String? {
        isNull(key) ? nil : try string(key)
    }

    func bool(_ key: String, default defaultValue: Bool) throws(TokenizerError) -> Bool {
        if isNull(key) { return defaultValue }
        let value = try value(key, expected: "a boolean")
        // NSNumber bridges both booleans and numbers; only accept real booleans.
        guard let number = value as? NSNumber, JSONObject.isBoolean(number) else {
            throw .invalidField(path: fieldPath(key), expected: "a boolean", got: JSONObject.kind(of: value))
        }
        return number.boolValue
    }

    func int(_ key: String) throws(TokenizerError) -> Int {
        let value = try value(key, expected: "an integer")
        return try JSONObject.integer(value, path: fieldPath(key))
    }

    func object(_ key: String) throws(TokenizerError) -> JSONObject {
        let value = try value(key, expected: "an object")
        guard let object = value as? [String: Any] else {
            throw .invalidField(path: fieldPath(key), expected: "an object", got: JSONObject.kind(of: value))
        }
        return JSONObject(object, path: fieldPath(key))
    }

    func optionalObject(_ key: String) throws(TokenizerError) -> JSONObject? {
        isNull(key) ? nil : try object(key)
    }

    func array(_ key: String) throws(TokenizerError) -> [Any] {
        let value = try value(key, expected: "an array")
        guard let array = value as? [Any] else {
            throw .invalidField(path: fieldPath(key), expected: "an array", got: JSONObject.kind(of: value))
        }
        return array
    }

    /// The elements of an array of objects, each with its indexed path.
    func objects(_ key: String) throws(TokenizerError) -> [JSONObject] {
        var result: [JSONObject] = []
        for (index, element) in try array(key).enumerated() {
            let elementPath = "\(fieldPath(key))[\(index)]"
            guard let object = element as? [String: Any] else {
                throw .invalidField(path: elementPath, expected: "an object", got: JSONObject.kind(of: element))
            }
            result.append(JSONObject(object, path: elementPath))
        }
        return result
    }

    static func integer(_ value: Any, path: @autoclosure () -> String) throws(TokenizerError) -> Int {
        guard let number = value as? NSNumber, !isBoolean(number),
            let exact = Int(exactly: number.doubleValue), Double(exact) == number.doubleValue
        else {
            throw .invalidField(path: path(), expected: "an integer", got: kind(of: value))
        }
        return exact
    }

    /// JSONSerialization returns booleans as NSNumber with Objective-C type `c` (integers are `i`/`q`).
    static func isBoolean(_ number: NSNumber) -> Bool {
        number.objCType.pointee == CChar(UInt8(ascii: "c"))
    }

    /// A short description of a JSON value for error messages.
    static func kind(of value: Any) -> String {
        switch value {
        case is NSNull: return "null"
        case let string as String: return "string \(String(string.prefix(40)).debugDescription)"
        case let number as NSNumber:
            return isBoolean(number) ? "boolean \(number.boolValue)" : "number \(number)"
        case is [Any]: return "an array"
        case is [String: Any]: return "an object"
        default: return "\(type(of: value))"
        }
    }
}
