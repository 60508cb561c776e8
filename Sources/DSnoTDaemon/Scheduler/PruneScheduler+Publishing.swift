// SPDX-License-Identifier: Apache-2.0
// The end of a job: publishing its output durably, recording failures, and finding outputs a crash left published.

import DSnoTControlProtocol
import DSnoTPipeline
import Foundation
import Logging
import SafeTensors
import SparseFormat

extension PruneScheduler {
    /// Records how a job's run ended: publishes its output, re-queues it (shutdown), cancels or fails it.
    func handleFinished(_ id: String, _ result: Result<JobOutcome, any Error>) {
        guard let entry = running.removeValue(forKey: id) else { return }
        let job = entry.record
        let publisher = publisher(for: job)
        if entry.leaseLost {
            // Another node has the job now (or it was cancelled from one): nothing of this run is kept.
            try? publisher.discard()
            logger.notice("Job given up: lease lost", metadata: ["event": "job.lease_lost", "job.id": "\(id)"])
            return
        }
        do {
            switch result {
            case .success(let outcome):
                try publish(job, entry, through: publisher, outcome: outcome)
            case .failure(JobFailure.cancelled) where entry.flag.current == .shutdown:
                // With `resume`, a staging directory holding a resume point is kept for the next start.
                if !settings.resume || !PruneJob.hasResumePoint(in: publisher.stagingPath) {
                    try? publisher.discard()
                }
                try commit(.requeue(reason: "daemon stopping"), job)
                logger.notice("Job re-queued", metadata: ["event": "job.requeued", "job.id": "\(id)"])
            case .failure(JobFailure.cancelled):
                try? publisher.discard()
                try commit(.cancel(reason: "cancelled by user"), job)
                logger.notice("Job cancelled", metadata: ["event": "job.cancelled", "job.id": "\(id)"])
            case .failure(let error):
                try? publisher.discard()
                try recordFailure(job, JobFailure(classifying: error))
            }
        } catch JobStoreError.conflict(_, _, let got) {
            // The job changed under this node (taken over after its lease expired, or cancelled from
            // another node): this run's output, if any, is not the job's any more.
            try? publisher.discard()
            metrics?.recordLease(lost: true)
            logger.error(
                "Job changed under this node: its run here is discarded",
                metadata: ["event": "job.lease_lost", "job.id": "\(id)", "state": "\(got?.rawValue ?? "gone")"]
            )
        } catch {
            logger.error("Cannot record job end", metadata: ["job.id": "\(id)", "error": "\(error)"])
        }
    }

    /// Publishes the finished output durably, then commits `done`, in this order: `publishing` is
    /// committed; every output file is fsynced under its staging name and the staging directory is
    /// fsynced; `renameat2(RENAME_NOREPLACE)` renames it to `<outbox>/<input>-<recipe>`, or when that
    /// is taken to `…-<job>` (then `…-<job>-2`, …: each a no-replace rename, never a check first); the
    /// outbox is fsynced; only then is the job committed `done`, so an acknowledged `done` names an
    /// output that survives a power loss. A crash between the rename and the commit is finished by
    /// `recoverPublished` at the next start.
    ///
    /// With a shared job store the node renews the job's lease right before the sync and rename: a
    /// node that lost it discards its output instead (the settle period covers the sync and rename
    /// that follow the check, docs/design.md "Fleet").
    private func publish(
        _ job: JobRecord,
        _ entry: RunningJob,
        through publisher: AtomicPublisher,
        outcome: JobOutcome
    ) throws {
        let publishing = try commit(.publish, job)
        guard mayPublish(job.id, entry) else {
            try? publisher.discard()
            logger.error(
                "Lease lost before publishing: the output is discarded, another node runs the job",
                metadata: ["event": "job.lease_lost", "job.id": "\(job.id)"]
            )
            return
        }
        let final: String
        do {
            final = try publisher.publish()
        } catch {
            if let output = publishedOutput(of: job) {
                // Renamed, but the outbox could not be synced: visible, not durable. Not re-run (that
                // would publish a second copy); the reason says where the output is.
                try recordFailure(publishing, unsyncedOutbox(output, error))
            } else {
                try? publisher.discard()
                try recordFailure(publishing, JobFailure(classifying: error))
            }
            return
        }
        try commit(.succeed(outputPath: final), publishing, detail: outcome.summary)
        metrics?.recordPublished(bytes: Self.bytes(under: final))
        logger.notice(
            "Job finished",
            metadata: [
                "event": "job.finished", "job.id": "\(job.id)", "output.path": "\(final)",
                "summary": "\(outcome.summary)",
            ]
        )
    }

