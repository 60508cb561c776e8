// SPDX-License-Identifier: Apache-2.0
// The job store, on both backends (SQLite on a real file, PostgreSQL on a real server): dedupe by key,
// committed history, restart recovery; SQLite's WAL settings.

import DSnoTControlProtocol
import DSnoTCore
import DSnoTDaemon
import DSnoTPipeline
import DSnoTTestSupport
import Foundation
import GRDB
import Testing

@Suite struct JobStoreTests {
    @Test(arguments: JobStoreBackend.allCases)
    func insertDeduplicatesByKeyAndSurvivesReopen(_ backend: JobStoreBackend) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fixture = try backend.fixture(in: directory)
        do {
            let store = try fixture.open()
            if let sqlite = store as? SQLiteJobStore {
                #expect(try sqlite.journalMode() == "wal")
                // FULL (2): the WAL is fsynced at every commit, so an acknowledged `done` survives a power
                // loss (under WAL, NORMAL only syncs at checkpoints). dsnotctlTests' publish trace sees it.
                #expect(try sqlite.synchronousSetting() == 2)
            }
            #expect(try store.insert(JobRecord.fixture("j-1", key: "k1"), recipe: PruneJobOptions.defaults).inserted)
            let second = try store.insert(JobRecord.fixture("j-2", key: "k1"), recipe: PruneJobOptions.defaults)
            #expect(!second.inserted && second.job.id == "j-1")
            #expect(
                try store.insert(JobRecord.fixture("j-3", key: "k2", at: 10), recipe: PruneJobOptions.defaults).inserted
            )
        }
        let reopened = try fixture.open()
        #expect(try reopened.jobs(state: nil, watch: nil, limit: nil).map(\.id) == ["j-3", "j-1"])
        #expect(try reopened.jobs(state: nil, watch: nil, limit: 1).map(\.id) == ["j-3"])
        #expect(try reopened.counts() == [.queued: 2])
        #expect(try reopened.recipe(jobID: "j-1") == PruneJobOptions.defaults)
    }

    /// The store keeps the canonical JSON; one that no longer decodes (an older version's, an edit) is a
    /// clear error naming the job and the key, never a crash.
    @Test(arguments: JobStoreBackend.allCases)
    func storedRecipeIsCanonicalAndAnUndecodableOneIsAClearError(_ backend: JobStoreBackend) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fixture = try backend.fixture(in: directory)
        var options = PruneJobOptions.defaults
        options.recipe.calibration.path = "/c/calib.txt"
        options.recipe.calibration.seed = UInt64.max
        let store = try fixture.open()
        _ = try store.insert(JobRecord.fixture("j-1", key: "k1"), recipe: options)
        _ = try store.insert(JobRecord.fixture("j-2", key: "k2"), recipe: options)
        // The stored text is the canonical JSON: a row whose recipe is anything else no longer matches.
        try fixture.raw(
            "UPDATE \(backend.jobTable) SET key = 'canonical' WHERE id = 'j-1' AND recipe = '\(options.canonicalJSON)'"
        )
        #expect(try store.job(key: "canonical")?.id == "j-1")
        #expect(try store.recipe(jobID: "j-1") == options)
        // A RecipeConfiguration row of an earlier version, and a recipe with a value out of range.
        try fixture.raw(
            #"UPDATE \#(backend.jobTable) SET recipe = '{"compression":"fast","method":"wanda","nsamples":128,"sparsity":0.5}' WHERE id = 'j-1'"#
        )
        try fixture.raw(#"UPDATE \#(backend.jobTable) SET recipe = '{"calibration":{"sequences":0}}' WHERE id = 'j-2'"#)
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

    @Test(arguments: JobStoreBackend.allCases)
    func transitionsAreRecordedInHistory(_ backend: JobStoreBackend) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let store = try backend.fixture(in: directory).open()
        let queued = try store.insert(JobRecord.fixture("j-1", key: "k"), recipe: PruneJobOptions.defaults).job
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

    @Test(arguments: JobStoreBackend.allCases)
    func restartRequeuesInterruptedJobsAndRemovesOrphanedTempOutputs(_ backend: JobStoreBackend) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fixture = try backend.fixture(in: directory)
        var configuration = testConfiguration(in: directory)
        if let postgresql = fixture.postgresql {
            configuration.jobStore = .postgresql
            configuration.postgresql = postgresql
        }
        let outbox = configuration.watches[0].outbox
        let store = try fixture.open()
        var job = JobRecord.fixture("j-1", key: "k")
        job.outbox = outbox
        let queued = try store.insert(job, recipe: PruneJobOptions.defaults).job
        let running = try JobStateMachine.apply(.start, to: queued, now: Date())
        try store.update(running, from: queued, detail: nil)
        let orphan = URL(fileURLWithPath: outbox).appendingPathComponent(".dsnot-tmp-j-1")
        try FileManager.default.createDirectory(at: orphan, withIntermediateDirectories: true)
        let keep = URL(fileURLWithPath: outbox).appendingPathComponent("published-model")
        try FileManager.default.createDirectory(at: keep, withIntermediateDirectories: true)

        // A new process: a fresh store on the same file, and a scheduler recovering.
        let restarted = try fixture.open()
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
