// SPDX-License-Identifier: Apache-2.0
// A job as the daemon reports it: identity, state, progress, failure.

public import Foundation

/// The lifecycle state of a job (see `docs/protocol.md`).
///
/// `queued → running → publishing → done`, or `failed` / `cancelled`. A retryable failure goes back to
/// `queued` with a `notBefore` time; a daemon restart puts `running` and `publishing` jobs back to `queued`.
public enum JobState: String, Codable, Sendable, CaseIterable {
    case queued
    case running
    case publishing
    case done
    case failed
    case cancelled

    /// Whether the job will not change any more without a `retry`.
    public var isFinal: Bool {
        switch self {
        case .done, .failed, .cancelled: return true
        case .queued, .running, .publishing: return false
        }
    }
}

/// What a running job is doing. Stored as a plain string so that the pipeline may add phases.
public struct JobPhase: RawRepresentable, Codable, Sendable, Hashable {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Opening the checkpoint and tokenizing calibration text.
    public static let loading = JobPhase(rawValue: "loading")
    /// Pruning decoder blocks one at a time (`block` / `blockCount`).
    public static let pruning = JobPhase(rawValue: "pruning")
    /// Measuring perplexity for the quality gate.
    public static let evaluating = JobPhase(rawValue: "evaluating")
    /// Writing and fsyncing the output directory.
    public static let writing = JobPhase(rawValue: "writing")

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }
}

/// One job, as stored by dsnotd and sent to clients. Field names are the wire names (snake_case in JSON).
public struct JobRecord: Codable, Sendable, Equatable {
    /// Short stable id (`"j-…"`), unique per daemon.
    public var id: String
    /// Input fingerprint + recipe hash; one job per key.
    public var key: String
    /// Name of the watch that found the checkpoint, or `"submit"` for `dsnotctl submit`.
    public var watch: String
    /// Absolute path of the input checkpoint directory.
    public var inputPath: String
    /// Absolute path of the outbox the output goes to.
    public var outbox: String
    /// Absolute path of the published output, once known.
    public var outputPath: String?
    /// Recipe summary (`"wanda 50% +dsnot"`).
    public var recipe: String
    public var state: JobState
    public var phase: JobPhase?
    /// Completed decoder blocks while `phase == .pruning`.
    public var block: Int?
    public var blockCount: Int?
    /// Higher runs first.
    public var priority: Int
    /// Runs of the job that counted: a run interrupted by the daemon stopping or dying is given back,
    /// so only runs that ended (failed or succeeded), and the one in progress, count.
    public var attempts: Int
    /// Why the job failed or was cancelled.
    public var reason: String?
    /// Whether a failure may succeed on retry (I/O, disk full), as opposed to a bad checkpoint.
    public var retryable: Bool?
    /// Why a queued job is not starting (not enough memory or disk, paused watch, back-off).
    public var waitingReason: String?
    /// Earliest start of a queued job after a retryable failure.
    public var notBefore: Date?
    public var createdAt: Date
    public var updatedAt: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    /// The node (`node_name`) that runs or ran the job; absent before it first started, and in
    /// records written before fleets (older clients ignore the key).
    public var node: String?

    enum CodingKeys: String, CodingKey {
        case id, key, watch, outbox, recipe, state, phase, block, priority, attempts, reason, retryable, node
        case inputPath = "input_path"
        case outputPath = "output_path"
        case blockCount = "block_count"
        case waitingReason = "waiting_reason"
        case notBefore = "not_before"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case startedAt = "started_at"
        case finishedAt = "finished_at"
    }

    /// Creates a record; the optional fields start empty.
    public init(
        id: String,
        key: String,
        watch: String,
        inputPath: String,
        outbox: String,
        recipe: String,
        state: JobState = .queued,
        priority: Int = 0,
        createdAt: Date
    ) {
        self.id = id
        self.key = key
        self.watch = watch
        self.inputPath = inputPath
        self.outbox = outbox
        self.recipe = recipe
        self.state = state
        self.priority = priority
        self.attempts = 0
        self.createdAt = createdAt
        self.updatedAt = createdAt
    }
}

/// One recorded state change of a job (the `history` of `show`).
public struct JobHistoryItem: Codable, Sendable, Equatable {
    public var at: Date
    /// The previous state; absent for the creation entry.
    public var from: JobState?
    public var to: JobState
    /// Why (a failure reason, the output summary, …).
    public var detail: String?

    public init(at: Date, from: JobState?, to: JobState, detail: String?) {
        self.at = at
        self.from = from
        self.to = to
        self.detail = detail
    }
}
