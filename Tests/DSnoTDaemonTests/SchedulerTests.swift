// SPDX-License-Identifier: Apache-2.0
// The scheduler with a scripted runner: publish, cancel at a block boundary, retry, resource waits, shutdown.

import DSnoTControlProtocol
import DSnoTCore
import DSnoTDaemon
import DSnoTPipeline
import DSnoTTestSupport
import Foundation
import ServiceLifecycle
import ServiceLifecycleTestKit
import Testing

@Suite struct SchedulerTests {
    struct Harness {
        let directory: TemporaryDirectory
        let store: SQLiteJobStore
        let scheduler: PruneScheduler
        let events: EventHub
        let runner: ScriptedJobRunner

        init(
            runner: ScriptedJobRunner,
            freeDisk: Int = Int.max,
            diskTotal: Int = Int.max,
            memoryBudget: Int = 1 << 30,
            resume: Bool = true
        ) throws {
            directory = try TemporaryDirectory()
            var configuration = testConfiguration(in: directory)
            configuration.memoryBudget = memoryBudget
            store = try SQLiteJobStore(path: directory.sub("jobs.sqlite").path)
            events = EventHub()
            self.runner = runner
            var settings = PruneScheduler.Settings(configuration, retryPolicy: RetryPolicy(baseDelay: 0.2))
            settings.shutdownTimeout = 10
            settings.resume = resume
            scheduler = PruneScheduler(
                store: store,
                runner: runner,
                settings: settings,
                events: events,
                logger: testLogger,
                diskSpace: { _ in DiskSpace(free: freeDisk, total: diskTotal) }
            )
        }

        func submit(_ name: String = "m") async throws -> JobRecord {
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

        func state(_ id: String) throws -> JobState? { try store.job(id: id)?.state }
    }

    @Test func jobRunsAndIsPublishedAtomically() async throws {
        let harness = try Harness(runner: ScriptedJobRunner(blocks: 3))
        defer { harness.directory.remove() }
        let events = harness.events.subscribe()
        let task = Task { try await harness.scheduler.run() }
        defer { task.cancel() }
        let job = try await harness.submit()
        #expect(try await eventually { try harness.state(job.id) == .done })
        let done = try #require(try harness.store.job(id: job.id))
        let output = try #require(done.outputPath)
        #expect(output == harness.directory.sub("out/m-wanda-u50-dsnot").path)
        #expect(FileManager.default.fileExists(atPath: output + "/config.json"))
        #expect(!FileManager.default.fileExists(atPath: harness.directory.sub("out/.dsnot-tmp-\(job.id)").path))
        #expect(try harness.store.history(jobID: job.id).map(\.to) == [.queued, .running, .publishing, .done])
        // The event stream saw every block of the run.
        var blocks: [Int] = []
        for await event in events {
            if event.kind == "progress", event.job.phase == .pruning, let block = event.job.block {
                blocks.append(block)
            }
            if event.job.state == .done { break }
        }
        #expect(blocks == [1, 2, 3])
    }

    @Test func cancelStopsARunningJobAtTheNextBlockBoundary() async throws {
        let harness = try Harness(runner: ScriptedJobRunner(blocks: 200, blockDelay: 0.02))
        defer { harness.directory.remove() }
        let task = Task { try await harness.scheduler.run() }
        defer { task.cancel() }
        let job = try await harness.submit()
        #expect(try await eventually { (try harness.store.job(id: job.id)?.block ?? 0) >= 2 })
        _ = try await harness.scheduler.cancel(id: job.id)
        #expect(try await eventually(timeout: 5) { try harness.state(job.id) == .cancelled })
        let cancelled = try #require(try harness.store.job(id: job.id))
        #expect((cancelled.block ?? 0) < 200)
        #expect(!FileManager.default.fileExists(atPath: harness.directory.sub("out/.dsnot-tmp-\(job.id)").path))
        // A cancelled job can be retried and then completes.
        _ = try await harness.scheduler.retry(id: job.id)
        #expect(try harness.state(job.id) == .queued || harness.state(job.id) == .running)
    }

    @Test func retryableFailureIsRetriedAfterBackoffPermanentIsNot() async throws {
        let runner = ScriptedJobRunner(
            blocks: 1,
            script: [.failRetryable("disk full"), .succeed, .failPermanent("bad")]
        )
        let harness = try Harness(runner: runner)
        defer { harness.directory.remove() }
        let task = Task { try await harness.scheduler.run() }
        defer { task.cancel() }
        let first = try await harness.submit("a")
        #expect(try await eventually { try harness.state(first.id) == .done })
        #expect(try harness.store.job(id: first.id)?.attempts == 2)
        let second = try await harness.submit("b")
        #expect(try await eventually { try harness.state(second.id) == .failed })
        let failed = try #require(try harness.store.job(id: second.id))
        #expect(failed.retryable == false && failed.reason == "bad" && failed.attempts == 1)
    }

    @Test func jobWaitsForDiskInsteadOfFailing() async throws {
        let runner = ScriptedJobRunner(estimate: ResourceEstimate(memoryBytes: 1, outputBytes: 10 << 30))
        let harness = try Harness(runner: runner, freeDisk: 1 << 30)
        defer { harness.directory.remove() }
        let task = Task { try await harness.scheduler.run() }
        defer { task.cancel() }
        let job = try await harness.submit()
        #expect(
            try await eventually {
                try harness.store.job(id: job.id)?.waitingReason?.hasPrefix("waiting for disk") == true
            }
        )
        #expect(try harness.state(job.id) == .queued)
        #expect(runner.runCount == 0)
        let snapshot = try await harness.scheduler.snapshot()
        #expect(snapshot.waitingReason?.hasPrefix("waiting for disk") == true)
    }

    @Test func pausedQueueStartsNothingUntilResumed() async throws {
        let harness = try Harness(runner: ScriptedJobRunner(blocks: 1))
        defer { harness.directory.remove() }
        _ = try await harness.scheduler.pause(watch: nil)
        let task = Task { try await harness.scheduler.run() }
        defer { task.cancel() }
        let job = try await harness.submit()
        try await Task.sleep(for: .milliseconds(300))
        #expect(try harness.state(job.id) == .queued)
        _ = try await harness.scheduler.resume(watch: nil)
        #expect(try await eventually { try harness.state(job.id) == .done })
        await #expect(throws: ControlError.self) { try await harness.scheduler.pause(watch: "nope") }
    }

    @Test func gracefulShutdownRequeuesTheRunningJob() async throws {
        let harness = try Harness(runner: ScriptedJobRunner(blocks: 1000, blockDelay: 0.01))
        defer { harness.directory.remove() }
        let job = try await harness.submit()
        try await testGracefulShutdown { trigger in
            let task = Task { try await harness.scheduler.run() }
            #expect(try await eventually { (try harness.store.job(id: job.id)?.block ?? 0) >= 1 })
            let started = Date()
            trigger.triggerGracefulShutdown()
            try await task.value
            // Stopped at a block boundary (10 ms blocks), far sooner than the job's 10 s.
            #expect(Date().timeIntervalSince(started) < 3)
        }
        let requeued = try #require(try harness.store.job(id: job.id))
        #expect(requeued.state == .queued && requeued.waitingReason == "interrupted: daemon stopping")
        #expect(!FileManager.default.fileExists(atPath: harness.directory.sub("out/.dsnot-tmp-\(job.id)").path))
    }
}
