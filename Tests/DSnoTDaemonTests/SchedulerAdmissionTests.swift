// SPDX-License-Identifier: Apache-2.0
// The real scheduler deciding start / wait / never: no job stalls the queue, no error is swallowed.

import DSnoTControlProtocol
import DSnoTDaemon
import DSnoTPipeline
import DSnoTTestSupport
import Foundation
import GRDB
import Logging
import Synchronization
import Testing

/// Keeps every record logged, for checking that a failure was logged.
struct RecordingLogHandler: LogHandler {
    final class Records: Sendable {
        let entries = Mutex<[(Logger.Level, String, Logger.Metadata)]>([])
        func contains(_ message: String, _ key: String, containing text: String) -> Bool {
            entries.withLock { $0.contains { $0.1 == message && "\($0.2[key] ?? "")".contains(text) } }
        }
    }

    let records: Records
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        records.entries.withLock { $0.append((event.level, "\(event.message)", event.metadata ?? [:])) }
    }
}

@Suite struct SchedulerAdmissionTests {
    struct Harness {
        let directory: TemporaryDirectory
        let store: SQLiteJobStore
        let scheduler: PruneScheduler
        let runner: ScriptedJobRunner
        let records: RecordingLogHandler.Records

        /// A scheduler whose runner estimates each job by its checkpoint's name (`estimates`), throwing
        /// the `JobFailure` given for a name in `failures`.
        init(
            estimates: [String: ResourceEstimate],
            failures: [String: JobFailure] = [:],
            memoryBudget: Int = 1 << 30,
            disk: DiskSpace = DiskSpace(free: Int.max, total: Int.max),
            workers: Int = 1
        ) throws {
            directory = try TemporaryDirectory()
            var configuration = testConfiguration(in: directory)
            configuration.memoryBudget = memoryBudget
            configuration.workers = workers
            store = try SQLiteJobStore(path: directory.sub("jobs.sqlite").path)
            runner = ScriptedJobRunner(blocks: 1) { spec in
                let name = URL(fileURLWithPath: spec.inputPath).lastPathComponent
                if let failure = failures[name] { throw failure }
                return estimates[name] ?? ResourceEstimate(memoryBytes: 1, outputBytes: 1)
            }
            let records = RecordingLogHandler.Records()
            self.records = records
            scheduler = PruneScheduler(
                store: store,
                runner: runner,
                settings: PruneScheduler.Settings(configuration),
                events: EventHub(),
                logger: Logger(label: "test") { _ in RecordingLogHandler(records: records) },
                diskSpace: { _ in disk }
            )
        }

        func submit(_ name: String) async throws -> JobRecord {
            let checkpoint = try CheckpointFixture.write(to: directory.sub("in/\(name)"))
            return try await scheduler.enqueue(
                inputPath: checkpoint.path,
                fingerprint: try CheckpointInspector.fingerprint(checkpoint),
                watch: "main",
                outbox: directory.sub("out").path,
                recipe: PruneJobOptions.defaults,
                priority: 0
            ).job
        }

        func job(_ id: String) throws -> JobRecord? { try store.job(id: id) }

        /// Queues `names` in order (oldest first) while paused, then runs the scheduler.
        func run(_ names: [String]) async throws -> ([JobRecord], Task<Void, any Error>) {
            _ = try await scheduler.pause(watch: nil)
            var jobs: [JobRecord] = []
            for name in names {
                jobs.append(try await submit(name))
                try await Task.sleep(for: .milliseconds(5))  // distinct creation times: a stated order
            }
            let task = Task { try await scheduler.run() }
            _ = try await scheduler.resume(watch: nil)
            return (jobs, task)
        }
    }

    @Test func jobThatCanNeverFitFailsAtOnceAndTheJobsBehindItRun() async throws {
        // 65536 sequences × 1048576 tokens of calibration: about 16 TiB, against a 1 GiB budget.
        let harness = try Harness(
            estimates: [
                "huge": ResourceEstimate(memoryBytes: 16 << 40, outputBytes: 1),
                "wide": ResourceEstimate(memoryBytes: 1, outputBytes: 3 << 40),
            ],
            disk: DiskSpace(free: 1 << 40, total: 2 << 40)
        )
        defer { harness.directory.remove() }
        let (jobs, task) = try await harness.run(["huge", "wide", "small"])
        defer { task.cancel() }
        #expect(try await eventually { try harness.job(jobs[2].id)?.state == .done })
        let huge = try #require(try harness.job(jobs[0].id))
        #expect(huge.state == .failed && huge.retryable == false && huge.attempts == 0)
        #expect(huge.reason?.contains("16.0 TiB of memory, more than memory_budget 1.0 GiB") == true)
        let wide = try #require(try harness.job(jobs[1].id))
        #expect(wide.state == .failed)
        #expect(wide.reason?.contains("more than the outbox filesystem's total size 2.0 TiB") == true)
        #expect(try harness.store.history(jobID: huge.id).map(\.to) == [.queued, .failed])
        #expect(harness.records.contains("Job failed", "job.id", containing: huge.id))
        #expect(harness.runner.runCount == 1)
    }