    /// Commits a failure (re-queued with back-off when retryable and attempts are left) and logs it.
    private func recordFailure(_ job: JobRecord, _ failure: JobFailure) throws {
        let reason = failure.description
        let next = try commit(.fail(reason: reason, retryable: failure.isRetryable), job, detail: reason)
        logger.error(
            "Job failed",
            metadata: [
                "event": "job.failed", "job.id": "\(job.id)", "error": "\(reason)",
                "job.retry": "\(next.state == .queued)",
            ]
        )
    }

    /// Finishes a job left `publishing` by a previous process whose output was already renamed into
    /// place (the crash came between the rename and the `done` commit): the output is found by the
    /// job id in its `dsnot-report.json`, the outbox is fsynced (the crash may have preceded that),
    /// and the job is committed `done` without running again.
    /// - Returns: the finished job (failed, naming the output, if the outbox cannot be synced), or
    ///   `nil` when no published output names the job (it re-runs).
    func recoverPublished(_ job: JobRecord) throws -> JobRecord? {
        guard job.state == .publishing, let output = publishedOutput(of: job) else { return nil }
        do {
            try DurableFile.syncDirectory(job.outbox)
        } catch {
            let failure = unsyncedOutbox(output, error)
            return try commit(.fail(reason: failure.description, retryable: false), job, detail: failure.description)
        }
        let done = try commit(
            .succeed(outputPath: output),
            job,
            detail: "found published at start (the daemon stopped before recording it)"
        )
        logger.notice(
            "Job finished",
            metadata: [
                "event": "job.finished", "job.id": "\(job.id)", "output.path": "\(output)",
                "summary": "recovered at start",
            ]
        )
        return done
    }

    /// The failure of a job whose output was renamed into place but whose outbox fsync failed.
    private func unsyncedOutbox(_ output: String, _ error: any Error) -> JobFailure {
        .permanent(
            "published as \(output), but the outbox could not be synced (the name may not survive a power "
                + "loss): \(JobFailure(classifying: error).description)"
        )
    }

    /// The published output whose report names `job`, among the names its publisher may have used.
    func publishedOutput(of job: JobRecord) -> String? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: job.outbox)) ?? []
        let present = Set(names.map { URL(fileURLWithPath: job.outbox).appendingPathComponent($0).path })
        return publisher(for: job).candidates.first { present.contains($0) && Self.report(in: $0, names: job.id) }
    }

    /// Bytes of the regular files under `directory` (a published output: a few shards and JSON files).
    static func bytes(under directory: String) -> Int {
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return 0 }
        var total = 0
        while walker.nextObject() != nil {
            let attributes = walker.fileAttributes
            if attributes?[.type] as? FileAttributeType == .typeRegular, let size = attributes?[.size] as? Int {
                total = SchedulingPolicy.sum(total, size)
            }
        }
        return total
    }

    /// Whether `<directory>/dsnot-report.json` records `job` as the job that produced it.
    static func report(in directory: String, names job: String) -> Bool {
        struct ReportJob: Decodable { var job: String? }
        let path = directory + "/dsnot-report.json"
        let limit = 64 << 20
        guard let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size <= limit,
            let data = FileManager.default.contents(atPath: path),
            let report = try? JSONDecoder().decode(ReportJob.self, from: data)
        else { return false }
        return report.job == job
    }

    /// The job's publisher: staging in `<outbox>/.dsnot-tmp-<job>`, target `<outbox>/<input>-<recipe>`,
    /// a taken target suffixed with the job id.
    ///
    /// With a shared job store the staging directory is `.dsnot-tmp-<job>.<node>`: a node that lost a
    /// job's lease may still be writing when another node starts it in the same shared outbox.
    /// - Parameter node: whose staging directory (default: this node's).
    func publisher(for job: JobRecord, node: String? = nil) -> AtomicPublisher {
        let input = URL(fileURLWithPath: job.inputPath).lastPathComponent
        let target = URL(fileURLWithPath: job.outbox).appendingPathComponent("\(input)-\(job.recipe)").path
        return AtomicPublisher(adopting: stagingID(job, node: node), target: target, ifTaken: .suffix(job.id))
    }

    /// The staging directory's id: the job's, and with a shared store the node's too.
    func stagingID(_ job: JobRecord, node: String? = nil) -> String {
        settings.lease == nil ? job.id : "\(job.id).\(node ?? settings.node)"
    }

    /// The directory a job's runner writes into (created when the job starts).
    func temporaryPath(for job: JobRecord) -> String {
        publisher(for: job).stagingPath
    }
}
