// SPDX-License-Identifier: Apache-2.0
// Jobs queued within one second run oldest first, ties in queue order: real SQLite store, real scheduler.

import DSnoTControlProtocol
import DSnoTDaemon
import DSnoTPipeline
import DSnoTTestSupport
import Foundation
import Synchronization
import Testing

@Suite struct SchedulerOrderTests {
    /// A clock the test sets; `nil` reads the real one.
    final class TestClock: Sendable {
        private let fixed = Mutex<Date?>(nil)
        var now: Date { fixed.withLock { $0 } ?? Date() }
        func set(_ date: Date?) { fixed.withLock { $0 = date } }
    }

    /// Records the order in which jobs start (one worker: the order they run in).
    final class RecordingRunner: JobRunner {
        let inner = ScriptedJobRunner(blocks: 1, blockDelay: 0)
        let started = Mutex<[String]>([])

        func estimate(_ job: JobSpec) throws -> ResourceEstimate { try inner.estimate(job) }

        func run(_ job: JobSpec, progress: @Sendable (JobProgress) -> Void, isCancelled: @Sendable () -> Bool) throws
            -> JobOutcome
        {
            started.withLock { $0.append(job.id) }
            return try inner.run(job, progress: progress, isCancelled: isCancelled)
        }
    }

    /// How the five jobs get their creation times.
    enum Timing: String, CaseIterable, CustomTestStringConvertible {
        /// The real clock, all five within one second.
        case realClock
        /// One instant for all five: the tie goes to queue (insertion) order.
        case sameInstant
        /// 0.9 s, 0.7 s, … 0.1 s into one second: queued newest first, so they run in reverse.
        case descendingWithinASecond

        var testDescription: String { rawValue }
    }

    @Test(arguments: Timing.allCases)
    func jobsQueuedWithinOneSecondRunOldestFirstThenInQueueOrder(timing: Timing) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteJobStore(path: directory.sub("jobs.sqlite").path)
        let runner = RecordingRunner()
        let clock = TestClock()
        var settings = PruneScheduler.Settings(testConfiguration(in: directory))
        settings.workers = 1
        let scheduler = PruneScheduler(
            store: store,
            runner: runner,
            settings: settings,
            events: EventHub(),
            logger: testLogger,
            now: { clock.now },
            diskSpace: { _ in DiskSpace(free: Int.max, total: Int.max) }
        )
        _ = try await scheduler.pause(watch: nil)
        let task = Task { try await scheduler.run() }
        defer { task.cancel() }

        let checkpoints = try (0..<5).map { try CheckpointFixture.write(to: directory.sub("in/m\($0)")) }
        let second = (Date().timeIntervalSince1970 + 2).rounded(.down)
        if timing == .realClock {
            // Start early in a second so the five enqueues (milliseconds) stay inside it.
            try await Task.sleep(for: .seconds(second - Date().timeIntervalSince1970))
        }
        var queued: [JobRecord] = []
        for (n, checkpoint) in checkpoints.enumerated() {
            switch timing {
            case .realClock: clock.set(nil)
            case .sameInstant: clock.set(Date(timeIntervalSince1970: second + 0.5))
            case .descendingWithinASecond: clock.set(Date(timeIntervalSince1970: second + 0.9 - 0.2 * Double(n)))
            }
            queued.append(
                try await scheduler.enqueue(
                    inputPath: checkpoint.path,
                    fingerprint: try CheckpointInspector.fingerprint(checkpoint),
                    watch: "main",
                    outbox: directory.sub("out").path,
                    recipe: PruneJobOptions.defaults,
                    priority: 0
                ).job
            )
        }
        clock.set(nil)
        let stored = try queued.map { try #require(try store.job(id: $0.id)) }
        #expect(Set(stored.map { Int($0.createdAt.timeIntervalSince1970) }).count == 1, "one second: \(stored)")
        // The store keeps sub-second creation times (to the microsecond; a REAL of seconds since 1970).
        for (read, written) in zip(stored, queued) {
            #expect(
                abs(read.createdAt.timeIntervalSince(written.createdAt)) < 1e-6,
                "\(read.createdAt) \(written.createdAt)"
            )
        }

        _ = try await scheduler.resume(watch: nil)
        #expect(try await eventually { try queued.allSatisfy { try store.job(id: $0.id)?.state == .done } })
        let expected = timing == .descendingWithinASecond ? queued.reversed().map(\.id) : queued.map(\.id)
        #expect(runner.started.withLock { $0 } == expected)
    }
}
