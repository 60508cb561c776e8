// SPDX-License-Identifier: Apache-2.0
// The daemon's request decoding: strict JSON first, then the protocol's typed decoding.

import DSnoTControlProtocol
import Foundation
import SafeTensors

/// Decodes a request line as strictly as docs/threat-model.md promises.
///
/// Foundation's decoder keeps one of two duplicate keys, accepts trailing commas and reads `1.0` as
/// the integer 1; a request that says one thing to one parser and another to the next is refused
/// instead. So the line is parsed by `StrictJSON` (RFC 8259, no duplicate keys at any depth, no
/// trailing commas), integer fields must be written as integers, and only then does
/// `WireCodec.decodeRequest` (DSnoTControlProtocol, Foundation-only) map it onto `ControlRequest`.
///
/// ```swift
/// let request = try StrictRequestDecoder.decode(Data(#"{"version":1,"command":"status"}"#.utf8))
/// ```
enum StrictRequestDecoder {
    /// Fields whose values must be JSON integers (no fraction, no exponent).
    static let integerFields: Set<String> = ["version", "id", "limit", "priority"]

    /// - Throws: `ControlError` with `malformed-request` naming what is wrong (and where), or the codes
    ///   of `WireCodec.decodeRequest`.
    static func decode(_ line: Data) throws(ControlError) -> ControlRequest {
        let pairs = try topLevelPairs(line)
        for (key, value) in pairs where integerFields.contains(key) {
            switch value {
            case .integer, .null: continue
            case .number:
                throw ControlError(
                    code: .malformedRequest,
                    message: "field '\(key)' must be an integer, got \(value.debugText)"
                )
            default:
                throw ControlError(
                    code: .malformedRequest,
                    message: "field '\(key)' must be an integer, got \(value.kindName)"
                )
            }
        }
        return try WireCodec.decodeRequest(line)
    }

    private static func topLevelPairs(_ line: Data) throws(ControlError) -> [(String, StrictJSON.Value)] {
        guard String(data: line, encoding: .utf8) != nil else {
            throw ControlError(code: .malformedRequest, message: "request is not valid UTF-8")
        }
        var reason = ""
        let parsed: StrictJSON.Value? = line.withUnsafeBytes { raw in
            var parser = StrictJSON.Parser(bytes: raw)
            do {
                return try parser.parseDocument()
            } catch {
                reason = (error as? StrictJSON.Failure)?.reason ?? "\(error)"
                return nil
            }
        }
        guard let parsed else {
            throw ControlError(code: .malformedRequest, message: "request is not strict JSON: \(reason)")
        }
        guard case .object(let pairs) = parsed else {
            throw ControlError(
                code: .malformedRequest,
                message: "request is \(parsed.kindName), expected a JSON object with 'version' and 'command'"
            )
        }
        return pairs
    }
}
