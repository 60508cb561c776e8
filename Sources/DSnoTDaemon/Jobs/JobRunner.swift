// SPDX-License-Identifier: Apache-2.0
// The seam between the scheduler and the pruning pipeline: a blocking runner on a dedicated thread.

public import DSnoTControlProtocol
public import DSnoTPipeline
import Foundation

/// What a runner is asked to do.
public struct JobSpec: Sendable, Equatable {
    public var id: String
    /// The input checkpoint directory (never modified).
    public var inputPath: String
    public var recipe: PruneJobOptions
    /// The directory to write the output into (`<outbox>/.dsnot-tmp-<job>/`, created by the scheduler).
    /// The scheduler renames it to its final name after the runner returns.
    public var temporaryOutputPath: String
    /// Keep resume points in `temporaryOutputPath` and continue from the newest valid one found there
    /// (`PruneJob.run(resume:)`).
    public var resume: Bool

    public init(
        id: String,
        inputPath: String,
        recipe: PruneJobOptions,
        temporaryOutputPath: String,
        resume: Bool = false
    ) {
        self.id = id
        self.inputPath = inputPath
        self.recipe = recipe
        self.temporaryOutputPath = temporaryOutputPath
        self.resume = resume
    }
}

/// Progress reported by a runner: the phase and, while pruning, the blocks done out of the total.
public struct JobProgress: Sendable, Equatable {
    public var phase: JobPhase
    public var block: Int?
    public var blockCount: Int?

    public init(phase: JobPhase, block: Int? = nil, blockCount: Int? = nil) {
        self.phase = phase
        self.block = block
        self.blockCount = blockCount
    }
}

/// What a finished job produced.
public struct JobOutcome: Sendable, Equatable {
    /// One line for logs and `STATUS=` (`"sparsity 50.0 %, ppl +3.1 %"`).
    public var summary: String

    public init(summary: String) { self.summary = summary }
}

/// The resources a job needs, checked before it starts so that it waits instead of failing half-way.
public struct ResourceEstimate: Sendable, Equatable {
    /// Peak resident memory, bytes.
    public var memoryBytes: Int
    /// Output size, bytes.
    public var outputBytes: Int

    public init(memoryBytes: Int, outputBytes: Int) {
        self.memoryBytes = memoryBytes
        self.outputBytes = outputBytes
    }
}

/// Why a job stopped. Throw it from `JobRunner.run`.
public enum JobFailure: Error, Equatable, CustomStringConvertible {
    /// A failure that may pass on retry (disk full, I/O error).
    case retryable(String)
    /// A failure that will not (bad checkpoint, unsupported architecture, quality gate).
    case permanent(String)
    /// `isCancelled()` returned true and the runner stopped at a block boundary.
    case cancelled

    public var description: String {
        switch self {
        case .retryable(let reason), .permanent(let reason): return reason
        case .cancelled: return "cancelled"
        }
    }
}

/// Runs one job. The daemon uses `PipelineJobRunner`; tests may substitute a scripted runner.
///
/// `run` blocks: the scheduler calls it on a dedicated thread, never on the cooperative pool or an
/// event loop. It calls `progress` after each phase change and block, checks `isCancelled()` at each
/// block boundary and then throws `JobFailure.cancelled`.
public protocol JobRunner: Sendable {
    /// The memory and output size the job will need.
    func estimate(_ job: JobSpec) throws -> ResourceEstimate
    /// Runs the job, writing into `job.temporaryOutputPath`.
    /// - Throws: `JobFailure` (other errors count as permanent failures).
    func run(
        _ job: JobSpec,
        progress: @Sendable (JobProgress) -> Void,
        isCancelled: @Sendable () -> Bool
    ) throws -> JobOutcome
}
