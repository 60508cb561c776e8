// SPDX-License-Identifier: Apache-2.0
// The scheduler over a real SQLite store and real directories: restarts do not use up retries, a crash
// between the rename and the `done` commit is finished at start, a taken name gets the job suffix,
// and failure reasons read as text.

import DSnoTControlProtocol
import DSnoTDaemon
import DSnoTTestSupport
import Foundation
import Testing

@Suite struct SchedulerRecoveryTests {
    typealias Harness = SchedulerTests.Harness

    /// What a process that died left: the job committed `running` (a start), never finished.
    static func startAsADeadProcessDid(_ job: JobRecord, in harness: Harness) throws -> JobRecord {
        let current = try #require(try harness.store.job(id: job.id))
        let started = try JobStateMachine.apply(.start, to: current, now: Date())
        try harness.store.update(started, from: current, detail: nil)
        return started
    }

    /// Four kill -9 restarts, then a real retryable failure: the job is retried, not failed for
    /// having used up its attempts.
    @Test func killedRestartsDoNotUseUpRetries() async throws {
        let runner = ScriptedJobRunner(blocks: 1, script: [.failRetryable("disk full"), .succeed])
        let harness = try Harness(runner: runner)
        defer { harness.directory.remove() }
        let job = try await harness.submit()
        for _ in 0..<4 {
            _ = try Self.startAsADeadProcessDid(job, in: harness)
            let requeued = try await harness.scheduler.recover()
            #expect(requeued.map(\.id) == [job.id] && requeued.first?.attempts == 0)
        }
        let task = Task { try await harness.scheduler.run() }
        defer { task.cancel() }
        #expect(try await eventually { try harness.state(job.id) == .done })
        let done = try #require(try harness.store.job(id: job.id))
        #expect(done.attempts == 2 && runner.runCount == 2, "\(done)")
    }

