// SPDX-License-Identifier: Apache-2.0
// The job lifecycle as a pure function: (record, transition, now) → new record or a refusal.

public import DSnoTControlProtocol
public import Foundation

/// Something that happens to a job.
public enum JobTransition: Sendable, Equatable {
    /// A worker takes the job.
    case start
    /// The pipeline reports progress.
    case progress(JobPhase, block: Int?, blockCount: Int?)
    /// The output is complete in its temp directory and is about to be renamed into place.
    case publish(outputPath: String)
    /// The output is in place.
    case succeed
    /// The pipeline failed; `retryable` failures are re-queued with back-off until attempts run out.
    case fail(reason: String, retryable: Bool)
    /// A user (or shutdown) cancelled the job.
    case cancel(reason: String)
    /// An interrupted job (daemon stop or restart) goes back to the queue without counting a failure.
    case requeue(reason: String)
    /// A user re-queues a failed or cancelled job.
    case retry
    /// A queued job cannot start yet (`nil` clears the reason).
    case wait(reason: String?)
    /// A queued job can never start (its checkpoint is broken, its recipe unreadable, its estimate
    /// beyond the configured budget): it fails permanently without an attempt.
    case reject(reason: String)
}

/// Retry policy for retryable failures: exponential back-off, bounded attempts.
public struct RetryPolicy: Sendable, Equatable {
    public var maximumAttempts: Int
    public var baseDelay: Double
    public var maximumDelay: Double

    public init(maximumAttempts: Int = 4, baseDelay: Double = 30, maximumDelay: Double = 3600) {
        self.maximumAttempts = maximumAttempts
        self.baseDelay = baseDelay
        self.maximumDelay = maximumDelay
    }

    /// The delay before attempt `attempts + 1`: base · 2^(attempts − 1), capped.
    public func delay(afterAttempts attempts: Int) -> Double {
        min(maximumDelay, baseDelay * pow(2, Double(max(0, attempts - 1))))
    }
}

/// A transition that does not apply to the job's state.
public struct TransitionRefused: Error, Equatable, CustomStringConvertible {
    public var from: JobState
    public var transition: JobTransition
    public var description: String { "job in state '\(from.rawValue)' cannot take '\(transition)'" }
}

/// Decides a job's next state. Pure: no I/O, no clock (the caller passes `now`).
///
/// ```swift
/// var job = try JobStateMachine.apply(.start, to: queued, now: .now)
/// job = try JobStateMachine.apply(.progress(.pruning, block: 3, blockCount: 22), to: job, now: .now)
/// ```
public enum JobStateMachine {
    /// Applies `transition` to `job`.
    /// - Throws: `TransitionRefused` when the transition does not apply to the job's state.
    public static func apply(
        _ transition: JobTransition,
        to job: JobRecord,
        now: Date,
        policy: RetryPolicy = RetryPolicy()
    ) throws(TransitionRefused) -> JobRecord {
        var next = job
        next.updatedAt = now
        let refused = TransitionRefused(from: job.state, transition: transition)
        switch (job.state, transition) {
        case (.queued, .start):
            next.state = .running
            next.attempts += 1
            next.startedAt = now
            next.phase = .loading
            next.block = nil
            next.blockCount = nil
            next.waitingReason = nil
            next.notBefore = nil
        case (.queued, .wait(let reason)):
            next.waitingReason = reason
        case (.queued, .reject(let reason)):
            next.state = .failed
            next.reason = reason
            next.retryable = false
            next.phase = nil
            next.waitingReason = nil
            next.notBefore = nil
            next.finishedAt = now
        case (.running, .progress(let phase, let block, let count)):
            next.phase = phase
            next.block = block
            next.blockCount = count ?? job.blockCount
        case (.running, .publish(let path)):
            next.state = .publishing
            next.phase = .writing
            next.outputPath = path
        case (.publishing, .succeed):
            next.state = .done
            next.phase = nil  // a finished job has no phase ("done (writing)" read as still busy)
            next.finishedAt = now
            next.reason = nil
            next.retryable = nil
        case (.running, .fail(let reason, let retryable)), (.publishing, .fail(let reason, let retryable)):
            next.reason = reason
            next.retryable = retryable
            next.phase = nil
            if retryable && job.attempts < policy.maximumAttempts {
                next.state = .queued
                next.notBefore = now.addingTimeInterval(policy.delay(afterAttempts: job.attempts))
                next.waitingReason = "retrying after: \(reason)"
            } else {
                next.state = .failed
                next.finishedAt = now
            }
        case (.queued, .cancel(let reason)), (.running, .cancel(let reason)), (.publishing, .cancel(let reason)):
            next.state = .cancelled
            next.reason = reason
            next.phase = nil
            next.finishedAt = now
            next.waitingReason = nil
        case (.running, .requeue(let reason)), (.publishing, .requeue(let reason)):
            next.state = .queued
            next.phase = nil
            next.block = nil
            next.waitingReason = "interrupted: \(reason)"
        case (.failed, .retry), (.cancelled, .retry):
            next.state = .queued
            next.reason = nil
            next.retryable = nil
            next.finishedAt = nil
            next.notBefore = nil
            next.waitingReason = nil
            next.attempts = 0
            next.outputPath = nil
        default:
            throw refused
        }
        return next
    }
}