    @Test func jobWaitingForDiskDoesNotHoldBackAJobThatFits() async throws {
        let harness = try Harness(
            estimates: ["big": ResourceEstimate(memoryBytes: 1, outputBytes: 10 << 30)],
            disk: DiskSpace(free: 5 << 30, total: 100 << 30)
        )
        defer { harness.directory.remove() }
        let (jobs, task) = try await harness.run(["big", "small"])
        defer { task.cancel() }
        #expect(try await eventually { try harness.job(jobs[1].id)?.state == .done })
        let big = try #require(try harness.job(jobs[0].id))
        #expect(big.state == .queued)
        #expect(big.waitingReason?.hasPrefix("waiting for disk: output needs 10.0 GiB") == true)
    }

    @Test func failingEstimateFailsAPermanentlyBadJobAndHoldsATransientOne() async throws {
        let harness = try Harness(
            estimates: [:],
            failures: [
                "bad": .permanent("config.json: unsupported model_type 'gpt2'"),
                "flaky": .retryable("model.safetensors: read failed: EIO"),
            ]
        )
        defer { harness.directory.remove() }
        let (jobs, task) = try await harness.run(["bad", "flaky", "fine"])
        defer { task.cancel() }
        #expect(try await eventually { try harness.job(jobs[2].id)?.state == .done })
        let bad = try #require(try harness.job(jobs[0].id))
        #expect(bad.state == .failed)
        #expect(bad.reason == "cannot estimate memory and disk: config.json: unsupported model_type 'gpt2'")
        let flaky = try #require(try harness.job(jobs[1].id))
        #expect(flaky.state == .queued)
        #expect(
            flaky.waitingReason?.contains("cannot estimate memory and disk: model.safetensors: read failed") == true
        )
    }

    @Test func storedRecipeThatNoLongerDecodesFailsTheJobWithItsReason() async throws {
        let harness = try Harness(estimates: [:])
        defer { harness.directory.remove() }
        _ = try await harness.scheduler.pause(watch: nil)
        let job = try await harness.submit("old")
        // As if written by another version: a recipe row the current decoder rejects.
        let database = try DatabaseQueue(path: harness.directory.sub("jobs.sqlite").path)
        try await database.write { db in
            try db.execute(sql: "UPDATE job SET recipe = ? WHERE id = ?", arguments: [#"{"method": 7}"#, job.id])
        }
        try database.close()
        let task = Task { try await harness.scheduler.run() }
        defer { task.cancel() }
        _ = try await harness.scheduler.resume(watch: nil)
        #expect(try await eventually { try harness.job(job.id)?.state == .failed })
        let failed = try #require(try harness.job(job.id))
        #expect(failed.reason?.hasPrefix("job \(job.id): the stored recipe does not decode") == true)
        #expect(harness.records.contains("Job failed", "error", containing: "stored recipe"))
        #expect(harness.runner.runCount == 0)
    }
}

@Suite struct RejectTransitionTests {
    @Test func rejectFailsAQueuedJobForGoodWithoutAnAttempt() throws {
        let now = Date(timeIntervalSince1970: 1_000)
        var queued = JobRecord(
            id: "j",
            key: "k",
            watch: "w",
            inputPath: "/in/m",
            outbox: "/out",
            recipe: "r",
            priority: 0,
            createdAt: now
        )
        queued.waitingReason = "waiting for disk"
        let failed = try JobStateMachine.apply(.reject(reason: "too big"), to: queued, now: now)
        #expect(failed.state == .failed && failed.reason == "too big" && failed.retryable == false)
        #expect(failed.attempts == 0 && failed.waitingReason == nil && failed.finishedAt == now)
        #expect(throws: TransitionRefused.self) {
            try JobStateMachine.apply(.reject(reason: "x"), to: failed, now: now)
        }
    }
}
