// SPDX-License-Identifier: Apache-2.0
// Starting jobs on threads and recording their progress (publishing: PruneScheduler+Publishing).

import DSnoTControlProtocol
import DSnoTSupport
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

extension PruneScheduler {
    /// Commits a transition, publishes the event, and returns the new record.
    @discardableResult
    func commit(_ transition: JobTransition, _ job: JobRecord, detail: String? = nil) throws -> JobRecord {
        let next: JobRecord
        let at = now()
        do {
            next = try JobStateMachine.apply(transition, to: job, now: at, policy: settings.retryPolicy)
        } catch {
            throw ControlError(code: .invalidState, message: error.description)
        }
        try store.update(next, from: job, detail: detail)
        committed(job, next, at: at)
        return next
    }

    /// Counts and announces a transition the store committed.
    func committed(_ job: JobRecord, _ next: JobRecord, at: Date) {
        metrics?.record(job, next, at: at)
        let kind = next.state == job.state ? "progress" : "state"
        events.publish(JobEvent(kind: kind, job: next, etaSeconds: eta(for: next)))
    }

    /// Starts queued jobs while workers are free, in `SchedulingPolicy.candidates` order: a job that
    /// fits starts, one that must wait is passed over (it does not hold back the jobs behind it), one
    /// that can never run fails with its reason (`SchedulingPolicy.admission`).
    func scheduleNext() {
        guard !stopping, !globalPaused else {
            publishStatusLine()
            return
        }
        let queued: [JobRecord]
        // Oldest inserted first: the order `candidates` keeps for jobs created at the same instant.
        do { queued = try store.jobs(state: .queued, watch: nil, limit: nil).reversed() } catch {
            logger.error("Cannot read the queue", metadata: ["error": "\(error)"])
            return
        }
        let candidates = SchedulingPolicy.candidates(queued, pausedWatches: pausedWatches, now: now())
        let ids = Set(candidates.map(\.id))
        estimates = estimates.filter { ids.contains($0.key) }
        waitingReason = nil
        // Every candidate is judged, even when the workers are busy: a job that can never fit fails at
        // once rather than when a worker frees up (estimates are cached, so this costs no re-reading).
        // A job this node still runs can be queued again only if another node took it back (its run
        // here has lost the lease and is stopping): it is not started twice on one node.
        for job in candidates where running[job.id] == nil {
            guard let (spec, estimate) = admissionInputs(job) else { continue }
            let inUse = running.values.reduce(0) { SchedulingPolicy.sum($0, $1.estimate.memoryBytes) }
            switch SchedulingPolicy.admission(
                estimate: estimate,
                memoryBudget: settings.memoryBudget,
                memoryInUse: inUse,
                disk: diskSpace(job.outbox),
                diskMargin: settings.freeDiskMargin
            ) {
            case .never(let reason):
                failLogged(job, reason: reason)
            case .start where running.count < settings.workers:
                estimates.removeValue(forKey: job.id)
                start(job, spec: spec, estimate: estimate)
            case .wait(let reason) where running.count < settings.workers:
                hold(job, reason: reason)
            case .start, .wait:
                continue  // every worker is busy: the job keeps its place
            }
        }
        publishStatusLine()
    }