    /// A crafted crash between the rename and the commit: the job is `publishing` and its output,
    /// whose report names it, is already in place. Recovery finishes it as `done`, without a re-run.
    @Test func publishedOutputOfAPublishingJobIsFinishedAtStart() async throws {
        let runner = ScriptedJobRunner(blocks: 1)
        let harness = try Harness(runner: runner)
        defer { harness.directory.remove() }
        let job = try await harness.submit()
        let started = try Self.startAsADeadProcessDid(job, in: harness)
        let publishing = try JobStateMachine.apply(.publish, to: started, now: Date())
        try harness.store.update(publishing, from: started, detail: nil)
        // Another job's output holds the preferred name; this job's went to the suffixed one.
        let outbox = harness.directory.sub("out").path
        let other = outbox + "/m-wanda-u50-dsnot"
        let mine = other + "-\(job.id)"
        for (directory, id) in [(other, "j-other"), (mine, job.id)] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try Data(#"{"format_version": 1, "job": "\#(id)"}"#.utf8).write(
                to: URL(fileURLWithPath: directory + "/dsnot-report.json")
            )
        }
        #expect(try await harness.scheduler.recover().isEmpty)
        let done = try #require(try harness.store.job(id: job.id))
        #expect(done.state == .done && done.outputPath == mine && done.attempts == 1, "\(done)")
        #expect(try harness.store.history(jobID: job.id).last?.detail?.contains("found published at start") == true)
        let task = Task { try await harness.scheduler.run() }
        defer { task.cancel() }
        try await Task.sleep(for: .milliseconds(300))
        #expect(runner.runCount == 0)
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: outbox).sorted() == [
                "m-wanda-u50-dsnot", "m-wanda-u50-dsnot-\(job.id)",
            ]
        )
    }

    /// A `publishing` job whose rename never happened (its staging directory is still there, no output
    /// names it) goes back to the queue, its staging removed, and runs again.
    @Test func publishingJobWithoutAPublishedOutputRunsAgain() async throws {
        let runner = ScriptedJobRunner(blocks: 1)
        let harness = try Harness(runner: runner)
        defer { harness.directory.remove() }
        let job = try await harness.submit()
        let started = try Self.startAsADeadProcessDid(job, in: harness)
        let publishing = try JobStateMachine.apply(.publish, to: started, now: Date())
        try harness.store.update(publishing, from: started, detail: nil)
        let staging = harness.directory.sub("out/.dsnot-tmp-\(job.id)").path
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: staging + "/dsnot-report.json"))
        #expect(try await harness.scheduler.recover().map(\.id) == [job.id])
        #expect(!FileManager.default.fileExists(atPath: staging))
        let task = Task { try await harness.scheduler.run() }
        defer { task.cancel() }
        #expect(try await eventually { try harness.state(job.id) == .done })
        #expect(runner.runCount == 1)
        #expect(try harness.store.job(id: job.id)?.outputPath == harness.directory.sub("out/m-wanda-u50-dsnot").path)
    }

    /// A job interrupted with a resume point in its staging directory: with `resume` the directory is
    /// kept through start-up recovery (the job continues from it); without, it is removed as an orphan.
    /// Another job's staging directory without a point is removed either way.
    @Test(arguments: [true, false])
    func stagingWithAResumePointIsKeptOnlyWithResume(_ resume: Bool) async throws {
        let harness = try Harness(runner: ScriptedJobRunner(blocks: 1), resume: resume)
        defer { harness.directory.remove() }
        let job = try await harness.submit()
        _ = try Self.startAsADeadProcessDid(job, in: harness)
        let staging = harness.directory.sub("out/.dsnot-tmp-\(job.id)").path
        let stray = harness.directory.sub("out/.dsnot-tmp-j-gone").path
        for directory in [staging, stray] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        try Data("point".utf8).write(to: URL(fileURLWithPath: staging + "/.dsnot-resume-3.safetensors"))
        #expect(try await harness.scheduler.recover().map(\.id) == [job.id])
        #expect(FileManager.default.fileExists(atPath: staging) == resume)
        #expect(!FileManager.default.fileExists(atPath: stray))
    }

    /// Cancelling a queued job that holds a resume point removes its staging directory.
    @Test func cancellingAQueuedJobRemovesItsResumePoint() async throws {
        let harness = try Harness(runner: ScriptedJobRunner(blocks: 1))
        defer { harness.directory.remove() }
        let job = try await harness.submit()
        _ = try Self.startAsADeadProcessDid(job, in: harness)
        let staging = harness.directory.sub("out/.dsnot-tmp-\(job.id)").path
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        try Data("point".utf8).write(to: URL(fileURLWithPath: staging + "/.dsnot-resume-3.safetensors"))
        _ = try await harness.scheduler.recover()
        #expect(FileManager.default.fileExists(atPath: staging))
        #expect(try await harness.scheduler.cancel(id: job.id).state == .cancelled)
        #expect(!FileManager.default.fileExists(atPath: staging))
    }

    /// The preferred name is taken by something else: the output is published under `-<job>`, and
    /// what held the name is left as it was.
    @Test func takenNameGetsTheJobSuffixAndIsNotReplaced() async throws {
        let harness = try Harness(runner: ScriptedJobRunner(blocks: 1))
        defer { harness.directory.remove() }
        let taken = harness.directory.sub("out/m-wanda-u50-dsnot").path
        try FileManager.default.createDirectory(atPath: taken, withIntermediateDirectories: true)
        let task = Task { try await harness.scheduler.run() }
        defer { task.cancel() }
        let job = try await harness.submit()
        #expect(try await eventually { try harness.state(job.id) == .done })
        let output = try #require(try harness.store.job(id: job.id)?.outputPath)
        #expect(output == taken + "-\(job.id)")
        #expect(FileManager.default.fileExists(atPath: output + "/config.json"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: taken).isEmpty)
    }

    /// A runner error that is not a `JobFailure` is classified by the same classifier: its reason
    /// reads as text.
    @Test func foundationErrorFromARunnerIsStoredAsReadableText() async throws {
        let error = NSError(
            domain: NSCocoaErrorDomain,
            code: CocoaError.fileWriteUnknown.rawValue,
            userInfo: [
                NSFilePathErrorKey: "/out/x", NSUnderlyingErrorKey: NSError(domain: NSPOSIXErrorDomain, code: 13),
            ]
        )
        let harness = try Harness(runner: ScriptedJobRunner(blocks: 1, script: [.throwError(error)]))
        defer { harness.directory.remove() }
        let task = Task { try await harness.scheduler.run() }
        defer { task.cancel() }
        let job = try await harness.submit()
        #expect(try await eventually { try harness.state(job.id) == .failed })
        let failed = try #require(try harness.store.job(id: job.id))
        #expect(failed.reason == "/out/x: Permission denied" && failed.retryable == false, "\(failed)")
    }
}
