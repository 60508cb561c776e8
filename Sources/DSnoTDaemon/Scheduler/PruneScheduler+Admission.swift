// SPDX-License-Identifier: Apache-2.0
// Jobs that can never run: a broken checkpoint, an unreadable recipe, an estimate beyond the budget.

public import DSnoTControlProtocol
public import DSnoTPipeline
import DSnoTSupport
import Foundation
import Logging

extension PruneScheduler {
    /// The record of a new job for a checkpoint. Its key (input fingerprint + recipe hash) makes
    /// queueing idempotent: the same checkpoint with the same recipe is one job.
    func newJob(
        inputPath: String,
        fingerprint: String,
        watch: String,
        outbox: String,
        recipe: PruneJobOptions,
        priority: Int
    ) -> JobRecord {
        let key = "\(fingerprint.prefix(32))-\(recipe.stableHash.prefix(16))"
        return JobRecord(
            id: "j-" + SHA256.hex(Array(key.utf8)).prefix(12),
            key: key,
            watch: watch,
            inputPath: inputPath,
            outbox: outbox,
            recipe: recipe.recipe.label,
            priority: priority,
            createdAt: now()
        )
    }

    /// Records a checkpoint that cannot become a runnable job (structurally broken, bad `dsnot.toml`)
    /// as a failed job with its reason, so that it shows in `list`, `show` and the journal. Idempotent
    /// like `enqueue`: the same fingerprint and recipe record one job.
    /// - Parameter fingerprint: identifies this state of the checkpoint (the watcher passes a hash of
    ///   `CheckpointInspector.signature`, since a broken checkpoint may have no readable header).
    /// - Returns: the job and whether it is new.
    @discardableResult
    public func reject(
        inputPath: String,
        fingerprint: String,
        watch: String,
        outbox: String,
        recipe: PruneJobOptions,
        priority: Int,
        reason: String
    ) throws -> (job: JobRecord, inserted: Bool) {
        let record = newJob(
            inputPath: inputPath,
            fingerprint: fingerprint,
            watch: watch,
            outbox: outbox,
            recipe: recipe,
            priority: priority
        )
        let result = try store.insert(record, recipe: recipe)
        guard result.inserted else { return result }
        return (try fail(result.job, reason: reason), true)
    }

    /// Fails a queued job that can never start, logging the reason.
    @discardableResult
    func fail(_ job: JobRecord, reason: String) throws -> JobRecord {
        let failed = try commit(.reject(reason: reason), job, detail: reason)
        logger.error(
            "Job failed",
            metadata: [
                "event": "job.failed", "job.id": "\(job.id)", "model.path": "\(job.inputPath)", "error": "\(reason)",
                "job.retry": "false",
            ]
        )
        return failed
    }
}

extension PruneScheduler {
    /// A queued job's spec and estimate (cached while it waits), or nil when it cannot be considered
    /// now. A recipe that no longer decodes, or an estimate that fails permanently (a bad checkpoint),
    /// fails the job; an estimate that fails for a reason that may pass makes it wait with that reason.
    func admissionInputs(_ job: JobRecord) -> (JobSpec, ResourceEstimate)? {
        let recipe: PruneJobOptions
        do {
            guard let stored = try store.recipe(jobID: job.id) else { return nil }
            recipe = stored
        } catch let error as JobStoreError {
            if case .recipeUnreadable = error {
                failLogged(job, reason: error.description)
            } else {
                hold(job, reason: "cannot read the job's recipe: \(error)")
            }
            return nil
        } catch {
            hold(job, reason: "cannot read the job's recipe: \(error)")
            return nil
        }
        let spec = JobSpec(
            id: job.id,
            inputPath: job.inputPath,
            recipe: recipe,
            temporaryOutputPath: temporaryPath(for: job),
            resume: settings.resume
        )
        if let estimate = estimates[job.id] { return (spec, estimate) }
        do {
            let estimate = try runner.estimate(spec)
            estimates[job.id] = estimate
            return (spec, estimate)
        } catch {
            let failure = JobFailure(classifying: error)
            if failure.isRetryable {
                hold(job, reason: "waiting: cannot estimate memory and disk: \(failure.description)")
            } else {
                failLogged(job, reason: "cannot estimate memory and disk: \(failure.description)")
            }
            return nil
        }
    }

    /// Leaves a job queued with a stated reason (recorded once per distinct reason).
    func hold(_ job: JobRecord, reason: String) {
        if waitingReason == nil { waitingReason = reason }
        guard job.waitingReason != reason else { return }
        do { try commit(.wait(reason: reason), job) } catch JobStoreError.conflict {
            // Another node claimed or changed the job since the queue was read: nothing to record.
            logger.debug("Job changed before its wait was recorded", metadata: ["job.id": "\(job.id)"])
        } catch {
            logger.error("Cannot record job state", metadata: ["job.id": "\(job.id)", "error": "\(error)"])
        }
    }

    /// `fail`, logging when the store refuses.
    func failLogged(_ job: JobRecord, reason: String) {
        estimates.removeValue(forKey: job.id)
        do { try fail(job, reason: reason) } catch {
            logger.error("Cannot record job state", metadata: ["job.id": "\(job.id)", "error": "\(error)"])
        }
    }
}
