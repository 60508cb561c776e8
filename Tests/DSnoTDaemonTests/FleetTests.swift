// SPDX-License-Identifier: Apache-2.0
// Nodes sharing one PostgreSQL job store (a real server): claims race-free, leases expire and are taken
// over counting an attempt, a node that lost its lease never publishes, bad stores are clear errors.

import DSnoTControlProtocol
import DSnoTDaemon
import DSnoTPipeline
import DSnoTSupport
import DSnoTTestSupport
import Foundation
import Testing

@Suite struct FleetTests {
    /// Two nodes (two connections) try to claim every one of 20 queued jobs at once, in opposite
    /// orders: each job is claimed exactly once, and its row names the node that claimed it.
    @Test func twoClaimersRacingForTwentyJobsClaimEachExactlyOnce() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fixture = try JobStoreBackend.postgresql.fixture(in: directory)
        let setup = try fixture.open()
        let ids = (0..<20).map { "j-\($0)" }
        for id in ids { _ = try setup.insert(JobRecord.fixture(id, key: "k-\(id)"), recipe: .defaults) }
        let (first, second) = (try fixture.open(), try fixture.open())
        @Sendable func claimAll(_ store: any JobStore, node: String, order: [String]) throws -> [String] {
            try order.compactMap { id in
                try store.claim(jobID: id, node: node, lease: 30) {
                    try JobStateMachine.apply(.start, to: $0, now: Date())
                }?.id
            }
        }
        async let claimedByA = offPool { try claimAll(first, node: "a", order: ids) }
        async let claimedByB = offPool { try claimAll(second, node: "b", order: ids.reversed()) }
        let (a, b) = try await (claimedByA, claimedByB)
        #expect(Set(a).isDisjoint(with: b), "claimed twice: \(Set(a).intersection(b))")
        #expect(Set(a).union(b) == Set(ids))
        #expect(a.count + b.count == 20)
        for id in ids {
            let job = try #require(try setup.job(id: id))
            #expect(job.state == .running && job.attempts == 1)
            #expect(job.node == (a.contains(id) ? "a" : "b"))
            #expect(try setup.history(jobID: id).map(\.to) == [.queued, .running])
        }
    }

    /// Claim latency with 200 jobs queued and two nodes claiming at once (issue 15's `make bench` aim,
    /// measured here on the test cluster: the figure is printed; the bound only catches a claim that
    /// scans or waits, at 50x the sub-10 ms a claim takes on a socket).
    @Test func claimLatencyWithTwoHundredQueuedJobs() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fixture = try JobStoreBackend.postgresql.fixture(in: directory)
        let setup = try fixture.open()
        let ids = (0..<200).map { String(format: "j-%03d", $0) }
        for id in ids { _ = try setup.insert(JobRecord.fixture(id, key: "k-\(id)"), recipe: .defaults) }
        let (first, second) = (try fixture.open(), try fixture.open())
        @Sendable func timedClaims(_ store: any JobStore, node: String, order: [String]) throws -> [Double] {
            try order.map { id in
                let start = ContinuousClock.now
                _ = try store.claim(jobID: id, node: node, lease: 30) {
                    try JobStateMachine.apply(.start, to: $0, now: Date())
                }
                return (ContinuousClock.now - start).inSeconds
            }
        }
        async let fromA = offPool { try timedClaims(first, node: "a", order: ids) }
        async let fromB = offPool { try timedClaims(second, node: "b", order: ids.reversed()) }
        let latencies = try await (fromA + fromB).sorted()
        let p99 = latencies[Int(Double(latencies.count - 1) * 0.99)]
        let median = latencies[latencies.count / 2]
        print(
            "fleet claim latency (400 claims of 200 queued jobs, 2 nodes): median \(median * 1000) ms, p99 \(p99 * 1000) ms"
        )
        #expect(try setup.counts() == [.running: 200])
        #expect(p99 < 0.5, "p99 \(p99) s")
    }

    /// Two nodes that see the same checkpoint at once create one job: the unique key decides, the
    /// loser gets the winner's job.
    @Test func racingInsertsOfOneKeyCreateOneJob() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fixture = try JobStoreBackend.postgresql.fixture(in: directory)
        let (first, second) = (try fixture.open(), try fixture.open())
        let keys = (0..<20).map { "k-\($0)" }
        @Sendable func insertAll(_ store: any JobStore, prefix: String) throws -> [(String, Bool)] {
            try keys.map { key in
                let result = try store.insert(JobRecord.fixture("\(prefix)-\(key)", key: key), recipe: .defaults)
                return (result.job.id, result.inserted)
            }
        }
        async let fromA = offPool { try insertAll(first, prefix: "a") }
        async let fromB = offPool { try insertAll(second, prefix: "b") }
        let (a, b) = try await (fromA, fromB)
        #expect(try first.jobs(state: nil, watch: nil, limit: nil).count == 20)
        for index in keys.indices {
            #expect(a[index].1 != b[index].1, "key \(keys[index]) inserted by both or neither")
            #expect(a[index].0 == b[index].0, "key \(keys[index]) has two jobs")
        }
    }

    /// A scheduler of node `node` on `store`, leases of `lease` seconds taken over `settle` seconds
    /// after they expire, retry back-off 0.1 s.
    func scheduler(
        _ store: any JobStore,
        node: String,
        lease: Double,
        settle: Double,
        runner: ScriptedJobRunner,
        directory: TemporaryDirectory,
        metrics: DaemonMetrics? = nil
    ) throws -> PruneScheduler {
        var configuration = testConfiguration(in: directory)
        configuration.nodeName = node
        configuration.jobStore = .postgresql
        var postgresql = PostgreSQLConfiguration(url: try PostgreSQLURL(parsing: "postgresql://u@/d?host=/unused"))
        postgresql.leaseSeconds = lease
        postgresql.settleSeconds = settle
        configuration.postgresql = postgresql
        var settings = PruneScheduler.Settings(configuration, retryPolicy: RetryPolicy(baseDelay: 0.1))
        settings.shutdownTimeout = 10
        return PruneScheduler(
            store: store,
            runner: runner,
            settings: settings,
            events: EventHub(),
            metrics: metrics,
            logger: testLogger
        )
    }

    /// Queues one tiny checkpoint through `scheduler` (the watcher's path).
    func submit(_ scheduler: PruneScheduler, directory: TemporaryDirectory) async throws -> JobRecord {
        let checkpoint = try CheckpointFixture.write(to: directory.sub("in/m"))
        return try await scheduler.enqueue(
            inputPath: checkpoint.path,
            fingerprint: try CheckpointInspector.fingerprint(checkpoint),
            watch: "main",
            outbox: directory.sub("out").path,
            recipe: .defaults,
            priority: 0
        ).job
    }

    /// Node `a` claims a job and dies (it never renews); node `b` leaves it alone while the lease and
    /// the settle period last, then takes it back (an attempt counted), runs and publishes it once.
    @Test func expiredLeaseIsTakenOverAfterTheSettlePeriodCountingAnAttempt() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fixture = try JobStoreBackend.postgresql.fixture(in: directory)
        let store = try fixture.open()
        let nodeB = try scheduler(
            try fixture.open(),
            node: "b",
            lease: 1,
            settle: 1,
            runner: ScriptedJobRunner(blocks: 2),
            directory: directory
        )
        // Queued through b, paused so that node a (the store, by hand) claims it first.
        _ = try await nodeB.pause(watch: nil)
        let job = try await submit(nodeB, directory: directory)
        let claimedAt = Date()
        let claimed = try #require(
            try store.claim(jobID: job.id, node: "a", lease: 1) {
                try JobStateMachine.apply(.start, to: $0, now: Date())
            }
        )
        #expect(claimed.node == "a" && claimed.attempts == 1)
        // Node a's staging directory in the shared outbox: the takeover removes it.
        let staleStaging = directory.sub("out/.dsnot-tmp-\(job.id).a").path
        try FileManager.default.createDirectory(atPath: staleStaging, withIntermediateDirectories: true)
        let task = Task { try await nodeB.run() }
        defer { task.cancel() }
        _ = try await nodeB.resume(watch: nil)
        // Within lease (1 s) + settle (1 s) the job stays a's.
        try await Task.sleep(for: .milliseconds(1200))
        if Date().timeIntervalSince(claimedAt) < 1.9 {
            #expect(try store.job(id: job.id)?.node == "a")
            #expect(try store.job(id: job.id)?.state == .running)
        }
        #expect(try await eventually(timeout: 20) { try store.job(id: job.id)?.state == .done })
        let done = try #require(try store.job(id: job.id))
        #expect(done.node == "b")
        #expect(done.attempts == 2)
        #expect(Date().timeIntervalSince(claimedAt) >= 2, "taken over before lease + settle")
        let history = try store.history(jobID: job.id)
        #expect(history.map(\.to) == [.queued, .running, .queued, .running, .publishing, .done])
        #expect(history[2].detail?.contains("lease expired: node a") == true, "\(history[2])")
        #expect(!FileManager.default.fileExists(atPath: staleStaging))
        let outputs = try FileManager.default.contentsOfDirectory(atPath: directory.sub("out").path)
        #expect(outputs == ["m-wanda-u50-dsnot"])
    }

    /// Node a runs a job; meanwhile its lease is found expired and node b takes the job over and
    /// publishes it. When a's run ends it must not publish: its output is discarded, b's stays alone.
    @Test func aNodeThatLostItsLeaseDoesNotPublish() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fixture = try JobStoreBackend.postgresql.fixture(in: directory)
        let store = try fixture.open()
        let slowRunner = ScriptedJobRunner(blocks: 60, blockDelay: 0.05)
        let metricsA = DaemonMetrics()
        let nodeA = try scheduler(
            try fixture.open(),
            node: "a",
            lease: 60,
            settle: 30,
            runner: slowRunner,
            directory: directory,
            metrics: metricsA
        )
        let taskA = Task { try await nodeA.run() }
        defer { taskA.cancel() }
        let job = try await submit(nodeA, directory: directory)
        #expect(
            try await eventually { try store.job(id: job.id)?.node == "a" && store.job(id: job.id)?.state == .running }
        )
        // a takes no new job (it would race b for the re-queued one); its run goes on.
        _ = try await nodeA.pause(watch: nil)
        // a's lease ends early (its node looks dead to the others) and b takes the job over.
        try fixture.raw("UPDATE dsnot_job SET lease_until = now() - interval '1 hour' WHERE id = '\(job.id)'")
        let nodeB = try scheduler(
            try fixture.open(),
            node: "b",
            lease: 60,
            settle: 0,
            runner: ScriptedJobRunner(blocks: 1),
            directory: directory
        )
        let taskB = Task { try await nodeB.run() }
        defer { taskB.cancel() }
        #expect(try await eventually(timeout: 20) { try store.job(id: job.id)?.state == .done })
        let trace = "\(try store.history(jobID: job.id)) \(String(describing: try store.job(id: job.id)))"
        #expect(try store.job(id: job.id)?.node == "b", "\(trace)")
        // a's run ends (60 blocks of 50 ms) and finds the job is not its own any more.
        #expect(try await eventually(timeout: 20) { try await nodeA.snapshot().running.isEmpty })
        #expect(slowRunner.runCount == 1)
        let outputs = try FileManager.default.contentsOfDirectory(atPath: directory.sub("out").path)
        #expect(outputs == ["m-wanda-u50-dsnot"], "a published or left its staging directory")
        let done = try #require(try store.job(id: job.id))
        #expect(done.state == .done && done.node == "b" && done.attempts == 2)
        #expect(String(decoding: metricsA.render(counts: nil), as: UTF8.self).contains("dsnot_lease_losses_total 1"))
    }

    /// A job cancelled from another node while it runs here: the next lease renewal sees it, the run
    /// stops at a block boundary, nothing is published and the staging directory is removed.
    @Test func aLeaseRenewalThatFailsStopsTheRun() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fixture = try JobStoreBackend.postgresql.fixture(in: directory)
        let store = try fixture.open()
        let runner = ScriptedJobRunner(blocks: 400, blockDelay: 0.05)
        let metrics = DaemonMetrics()
        let nodeA = try scheduler(
            try fixture.open(),
            node: "a",
            lease: 1.5,
            settle: 30,
            runner: runner,
            directory: directory,
            metrics: metrics
        )
        let task = Task { try await nodeA.run() }
        defer { task.cancel() }
        let job = try await submit(nodeA, directory: directory)
        #expect(try await eventually { try store.job(id: job.id)?.block ?? 0 >= 1 })
        let running = try #require(try store.job(id: job.id))
        let cancelled = try JobStateMachine.apply(.cancel(reason: "cancelled on node b"), to: running, now: Date())
        try store.update(cancelled, from: running, detail: nil)
        #expect(try await eventually(timeout: 10) { try await nodeA.snapshot().running.isEmpty })
        let text = String(decoding: metrics.render(counts: nil), as: UTF8.self)
        #expect(text.contains("dsnot_lease_losses_total 1"), "\(text)")
        #expect(try store.job(id: job.id)?.state == .cancelled)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.sub("out").path).isEmpty)
        #expect(try store.history(jobID: job.id).map(\.to) == [.queued, .running, .cancelled])
    }

    /// The server restarts while a job runs: the calls made while it is down fail (logged, the run
    /// goes on), the store reconnects at the next call, and the job finishes once, published once.
    @Test func aServerRestartMidJobIsRidden() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let cluster = try PostgreSQLCluster.start()
        var current = cluster
        defer { try? current.stop() }
        let postgresql = PostgreSQLConfiguration(
            url: try PostgreSQLURL(parsing: cluster.url(database: try cluster.createDatabase())),
            passwordFile: try cluster.passwordFile(in: directory.path)
        )
        let store = try PostgreSQLJobStore(configuration: postgresql, logger: testLogger)
        let node = try scheduler(
            try PostgreSQLJobStore(configuration: postgresql, logger: testLogger),
            node: "a",
            lease: 30,
            settle: 30,
            runner: ScriptedJobRunner(blocks: 40, blockDelay: 0.05),
            directory: directory
        )
        let task = Task { try await node.run() }
        defer { task.cancel() }
        let job = try await submit(node, directory: directory)
        #expect(try await eventually { try store.job(id: job.id)?.block ?? 0 >= 2 })
        cluster.stopServer()
        do {
            _ = try store.job(id: job.id)
            Issue.record("the store answered with its server down")
        } catch {
            #expect("\(error)".hasPrefix("job database job(id:) failed: "), "\(error)")
        }
        try await Task.sleep(for: .milliseconds(500))
        current = try cluster.restarted()
        #expect(try await eventually(timeout: 20) { try store.job(id: job.id)?.state == .done })
        let done = try #require(try store.job(id: job.id))
        #expect(done.attempts == 1 && done.node == "a")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.sub("out").path) == ["m-wanda-u50-dsnot"])
    }

    /// A server nobody listens on, a wrong password, a schema from a newer dsnotd: each a clear error
    /// naming the database and the reason.
    @Test func unreachableWrongPasswordAndNewerSchemaAreClearErrors() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let good = try JobStoreBackend.postgresqlConfiguration(in: directory)
        func openError(_ configuration: PostgreSQLConfiguration) -> String {
            do {
                _ = try PostgreSQLJobStore(configuration: configuration, logger: testLogger)
                return "opened"
            } catch { return "\(error)" }
        }
        var nowhere = good
        nowhere.url = try PostgreSQLURL(parsing: "postgresql://dsnot@/db?host=\(directory.path)/none")
        let unreachable = openError(nowhere)
        #expect(
            unreachable.hasPrefix("cannot open job database postgresql://dsnot@/db?host=\(directory.path)/none"),
            "\(unreachable)"
        )
        #expect(unreachable.contains("connectionError") || unreachable.contains("No such file"), "\(unreachable)")

        var wrong = good
        let badPassword = directory.file("bad-password")
        try Data("not-it\n".utf8).write(to: URL(fileURLWithPath: badPassword))
        wrong.passwordFile = badPassword
        let refused = openError(wrong)
        #expect(refused.contains("password authentication failed for user \"dsnot\""), "\(refused)")
        #expect(!refused.contains("not-it"), "the password leaks into the error: \(refused)")

        var missing = good
        missing.passwordFile = directory.file("no-such-file")
        #expect(openError(missing).contains("cannot read password_file \(directory.file("no-such-file"))"))

        // Open once (migrates to the binary's version), then a newer dsnotd's migration.
        #expect(openError(good) == "opened")
        let store = try PostgreSQLJobStore(configuration: good, logger: testLogger)
        try store.execute("INSERT INTO dsnot_schema (version) VALUES (\(PostgreSQLJobStore.schemaVersion + 1))")
        let tooNew = openError(good)
        #expect(
            tooNew.contains(
                "has schema version \(PostgreSQLJobStore.schemaVersion + 1), newer than this dsnotd supports (\(PostgreSQLJobStore.schemaVersion))"
            ),
            "\(tooNew)"
        )
    }

    /// Starting twice migrates once: the second start finds the schema current and keeps the data.
    @Test func migrationsAreVersionedAndAppliedOnce() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fixture = try JobStoreBackend.postgresql.fixture(in: directory)
        _ = try fixture.open().insert(JobRecord.fixture("j-1", key: "k"), recipe: .defaults)
        let reopened = try fixture.open()
        #expect(try reopened.job(id: "j-1")?.key == "k")
        let cluster = try PostgreSQLCluster.shared.get()
        let database = try #require(fixture.postgresql?.url.database)
        #expect(try cluster.sql("SELECT string_agg(version::text, ',') FROM dsnot_schema", database: database) == "1")
    }
}
