// SPDX-License-Identifier: Apache-2.0
// PipelineJobRunner: the daemon's jobs run DSnoTPipeline's PruneJob (the same code as `dsnotctl prune`).

import DSnoTControlProtocol
import DSnoTCore
import DSnoTPipeline
public import Logging
import SafeTensors
import SparseFormat
import SystemPackage

/// Runs a job with the real pruning pipeline: calibrate, prune block by block into the configured
/// format, evaluate and apply the quality gate, write the report, into `job.temporaryOutputPath`.
/// With `job.resume` the job keeps a resume point per finished block there and continues from the
/// newest valid one left by an interrupted run.
///
/// Failures are classified for the scheduler by `JobFailure(classifying:)`: disk full, quota and I/O
/// errors are retryable (the job retries with back-off); a bad checkpoint, an unsupported
/// architecture, a recipe that cannot apply or a failed quality gate are permanent; cancellation is
/// `.cancelled`.
public struct PipelineJobRunner: JobRunner {
    let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    public func estimate(_ job: JobSpec) throws -> ResourceEstimate {
        do {
            let e = try PruneJob(input: job.inputPath, options: job.recipe).estimate(resume: job.resume)
            return ResourceEstimate(memoryBytes: e.memoryBytes, outputBytes: e.outputBytes)
        } catch {
            throw JobFailure(classifying: error)
        }
    }

    public func run(
        _ job: JobSpec,
        progress: @Sendable (JobProgress) -> Void,
        isCancelled: @Sendable () -> Bool
    ) throws -> JobOutcome {
        var logger = self.logger
        logger[metadataKey: "job.id"] = "\(job.id)"
        do {
            let pruneJob = try PruneJob(input: job.inputPath, options: job.recipe)
            var lastBlock = -1
            let result = try pruneJob.run(
                into: job.temporaryOutputPath,
                jobID: job.id,
                resume: job.resume,
                logger: logger,
                progress: {
                    switch $0 {
                    case .loading: progress(JobProgress(phase: .loading))
                    case .pruning(let p):
                        // One update per block keeps the store's writes and the event stream proportionate.
                        guard p.block != lastBlock else { return }
                        lastBlock = p.block
                        progress(JobProgress(phase: .pruning, block: p.block, blockCount: p.blockCount))
                    case .evaluating: progress(JobProgress(phase: .evaluating))
                    case .writing: progress(JobProgress(phase: .writing))
                    }
                },
                isCancelled: isCancelled
            )
            return JobOutcome(summary: Self.summary(result.report))
        } catch {
            throw JobFailure(classifying: error)
        }
    }

    static func summary(_ report: PruneReport) -> String {
        var text = "sparsity \(Self.percent(100 * report.totals.sparsity)) %"
        if let p = report.perplexity {
            text += ", ppl \(Self.percent(p.dense)) → \(Self.percent(p.pruned)) (+\(Self.percent(p.increasePercent)) %)"
        }
        return text
    }

    static func percent(_ value: Double) -> String { "\((value * 10).rounded() / 10)" }
}
