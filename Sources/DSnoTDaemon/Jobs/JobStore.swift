// SPDX-License-Identifier: Apache-2.0
// The job store seam: SQLite here, a shared PostgreSQL queue for a fleet later (ARCHITECTURE.md).

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
}

/// Errors of the job store.
public enum JobStoreError: Error, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)
    case database(operation: String, reason: String)
    /// A job's stored recipe no longer decodes (written by another version, or damaged).
    case recipeUnreadable(jobID: String, reason: String)

    public var description: String {
        switch self {
        case .recipeUnreadable(let id, let reason): return "job \(id): the stored recipe does not decode: \(reason)"
        case .cannotOpen(let path, let reason): return "cannot open job database \(path): \(reason)"
        case .database(let operation, let reason): return "job database \(operation) failed: \(reason)"
        }
    }
}
