// SPDX-License-Identifier: Apache-2.0
// Starting jobs on threads, recording their progress, publishing their output.

import DSnoTControlProtocol
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
        do {
            next = try JobStateMachine.apply(transition, to: job, now: now(), policy: settings.retryPolicy)
        } catch {
            throw ControlError(code: .invalidState, message: error.description)
        }
        try store.update(next, from: job, detail: detail)
        let kind = next.state == job.state ? "progress" : "state"
        events.publish(JobEvent(kind: kind, job: next, etaSeconds: eta(for: next)))
        return next
    }

    /// Starts queued jobs while workers are free, in `SchedulingPolicy.candidates` order: a job that
    /// fits starts, one that must wait is passed over (it does not hold back the jobs behind it), one
    /// that can never run fails with its reason (`SchedulingPolicy.admission`).
    func scheduleNext() {
        guard !stopping, !globalPaused, running.count < settings.workers else {
            publishStatusLine()
            return
        }
        let queued: [JobRecord]
        do { queued = try store.jobs(state: .queued, watch: nil, limit: nil) } catch {
            logger.error("Cannot read the queue", metadata: ["error": "\(error)"])
            return
        }
        let candidates = SchedulingPolicy.candidates(queued, pausedWatches: pausedWatches, now: now())
        let ids = Set(candidates.map(\.id))
        estimates = estimates.filter { ids.contains($0.key) }
        waitingReason = nil
        for job in candidates where running.count < settings.workers {
            guard let (spec, estimate) = admissionInputs(job) else { continue }
            let inUse = running.values.reduce(0) { SchedulingPolicy.sum($0, $1.estimate.memoryBytes) }
            switch SchedulingPolicy.admission(
                estimate: estimate,
                memoryBudget: settings.memoryBudget,
                memoryInUse: inUse,
                disk: diskSpace(job.outbox),
                diskMargin: settings.freeDiskMargin
            ) {
            case .start:
                estimates.removeValue(forKey: job.id)
                start(job, spec: spec, estimate: estimate)
            case .wait(let reason):
                hold(job, reason: reason)
            case .never(let reason):
                failLogged(job, reason: reason)
            }
        }
        publishStatusLine()
    }

    private func start(_ job: JobRecord, spec: JobSpec, estimate: ResourceEstimate) {
        let started: JobRecord
        do {
            started = try commit(.start, job)
            try FileManager.default.createDirectory(
                atPath: spec.temporaryOutputPath,
                withIntermediateDirectories: true
            )
        } catch {
            logger.error("Cannot start job", metadata: ["job.id": "\(job.id)", "error": "\(error)"])
            if let current = try? store.job(id: job.id), current.state == .running {
                _ = try? commit(.fail(reason: "cannot start: \(error)", retryable: true), current)
            }
            return
        }
        let flag = CancelFlag()
        running[job.id] = RunningJob(record: started, flag: flag, estimate: estimate, pruningStarted: nil)
        logger.notice(
            "Job started",
            metadata: ["event": "job.started", "job.id": "\(job.id)", "model.path": "\(job.inputPath)"]
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
        guard var entry = running[id] else { return }
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

    func handleFinished(_ id: String, _ result: Result<JobOutcome, any Error>) {
        guard let entry = running.removeValue(forKey: id) else { return }
        let job = entry.record
        let temporary = temporaryPath(for: job)
        do {
            switch result {
            case .success(let outcome):
                try publish(job, temporary: temporary, outcome: outcome)
            case .failure(JobFailure.cancelled) where entry.flag.current == .shutdown:
                try? FileManager.default.removeItem(atPath: temporary)
                try commit(.requeue(reason: "daemon stopping"), job)
                logger.notice("Job re-queued", metadata: ["event": "job.requeued", "job.id": "\(id)"])
            case .failure(JobFailure.cancelled):
                try? FileManager.default.removeItem(atPath: temporary)
                try commit(.cancel(reason: "cancelled by user"), job)
                logger.notice("Job cancelled", metadata: ["event": "job.cancelled", "job.id": "\(id)"])
            case .failure(let error):
                try? FileManager.default.removeItem(atPath: temporary)
                let (reason, retryable) = Self.classify(error)
                let next = try commit(.fail(reason: reason, retryable: retryable), job, detail: reason)
                logger.error(
                    "Job failed",
                    metadata: [
                        "event": "job.failed", "job.id": "\(id)", "error": "\(reason)",
                        "job.retry": "\(next.state == .queued)",
                    ]
                )
            }
        } catch {
            logger.error("Cannot record job end", metadata: ["job.id": "\(id)", "error": "\(error)"])
        }
    }

    private func publish(_ job: JobRecord, temporary: String, outcome: JobOutcome) throws {
        let input = URL(fileURLWithPath: job.inputPath).lastPathComponent
        var final = URL(fileURLWithPath: job.outbox).appendingPathComponent("\(input)-\(job.recipe)").path
        if FileManager.default.fileExists(atPath: final) { final += "-\(job.id)" }
        let publishing = try commit(.publish(outputPath: final), job)
        if rename(temporary, final) != 0 {
            let code = errno
            let message = "cannot rename \(temporary) to \(final): \(String(cString: strerror(code)))"
            try commit(.fail(reason: message, retryable: true), publishing, detail: message)
            logger.error("Job failed", metadata: ["event": "job.failed", "job.id": "\(job.id)", "error": "\(message)"])
            return
        }
        try commit(.succeed, publishing, detail: outcome.summary)
        logger.notice(
            "Job finished",
            metadata: [
                "event": "job.finished", "job.id": "\(job.id)", "output.path": "\(final)",
                "summary": "\(outcome.summary)",
            ]
        )
    }

    static func classify(_ error: any Error) -> (String, Bool) {
        switch error {
        case JobFailure.retryable(let reason): return (reason, true)
        case JobFailure.permanent(let reason): return (reason, false)
        case let error as CocoaError where error.code == .fileWriteOutOfSpace: return ("\(error)", true)
        case let error as POSIXError where [.ENOSPC, .EIO, .EAGAIN].contains(error.code): return ("\(error)", true)
        default: return ("\(error)", false)
        }
    }

    func temporaryPath(for job: JobRecord) -> String {
        URL(fileURLWithPath: job.outbox).appendingPathComponent(".dsnot-tmp-\(job.id)").path
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
