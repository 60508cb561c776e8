// SPDX-License-Identifier: Apache-2.0
// Requests: one JSON object per line, `{"version":1,"id":7,"command":"show","job":"j-…"}`.

import Foundation

/// A command with its arguments. The wire form is flat: `command` names the case and the arguments
/// are sibling fields (`job`, `path`, `watch`, `state`, `overrides`, `priority`, `wait`).
public enum ControlCommand: Sendable, Equatable {
    /// Daemon state, queue counts and the running job. Read-only.
    case status
    /// Jobs, newest first, optionally filtered by state and watch. Read-only.
    case list(state: JobState?, watch: String?, limit: Int?)
    /// One job. Read-only.
    case show(job: String)
    /// Queue the checkpoint directory at an absolute `path`, with recipe overrides (`key → TOML value`).
    case submit(path: String, overrides: [String: String], priority: Int?)
    /// Cancel a queued or running job (a running job stops at the next block boundary).
    case cancel(job: String)
    /// Re-queue a failed or cancelled job.
    case retry(job: String)
    /// Pause the whole queue, or one watch.
    case pause(watch: String?)
    /// Resume the whole queue, or one watch.
    case resume(watch: String?)
    /// Re-read the configuration file; an invalid one is rejected and the old one kept.
    case reload
    /// Stream `JobEvent`s (of one job, or all) until the client disconnects. Read-only.
    case watch(job: String?)

    /// The wire name of the command.
    public var name: String {
        switch self {
        case .status: return "status"
        case .list: return "list"
        case .show: return "show"
        case .submit: return "submit"
        case .cancel: return "cancel"
        case .retry: return "retry"
        case .pause: return "pause"
        case .resume: return "resume"
        case .reload: return "reload"
        case .watch: return "watch"
        }
    }

    /// Whether the command changes the daemon's state (and so needs write permission).
    public var isMutating: Bool {
        switch self {
        case .status, .list, .show, .watch: return false
        case .submit, .cancel, .retry, .pause, .resume, .reload: return true
        }
    }

    /// Every command name, for error messages and docs.
    public static let allNames = [
        "status", "list", "show", "submit", "cancel", "retry", "pause", "resume", "reload", "watch",
    ]
}

/// A request: protocol version, an optional client-chosen id echoed in the response, and a command.
public struct ControlRequest: Sendable, Equatable {
    public var version: Int
    public var id: Int?
    public var command: ControlCommand

    /// Creates a request at the current protocol version.
    public init(_ command: ControlCommand, id: Int? = nil, version: Int = ProtocolVersion.current) {
        self.version = version
        self.id = id
        self.command = command
    }
}

extension ControlRequest: Codable {
    enum CodingKeys: String, CodingKey {
        case version, id, command, job, path, overrides, priority, state, watch, limit
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(Int.self, forKey: .version)
        id = try c.decodeIfPresent(Int.self, forKey: .id)
        let name = try c.decode(String.self, forKey: .command)
        switch name {
        case "status": command = .status
        case "list":
            let limit = try c.decodeIfPresent(Int.self, forKey: .limit)
            if let limit, limit < 1 {
                throw ControlError(code: .malformedRequest, message: "field 'limit' must be at least 1, got \(limit)")
            }
            command = .list(
                state: try c.decodeIfPresent(JobState.self, forKey: .state),
                watch: try c.decodeIfPresent(String.self, forKey: .watch),
                limit: limit
            )
        case "show": command = .show(job: try c.decode(String.self, forKey: .job))
        case "submit":
            command = .submit(
                path: try c.decode(String.self, forKey: .path),
                overrides: try c.decodeIfPresent([String: String].self, forKey: .overrides) ?? [:],
                priority: try c.decodeIfPresent(Int.self, forKey: .priority)
            )
        case "cancel": command = .cancel(job: try c.decode(String.self, forKey: .job))
        case "retry": command = .retry(job: try c.decode(String.self, forKey: .job))
        case "pause": command = .pause(watch: try c.decodeIfPresent(String.self, forKey: .watch))
        case "resume": command = .resume(watch: try c.decodeIfPresent(String.self, forKey: .watch))
        case "reload": command = .reload
        case "watch": command = .watch(job: try c.decodeIfPresent(String.self, forKey: .job))
        default:
            throw ControlError(
                code: .unknownCommand,
                message: "unknown command '\(name)'; known: \(ControlCommand.allNames.joined(separator: ", "))"
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encodeIfPresent(id, forKey: .id)
        try c.encode(command.name, forKey: .command)
        switch command {
        case .status, .reload: break
        case .list(let state, let watch, let limit):
            try c.encodeIfPresent(state, forKey: .state)
            try c.encodeIfPresent(watch, forKey: .watch)
            try c.encodeIfPresent(limit, forKey: .limit)
        case .show(let job), .cancel(let job), .retry(let job): try c.encode(job, forKey: .job)
        case .submit(let path, let overrides, let priority):
            try c.encode(path, forKey: .path)
            if !overrides.isEmpty { try c.encode(overrides, forKey: .overrides) }
            try c.encodeIfPresent(priority, forKey: .priority)
        case .pause(let watch), .resume(let watch): try c.encodeIfPresent(watch, forKey: .watch)
        case .watch(let job): try c.encodeIfPresent(job, forKey: .job)
        }
    }
}
