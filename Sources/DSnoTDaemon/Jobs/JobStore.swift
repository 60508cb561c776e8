// SPDX-License-Identifier: Apache-2.0
// The job store seam: embedded SQLite for one node, a shared PostgreSQL queue for a fleet (docs/design.md).

public import DSnoTControlProtocol
public import DSnoTPipeline
public import Foundation

/// One recorded state change of a job.
public struct JobHistoryEntry: Sendable, Equatable {
    public var jobID: String
    public var at: Date
    public var from: JobState?
    public var to: JobState
    public var detail: String?
}

/// Persistent jobs. Every transition is committed (and its history entry written) before the caller
/// performs the side effect that follows it.
///
/// The protocol is synchronous: the scheduler actor calls it between its own steps, and a transition
/// must be committed before the side effect that follows. `SQLiteJobStore` blocks on the file;
/// `PostgreSQLJobStore` blocks the calling thread on postgres-nio's futures (`wait()`, never on an
/// event-loop thread), one connection per store, serialised by a lock.
///
/// Fleet semantics (both backends, docs/design.md "Fleet"): `claim` hands a queued job to one node,
/// `renewLease` keeps it there while it runs, `reapExpiredLeases` gives the jobs of a node that stopped
/// renewing to the others. SQLite has one node, so its leases never expire.
public protocol JobStore: Sendable {
    /// Inserts a new job, or returns the existing job with the same `key` unchanged.
    /// - Returns: the stored job and whether it was inserted now.
    func insert(_ job: JobRecord, recipe: PruneJobOptions) throws -> (job: JobRecord, inserted: Bool)
    /// The full recipe a job runs with (`nil` for no such job).
    /// - Throws: `JobStoreError.recipeUnreadable` when the stored recipe no longer decodes.
    func recipe(jobID: String) throws -> PruneJobOptions?
    /// Replaces a job's row and records the state change in its history.
    func update(_ job: JobRecord, from previous: JobRecord, detail: String?) throws
    func job(id: String) throws -> JobRecord?
    func job(key: String) throws -> JobRecord?
    /// Jobs, newest first: by creation time (sub-second), then by insertion, last inserted first.
    func jobs(state: JobState?, watch: String?, limit: Int?) throws -> [JobRecord]
    /// Job count per state.
    func counts() throws -> [JobState: Int]
    /// A job's state changes, oldest first.
    func history(jobID: String) throws -> [JobHistoryEntry]

    /// Claims a queued job for `node`: under a row lock that other claimers skip (PostgreSQL: `FOR
    /// UPDATE SKIP LOCKED`), the stored record — not the caller's possibly stale copy — is given to
    /// `transition` (the state machine's `.start`), committed with `node` set, and a lease of `lease`
    /// seconds starts.
    /// - Returns: the claimed job, or nil when it is no longer queued or another node is claiming it.
    func claim(jobID: String, node: String, lease: Double, transition: (JobRecord) throws -> JobRecord) throws
        -> JobRecord?
    /// Extends `node`'s lease on a running or publishing job to `lease` seconds from now.
    /// - Returns: false when the node no longer holds the job (its lease expired and the job was taken
    ///   back, or another node cancelled it): the node must stop and never publish.
    func renewLease(jobID: String, node: String, lease: Double) throws -> Bool
    /// Running and publishing jobs whose lease ended more than `settle` seconds ago (their node died):
    /// each is locked, given to `transition`, and the result committed with the lease cleared; a nil
    /// result leaves the job as it is.
    /// - Returns: the committed records.
    func reapExpiredLeases(settle: Double, transition: (JobRecord) throws -> (JobRecord, String?)?) throws
        -> [JobRecord]
    /// Records that `node` is alive now (`dsnotctl status` lists the nodes with their last heartbeat).
    func heartbeat(node: String, startedAt: Date) throws
    /// The nodes that ever heartbeat, by name.
    func nodes() throws -> [NodeStatus]
}

/// Errors of the job store.
public enum JobStoreError: Error, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case database(operation: String, reason: String)
    /// A job's stored recipe no longer decodes (written by another version, or damaged).
    case recipeUnreadable(jobID: String, reason: String)
    /// The job changed under the caller (another node, or a cancel from another node): the
    /// transition was not committed.
    case conflict(jobID: String, expected: JobState, got: JobState?)
    /// The database holds a schema this binary does not know (a newer dsnotd migrated it).
    case schemaTooNew(database: String, found: Int, supported: Int)

    /// A compare-and-set update of `job` that changed no row: the conflict, from the state the store
    /// holds now (its raw text; `nil` when the job is gone). Both stores throw this one.
    static func conflict(updating job: JobRecord, from previous: JobRecord, storedState: String?) -> JobStoreError {
        .conflict(jobID: job.id, expected: previous.state, got: storedState.flatMap(JobState.init(rawValue:)))
    }

    public var description: String {
        switch self {
        case .recipeUnreadable(let id, let reason): return "job \(id): the stored recipe does not decode: \(reason)"
        case .cannotOpen(let path, let reason): return "cannot open job database \(path): \(reason)"
        case .database(let operation, let reason): return "job database \(operation) failed: \(reason)"
        case .conflict(let id, let expected, let got):
            return "job \(id) changed under this node: expected state '\(expected.rawValue)', got "
                + (got.map { "'\($0.rawValue)'" } ?? "no such job")
        case .schemaTooNew(let database, let found, let supported):
            return "job database \(database) has schema version \(found), newer than this dsnotd supports "
                + "(\(supported)): upgrade dsnotd on this node"
        }
    }
}
