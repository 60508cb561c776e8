// SPDX-License-Identifier: Apache-2.0
// ConfigDecoding: reading config.json into an architecture's Codable struct with readable errors.

import Foundation

/// Shared helpers for decoding and validating `config.json`.
enum ConfigDecoding {
    /// The value of `model_type`.
    static func modelType(in data: Data, path: String) throws -> String {
        struct Probe: Decodable {
            let modelType: String?
            enum CodingKeys: String, CodingKey { case modelType = "model_type" }
        }
        let probe = try decode(Probe.self, from: data, path: path)
        guard let type = probe.modelType else {
            throw ModelLoadError.invalidConfig(path: path, reason: "no 'model_type' key")
        }
        return type
    }

    /// Decodes `T`, turning `DecodingError` into `ModelLoadError.invalidConfig` naming the key.
    static func decode<T: Decodable>(_ type: T.Type, from data: Data, path: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw ModelLoadError.invalidConfig(path: path, reason: describe(error))
        } catch {
            throw ModelLoadError.invalidConfig(path: path, reason: "\(error)")
        }
    }

    /// The keys of the object `decoder` is at whose value is an explicit JSON `null` (a synthesized
    /// `Decodable` reads those exactly like absent keys).
    static func nullKeys(_ decoder: any Decoder) throws -> Set<String> {
        struct AnyKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
        let container = try decoder.container(keyedBy: AnyKey.self)
        return Set(try container.allKeys.filter { try container.decodeNil(forKey: $0) }.map(\.stringValue))
    }

    static func describe(_ error: DecodingError) -> String {
        func keyPath(_ context: DecodingError.Context) -> String {
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? "top level" : "key '\(path)'"
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "\(keyPath(context)): expected \(type)"
        case .valueNotFound(let type, let context):
            return "\(keyPath(context)): expected \(type), found null"
        case .keyNotFound(let key, let context):
            let parent = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "missing key '\(parent.isEmpty ? "" : parent + ".")\(key.stringValue)'"
        case .dataCorrupted(let context):
            return "\(keyPath(context)): \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    /// - Throws: `ModelLoadError.invalidValue` unless `value > 0`.
    static func positive(_ value: Int, _ key: String) throws -> Int {
        guard value > 0 else {
            throw ModelLoadError.invalidValue(key: key, value: "\(value)", expected: "a positive integer")
        }
        return value
    }

    /// `num_key_value_heads` (default: `num_attention_heads`), checked positive and a divisor of the
    /// query heads, as grouped-query attention needs.
    /// - Throws: `ModelLoadError.invalidValue` naming `num_key_value_heads`.
    static func keyValueHeads(_ value: Int?, attentionHeads: Int) throws -> Int {
        let kvHeads = try positive(value ?? attentionHeads, "num_key_value_heads")
        guard attentionHeads % kvHeads == 0 else {
            throw ModelLoadError.invalidValue(
                key: "num_key_value_heads",
                value: "\(kvHeads)",
                expected: "a divisor of num_attention_heads (\(attentionHeads))"
            )
        }
        return kvHeads
    }

    /// `head_dim` when the config states it, else `hidden_size / num_attention_heads` (which must divide).
    /// - Throws: `ModelLoadError.invalidValue` naming `head_dim` or `hidden_size`.
    static func headWidth(_ value: Int?, hiddenSize: Int, attentionHeads: Int) throws -> Int {
        if let value { return try positive(value, "head_dim") }
        guard hiddenSize % attentionHeads == 0 else {
            throw ModelLoadError.invalidValue(
                key: "hidden_size",
                value: "\(hiddenSize)",
                expected: "a multiple of num_attention_heads (\(attentionHeads))"
            )
        }
        return hiddenSize / attentionHeads
    }

    /// - Throws: `ModelLoadError.invalidValue` unless `value` is finite and `> 0`.
    static func positive(_ value: Double, _ key: String) throws -> Float {
        guard value.isFinite, value > 0, Float(value).isFinite else {
            throw ModelLoadError.invalidValue(key: key, value: "\(value)", expected: "a positive finite number")
        }
        return Float(value)
    }
}
