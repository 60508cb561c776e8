// SPDX-License-Identifier: Apache-2.0
// Responses and stream events: one JSON object per line, `{"version":1,"id":7,"ok":true,"job":{…}}`.

public import Foundation

/// A response line. `ok` says whether `error` or the result fields apply; the result field present
/// depends on the command (`status` → `status`, `list` → `jobs`, `show` → `job` and `history`, `submit`/`cancel`/`retry` → `job`,
/// `pause`/`resume`/`reload` → `message`). A `watch` stream sends one `ok` response and then lines
/// that carry only `event`.
public struct ControlResponse: Codable, Sendable, Equatable {
    public var version: Int
    public var id: Int?
    public var ok: Bool
    public var error: ControlError?
    public var status: StatusReport?
    public var jobs: [JobRecord]?
    public var job: JobRecord?
    /// The job's state changes, oldest first (`show` only).
    public var history: [JobHistoryItem]?
    public var message: String?
    public var event: JobEvent?

    /// Creates a successful response with no result field set.
    public init(id: Int? = nil) {
        self.version = ProtocolVersion.current
        self.id = id
        self.ok = true
    }

    /// A failure response.
    public static func failure(_ error: ControlError, id: Int? = nil) -> ControlResponse {
        var response = ControlResponse(id: id)
        response.ok = false
        response.error = error
        return response
    }

    /// A success carrying a message.
    public static func message(_ text: String, id: Int? = nil) -> ControlResponse {
        var response = ControlResponse(id: id)
        response.message = text
        return response
    }

    /// A stream line carrying one event.
    public static func event(_ event: JobEvent) -> ControlResponse {
        var response = ControlResponse()
        response.event = event
        return response
    }
}

/// JSON encoding and decoding of wire messages: ISO 8601 dates, sorted keys, one line per message.
public enum WireCodec {
    /// Encodes a message as one line, newline included.
    public static func encodeLine<T: Encodable>(_ value: T) throws -> Data {
        var data = try makeEncoder().encode(value)
        data.append(0x0A)
        return data
    }

    /// An encoder with the wire settings (also used for `--json` output, with `pretty`).
    public static func makeEncoder(pretty: Bool = false) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys]
        return encoder
    }

    /// A decoder with the wire settings.
    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }

    /// Decodes a request line, mapping every failure onto the `ControlError` the daemon sends back.
    ///
    /// - Throws: `ControlError` with `malformed-request`, `unknown-command` or `version-mismatch`.
    public static func decodeRequest(_ line: Data) throws(ControlError) -> ControlRequest {
        let envelope: Envelope
        do {
            envelope = try makeDecoder().decode(Envelope.self, from: line)
        } catch {
            throw ControlError(
                code: .malformedRequest,
                message: "request is not a JSON object with 'version' and 'command': \(describe(error))"
            )
        }
        guard envelope.version == ProtocolVersion.current else {
            throw ControlError(
                code: .versionMismatch,
                message: "client speaks protocol v\(envelope.version), dsnotd speaks v\(ProtocolVersion.current)"
            )
        }
        do {
            return try makeDecoder().decode(ControlRequest.self, from: line)
        } catch let error as ControlError {
            throw error
        } catch {
            throw ControlError(
                code: .malformedRequest,
                message: "bad arguments for '\(envelope.command)': \(describe(error))"
            )
        }
    }

    private struct Envelope: Decodable {
        var version: Int
        var command: String
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing field '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return "field '\(path)' has the wrong type"
        case DecodingError.dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return path.isEmpty ? "not valid JSON" : "field '\(path)' is invalid"
        default: return "\(error)"
        }
    }
}
