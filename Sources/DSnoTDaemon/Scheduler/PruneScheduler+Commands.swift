// SPDX-License-Identifier: Apache-2.0
// The scheduler's commands: recover at start, enqueue, cancel, retry, pause, resume, status, reload.

public import DSnoTControlProtocol
public import DSnoTPipeline
import DSnoTSupport
import Foundation
import Logging
import SparseFormat

extension PruneScheduler {
    /// Start-up recovery: a job left `publishing` whose output is already in place (a crash between
    /// the rename and the `done` commit) is finished as `done`; other jobs left `running` or
    /// `publishing` by a previous process go back to the queue (the interrupted run is not counted as
    /// an attempt); then the orphaned `.dsnot-tmp-*` staging directories in every outbox are removed
    /// (`AtomicPublisher.removeOrphans`), except, with `resume`, those of queued jobs that hold a resume
    /// point (`PruneJob.hasResumePoint`): the jobs continue from it.
    /// - Returns: the re-queued jobs.
    @discardableResult
    public func recover() throws -> [JobRecord] {
        var requeued: [JobRecord] = []
        // Another node's running jobs (a shared store) keep running there; their staging directories
        // in a shared outbox are theirs. Only this node's own are recovered here; a node that died is
        // taken over when its lease expires (`maintainLeases`).
        var othersStaging: [String: Set<String>] = [:]
        for state in [JobState.running, .publishing] {
            for job in try store.jobs(state: state, watch: nil, limit: nil) {
                if settings.lease != nil, let node = job.node, node != settings.node {
                    othersStaging[job.outbox, default: []].insert(
                        AtomicPublisher.stagingPrefix + stagingID(job, node: node)
                    )
                    continue
                }
                if try recoverPublished(job) != nil { continue }
                requeued.append(try commit(.requeue(reason: "daemon restarted"), job))
            }
        }
        var outboxes = Set(settings.watches.map(\.outbox))
        var resumable: [String: Set<String>] = [:]
        for job in try store.jobs(state: nil, watch: nil, limit: nil) {
            outboxes.insert(job.outbox)
            if settings.resume && job.state == .queued
                && PruneJob.hasResumePoint(in: publisher(for: job).stagingPath)
            {
                resumable[job.outbox, default: []].insert(AtomicPublisher.stagingPrefix + stagingID(job))
            }
        }
        for outbox in outboxes.sorted() where FileManager.default.fileExists(atPath: outbox) {
            do {
                let keep = (resumable[outbox] ?? []).union(othersStaging[outbox] ?? [])
                for name in try AtomicPublisher.removeOrphans(in: outbox, keeping: keep) {
                    let path = URL(fileURLWithPath: outbox).appendingPathComponent(name).path
                    logger.info("Removed orphaned temp output", metadata: ["output.path": "\(path)"])
                }
            } catch {
                logger.error(
                    "Cannot remove orphaned temp outputs",
                    metadata: ["outbox": "\(outbox)", "error": "\(error)"]
                )
            }
        }
        return requeued
    }

    /// Queues the checkpoint at `inputPath` for `watch` with `recipe`, unless a job with the same key
    /// (input fingerprint + recipe hash) exists.
    /// - Returns: the job and whether it is new.
    @discardableResult
    public func enqueue(
        inputPath: String,
        fingerprint: String,
        watch: String,
        outbox: String,
        recipe: PruneJobOptions,
        priority: Int
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
        if result.inserted {
            events.publish(JobEvent(kind: "state", job: result.job))
            logger.notice(
                "Job queued",
                metadata: ["event": "job.queued", "job.id": "\(record.id)", "model.path": "\(inputPath)"]
            )
            wake()
        }
        return result
    }

    /// Cancels a queued job now, or a running one at its next block boundary; either way its staging
    /// directory (with any resume point) is removed.
    public func cancel(id: String) throws -> JobRecord {
        let job = try existing(id)
        if let entry = running[id] {
            entry.flag.set(.user)
            var record = entry.record
            record.waitingReason = "cancelling at the next block boundary"
            return record
        }
        let cancelled = try commit(.cancel(reason: "cancelled by user"), job)
        // A job running on another node (a shared store) stops there when its lease renewal sees the
        // cancel; its staging directory is that node's to remove.
        guard job.state == .queued else { return cancelled }
        // A queued job may hold the resume point of an interrupted run: cancelling removes it.
        do { try publisher(for: job).discard() } catch {
            logger.error("Cannot remove a staging directory", metadata: ["job.id": "\(id)", "error": "\(error)"])
        }
        logger.notice("Job cancelled", metadata: ["event": "job.cancelled", "job.id": "\(id)"])
        return cancelled
    }

    /// Re-queues a failed or cancelled job.
    public func retry(id: String) throws -> JobRecord {
        let job = try commit(.retry, try existing(id))
        wake()
        return job
    }

    /// Pauses the queue (`watch == nil`) or one watch. Running jobs continue.
    public func pause(watch: String?) throws -> String {
        guard let watch else {
            globalPaused = true
            publishStatusLine()
            return "queue paused"
        }
        try requireWatch(watch)
        pausedWatches.insert(watch)
        return "watch '\(watch)' paused"
    }

    /// Resumes the queue or one watch.
    public func resume(watch: String?) throws -> String {
        guard let watch else {
            globalPaused = false
            wake()
            return "queue resumed"
        }
        try requireWatch(watch)
        pausedWatches.remove(watch)
        wake()
        return "watch '\(watch)' resumed"
    }

    /// Replaces the settings after a reload. Running jobs keep their recipe.
    public func apply(_ newSettings: Settings) {
        let newNames = Set(newSettings.watches.map(\.name))
        pausedWatches = pausedWatches.intersection(newNames)
            .union(newSettings.watches.filter(\.paused).map(\.name))
        settings = newSettings
        wake()
    }

    /// The scheduler's part of `status`.
    public func snapshot() throws -> (
        counts: [String: Int], running: [JobProgressReport], paused: Bool, pausedWatches: Set<String>,
        waitingReason: String?
    ) {
        var counts = Dictionary(uniqueKeysWithValues: JobState.allCases.map { ($0.rawValue, 0) })
        for (state, count) in try store.counts() { counts[state.rawValue] = count }
        let reports = running.values.sorted { $0.record.id < $1.record.id }.map {
            JobProgressReport(job: $0.record, etaSeconds: eta(for: $0.record))
        }
        return (counts, reports, globalPaused, pausedWatches, waitingReason)
    }

    /// A job, with the live record for running jobs.
    public func job(id: String) throws -> JobRecord {
        if let entry = running[id] { return entry.record }
        return try existing(id)
    }

    /// The live ETA of a running job.
    public func etaSeconds(id: String) -> Double? {
        running[id].flatMap { eta(for: $0.record) }
    }

    private func existing(_ id: String) throws -> JobRecord {
        guard let job = try store.job(id: id) else {
            throw ControlError(code: .notFound, message: "no job '\(id)' (dsnotctl list shows the ids)")
        }
        return running[id]?.record ?? job
    }

    private func requireWatch(_ name: String) throws {
        guard settings.watches.contains(where: { $0.name == name }) else {
            let names = settings.watches.map(\.name).joined(separator: ", ")
            throw ControlError(code: .notFound, message: "no watch '\(name)' (configured: \(names))")
        }
    }
}
