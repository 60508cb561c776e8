// SPDX-License-Identifier: Apache-2.0
// The answer to `status`: daemon state, uptime, queue counts, the running job with its progress.

public import Foundation

/// The daemon's overall state.
public enum DaemonState: String, Codable, Sendable {
    /// Accepting and running jobs.
    case running
    /// The global queue is paused: no new job starts.
    case paused
    /// Reloading its configuration.
    case reloading
    /// Shutting down.
    case stopping
}

/// A watch (inbox → outbox with a recipe) as the daemon sees it.
public struct WatchSummary: Codable, Sendable, Equatable {
    public var name: String
    public var inbox: String
    public var outbox: String
    public var recipe: String
    public var paused: Bool

    public init(name: String, inbox: String, outbox: String, recipe: String, paused: Bool) {
        self.name = name
        self.inbox = inbox
        self.outbox = outbox
        self.recipe = recipe
        self.paused = paused
    }
}

/// The running job's progress, with an estimate of the remaining time.
public struct JobProgressReport: Codable, Sendable, Equatable {
    public var job: JobRecord
    /// Seconds left, extrapolated from the blocks done so far; nil before the first block.
    public var etaSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case job
        case etaSeconds = "eta_seconds"
    }

    public init(job: JobRecord, etaSeconds: Double?) {
        self.job = job
        self.etaSeconds = etaSeconds
    }
}

/// The answer to `status` (`dsnotctl status --json` prints it as is).
public struct StatusReport: Codable, Sendable, Equatable {
    public var state: DaemonState
    public var pid: Int32
    public var startedAt: Date
    public var uptimeSeconds: Double
    public var configPath: String?
    /// Number of jobs per state name; states with no job are present with 0.
    public var counts: [String: Int]
    /// The jobs running now (one per worker).
    public var running: [JobProgressReport]
    /// Why the queue is not moving, if it is not (paused, waiting for memory or disk).
    public var waitingReason: String?
    public var watches: [WatchSummary]
    /// This node's name and every node sharing its job store, with their last heartbeat (absent from
    /// daemons before fleets).
    public var node: String?
    public var nodes: [NodeStatus]?

    enum CodingKeys: String, CodingKey {
        case state, pid, counts, running, watches, node, nodes
        case startedAt = "started_at"
        case uptimeSeconds = "uptime_seconds"
        case configPath = "config_path"
        case waitingReason = "waiting_reason"
    }

    public init(
        state: DaemonState,
        pid: Int32,
        startedAt: Date,
        uptimeSeconds: Double,
        configPath: String?,
        counts: [String: Int],
        running: [JobProgressReport],
        waitingReason: String?,
        watches: [WatchSummary]
    ) {
        self.state = state
        self.pid = pid
        self.startedAt = startedAt
        self.uptimeSeconds = uptimeSeconds
        self.configPath = configPath
        self.counts = counts
        self.running = running
        self.waitingReason = waitingReason
        self.watches = watches
    }
}

/// One event of the `watch` stream: a job changed state or made progress.
public struct JobEvent: Codable, Sendable, Equatable {
    /// `"state"` for a state change, `"progress"` for a block or phase change.
    public var kind: String
    public var job: JobRecord
    public var etaSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case kind, job
        case etaSeconds = "eta_seconds"
    }

    public init(kind: String, job: JobRecord, etaSeconds: Double? = nil) {
        self.kind = kind
        self.job = job
        self.etaSeconds = etaSeconds
    }
}

/// A node of the fleet (every dsnotd sharing one job store) and its last heartbeat.
public struct NodeStatus: Codable, Sendable, Equatable {
    public var name: String
    /// When the node's current process started.
    public var startedAt: Date
    /// The node's last heartbeat (every few seconds while it runs).
    public var heartbeatAt: Date

    enum CodingKeys: String, CodingKey {
        case name
        case startedAt = "started_at"
        case heartbeatAt = "heartbeat_at"
    }

    public init(name: String, startedAt: Date, heartbeatAt: Date) {
        self.name = name
        self.startedAt = startedAt
        self.heartbeatAt = heartbeatAt
    }
}