    /// Claims the job (another node may have it: then it is skipped) and starts its runner.
    private func start(_ job: JobRecord, spec: JobSpec, estimate: ResourceEstimate) {
        let started: JobRecord
        let claimSeconds: Double
        do {
            let at = now()
            let policy = settings.retryPolicy
            let claimStart = ContinuousClock.now
            let claimed = try store.claim(
                jobID: job.id,
                node: settings.node,
                lease: settings.lease?.seconds ?? 0,
                transition: {
                    try JobStateMachine.apply(.start, to: $0, now: at, policy: policy)
                }
            )
            claimSeconds = (ContinuousClock.now - claimStart).inSeconds
            metrics?.recordClaim(seconds: claimSeconds)
            guard let claimed else {
                logger.debug(
                    "Job claimed by another node",
                    metadata: ["job.id": "\(job.id)", "claim.seconds": "\(claimSeconds)"]
                )
                return
            }
            started = claimed
            committed(job, started, at: at)
            try FileManager.default.createDirectory(
                atPath: spec.temporaryOutputPath,
                withIntermediateDirectories: true
            )
        } catch {
            logger.error("Cannot start job", metadata: ["job.id": "\(job.id)", "error": "\(error)"])
            if let current = try? store.job(id: job.id), current.state == .running {
                let reason = "cannot start: \(JobFailure(classifying: error).description)"
                _ = try? commit(.fail(reason: reason, retryable: true), current)
            }
            return
        }
        let flag = CancelFlag()
        running[job.id] = RunningJob(
            record: started,
            flag: flag,
            estimate: estimate,
            pruningStarted: nil,
            leaseRenewedAt: now()
        )
        logger.notice(
            "Job started",
            metadata: [
                "event": "job.started", "job.id": "\(job.id)", "model.path": "\(job.inputPath)",
                "claim.seconds": "\(claimSeconds)",
            ]
        )
        let runner = self.runner
        let continuation = eventContinuation
        let id = job.id
        // The runner blocks for minutes to hours: a thread of its own keeps the cooperative pool free.
        let thread = Thread {
            let result = Result {
                try runner.run(
                    spec,
                    progress: { continuation.yield(.progress(id, $0)) },
                    isCancelled: { flag.isSet }
                )
            }
            continuation.yield(.finished(id, result))
        }
        thread.name = "dsnot-job-\(id)"
        thread.start()
    }

    func handleProgress(_ id: String, _ progress: JobProgress) {
        guard var entry = running[id], !entry.leaseLost else { return }
        if progress.phase == .pruning && entry.pruningStarted == nil { entry.pruningStarted = now() }
        do {
            entry.record = try commit(
                .progress(progress.phase, block: progress.block, blockCount: progress.blockCount),
                entry.record
            )
        } catch {
            logger.error("Cannot record progress", metadata: ["job.id": "\(id)", "error": "\(error)"])
        }
        running[id] = entry
        publishStatusLine()
    }

    func eta(for job: JobRecord) -> Double? {
        guard let started = running[job.id]?.pruningStarted else { return nil }
        return SchedulingPolicy.eta(
            block: job.block,
            blockCount: job.blockCount,
            elapsed: now().timeIntervalSince(started)
        )
    }

    /// Sends a one-line status (for `STATUS=`) when it changed: sd_notify is a blocking datagram send.
    func publishStatusLine() {
        guard let onStatusLine else { return }
        let line: String
        if let job = running.values.first?.record {
            let blocks = job.block.map { b in job.blockCount.map { " block \(b)/\($0)" } ?? " block \(b)" } ?? ""
            let extra = running.count > 1 ? " (+\(running.count - 1) more)" : ""
            line = "\(job.id) \(job.phase?.rawValue ?? "running")\(blocks)\(extra)"
        } else if globalPaused {
            line = "paused"
        } else if let waitingReason {
            line = waitingReason
        } else {
            line = "idle"
        }
        guard line != lastStatusLine else { return }
        lastStatusLine = line
        onStatusLine(line)
    }

    /// Free bytes (for unprivileged users) and total bytes of the filesystem holding `path` (its nearest
    /// existing parent). Unknown (`statvfs` fails) counts as unlimited: the write itself will tell.
    public nonisolated static func statvfsDiskSpace(_ path: String) -> DiskSpace {
        var url = URL(fileURLWithPath: path)
        while !FileManager.default.fileExists(atPath: url.path) && url.path != "/" { url.deleteLastPathComponent() }
        var stats = statvfs()
        guard statvfs(url.path, &stats) == 0 else { return DiskSpace(free: Int.max, total: Int.max) }
        func bytes(_ blocks: UInt) -> Int {
            let (bytes, overflow) = Int(clamping: blocks).multipliedReportingOverflow(by: Int(stats.f_frsize))
            return overflow ? Int.max : bytes
        }
        return DiskSpace(free: bytes(stats.f_bavail), total: bytes(stats.f_blocks))
    }
}
