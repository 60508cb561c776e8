// SPDX-License-Identifier: Apache-2.0
// The error that crosses the socket: a stable code string and a human message.

/// An error reported by dsnotd over the control socket.
///
/// `code` is stable and machine-readable; new codes may appear in later protocol versions, so a client
/// must treat an unknown code as a generic failure rather than refusing to decode it.
///
/// ```swift
/// let error = ControlError(code: .permissionDenied, message: "cancel needs root, uid 998 or group dsnot")
/// print("\(error.code.rawValue): \(error.message)")
/// ```
public struct ControlError: Error, Codable, Sendable, Equatable, CustomStringConvertible {
    /// A stable error code (`"permission-denied"`, …). Unknown codes decode fine.
    public struct Code: RawRepresentable, Codable, Sendable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The request line is not strict JSON (RFC 8259, no duplicate keys), not an object, or a field
        /// has the wrong type or an invalid value.
        public static let malformedRequest = Code(rawValue: "malformed-request")
        /// The request line is longer than `ProtocolVersion.maximumRequestBytes`.
        public static let requestTooLarge = Code(rawValue: "request-too-large")
        /// The `command` is not one this daemon knows.
        public static let unknownCommand = Code(rawValue: "unknown-command")
        /// The request's `version` differs from the daemon's.
        public static let versionMismatch = Code(rawValue: "version-mismatch")
        /// The peer may read but not change the daemon's state.
        public static let permissionDenied = Code(rawValue: "permission-denied")
        /// No job with that id (or no watch with that name).
        public static let notFound = Code(rawValue: "not-found")
        /// An argument is present but invalid (a relative path, a bad recipe override, …).
        public static let invalidArgument = Code(rawValue: "invalid-argument")
        /// The command does not apply to the job's current state (retrying a running job, …).
        public static let invalidState = Code(rawValue: "invalid-state")
        /// The new configuration was rejected; the old one stays in force.
        public static let reloadFailed = Code(rawValue: "reload-failed")
        /// The client was too slow to send a complete request.
        public static let timeout = Code(rawValue: "timeout")
        /// The daemon holds as many control connections as it allows (in total, for the peer's uid, or
        /// outside the writers' reserve); the connection is closed. Retry later.
        public static let busy = Code(rawValue: "busy")
        /// Anything else; the message says what.
        public static let internalError = Code(rawValue: "internal")
    }

    /// The stable code.
    public var code: Code
    /// What went wrong, for a person.
    public var message: String

    /// Creates an error.
    public init(code: Code, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }
}

extension ControlError.Code {
    public init(from decoder: any Decoder) throws {
        self.rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}
