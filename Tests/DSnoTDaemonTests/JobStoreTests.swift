// SPDX-License-Identifier: Apache-2.0
// The SQLite job store on a real file: dedupe by key, committed history, WAL, restart recovery.

import DSnoTControlProtocol
import DSnoTCore
import DSnoTDaemon
import DSnoTPipeline
import DSnoTTestSupport
import Foundation
import GRDB
import Testing

@Suite struct JobStoreTests {
    func record(_ id: String, key: String, at seconds: Double = 0) -> JobRecord {
        JobRecord(
            id: id,
            key: key,
            watch: "main",
            inputPath: "/in/\(id)",
            outbox: "/out",
            recipe: "wanda-u50",
            createdAt: Date(timeIntervalSince1970: 1_700_000_000 + seconds)
        )
    }

    @Test func insertDeduplicatesByKeyAndSurvivesReopen() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.sub("jobs.sqlite").path
        do {
            let store = try SQLiteJobStore(path: path)
            #expect(try store.journalMode() == "wal")
            // FULL (2): the WAL is fsynced at every commit, so an acknowledged `done` survives a power loss
            // (under WAL, NORMAL only syncs at checkpoints). dsnotctlTests' publish trace sees the fsync.
            #expect(try store.synchronousSetting() == 2)
            #expect(try store.insert(record("j-1", key: "k1"), recipe: PruneJobOptions.defaults).inserted)
            let second = try store.insert(record("j-2", key: "k1"), recipe: PruneJobOptions.defaults)
            #expect(!second.inserted && second.job.id == "j-1")
            #expect(try store.insert(record("j-3", key: "k2", at: 10), recipe: PruneJobOptions.defaults).inserted)
        }
        let reopened = try SQLiteJobStore(path: path)
        #expect(try reopened.jobs(state: nil, watch: nil, limit: nil).map(\.id) == ["j-3", "j-1"])
        #expect(try reopened.jobs(state: nil, watch: nil, limit: 1).map(\.id) == ["j-3"])
        #expect(try reopened.counts() == [.queued: 2])
        #expect(try reopened.recipe(jobID: "j-1") == PruneJobOptions.defaults)
    }

    /// The store keeps the canonical JSON; one that no longer decodes (an older version's, an edit) is a
    /// clear error naming the job and the key, never a crash.
    @Test func storedRecipeIsCanonicalAndAnUndecodableOneIsAClearError() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.sub("jobs.sqlite").path
        var options = PruneJobOptions.defaults
        options.recipe.calibration.path = "/c/calib.txt"
        options.recipe.calibration.seed = UInt64.max
        let store = try SQLiteJobStore(path: path)
        try store.insert(record("j-1", key: "k1"), recipe: options)
        try store.insert(record("j-2", key: "k2"), recipe: options)
        let queue = try DatabaseQueue(path: path)
        let stored = try queue.read { try String.fetchOne($0, sql: "SELECT recipe FROM job WHERE id = 'j-1'") }
        #expect(stored == options.canonicalJSON)
        #expect(try store.recipe(jobID: "j-1") == options)
        // A RecipeConfiguration row of an earlier version, and a recipe with a value out of range.
        try queue.write {
            try $0.execute(
                sql:
                    #"UPDATE job SET recipe = '{"compression":"fast","method":"wanda","nsamples":128,"sparsity":0.5}' WHERE id = 'j-1'"#
            )
            try $0.execute(sql: #"UPDATE job SET recipe = '{"calibration":{"sequences":0}}' WHERE id = 'j-2'"#)
        }
        for (job, key) in [("j-1", "unknown key 'compression'"), ("j-2", "calibration.sequences: expected > 0, got 0")]
        {
            do {
                _ = try store.recipe(jobID: job)
                Issue.record("decoded \(job)")
            } catch let error as JobStoreError {
                #expect("\(error)".hasPrefix("job \(job): the stored recipe does not decode: "), "\(error)")
                #expect("\(error)".contains(key), "\(error)")
            }
        }
        #expect(try store.recipe(jobID: "j-none") == nil)
    }

    @Test func transitionsAreRecordedInHistory() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try SQLiteJobStore(path: directory.sub("jobs.sqlite").path)
        let queued = try store.insert(record("j-1", key: "k"), recipe: PruneJobOptions.defaults).job
        let now = Date(timeIntervalSince1970: 1_700_000_100)
        let running = try JobStateMachine.apply(.start, to: queued, now: now)
        try store.update(running, from: queued, detail: nil)
        let progressed = try JobStateMachine.apply(.progress(.pruning, block: 1, blockCount: 2), to: running, now: now)
        try store.update(progressed, from: running, detail: nil)
        let failed = try JobStateMachine.apply(.fail(reason: "bad", retryable: false), to: progressed, now: now)
        try store.update(failed, from: progressed, detail: "bad")
        let history = try store.history(jobID: "j-1")
        #expect(history.map(\.to) == [.queued, .running, .failed])
        #expect(history.map(\.from) == [nil, .queued, .running])
        #expect(history.last?.detail == "bad")
        #expect(try store.job(id: "j-1")?.state == .failed)
        #expect(try store.jobs(state: .failed, watch: "main", limit: nil).count == 1)
        #expect(try store.jobs(state: .failed, watch: "other", limit: nil).isEmpty)
    }

    @Test func restartRequeuesInterruptedJobsAndRemovesOrphanedTempOutputs() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let configuration = testConfiguration(in: directory)
        let outbox = configuration.watches[0].outbox
        let store = try SQLiteJobStore(path: directory.sub("jobs.sqlite").path)
        var job = record("j-1", key: "k")
        job.outbox = outbox
        let queued = try store.insert(job, recipe: PruneJobOptions.defaults).job
        let running = try JobStateMachine.apply(.start, to: queued, now: Date())
        try store.update(running, from: queued, detail: nil)
        let orphan = URL(fileURLWithPath: outbox).appendingPathComponent(".dsnot-tmp-j-1")
        try FileManager.default.createDirectory(at: orphan, withIntermediateDirectories: true)
        let keep = URL(fileURLWithPath: outbox).appendingPathComponent("published-model")
        try FileManager.default.createDirectory(at: keep, withIntermediateDirectories: true)

        // A new process: a fresh store on the same file, and a scheduler recovering.
        let restarted = try SQLiteJobStore(path: directory.sub("jobs.sqlite").path)
        let scheduler = PruneScheduler(
            store: restarted,
            runner: ScriptedJobRunner(),
            settings: .init(configuration),
            events: EventHub(),
            logger: testLogger
        )
        let requeued = try await scheduler.recover()
        #expect(requeued.map(\.id) == ["j-1"])
        #expect(try restarted.job(id: "j-1")?.state == .queued)
        #expect(!FileManager.default.fileExists(atPath: orphan.path))
        #expect(FileManager.default.fileExists(atPath: keep.path))
        #expect(try restarted.history(jobID: "j-1").last?.detail == nil)
    }
}
