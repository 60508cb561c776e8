// SPDX-License-Identifier: Apache-2.0
// Two real dsnotd processes on one PostgreSQL job store and one shared inbox: every checkpoint pruned
// exactly once with the work split between them, and a node killed with -9 mid-job taken over.

import DSnoTControlProtocol
import DSnoTTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.serialized) struct FleetEndToEndTests {
    /// The configuration of one fleet node on `database`: leases of 2 s taken over 1 s after they end,
    /// and one watch `recipe` from `inbox` to `outbox` (absolute paths shared by the nodes).
    static func fleetConfiguration(
        node: String,
        database: String,
        passwordFile: String,
        inbox: String,
        outbox: String,
        recipe: String
    ) throws -> String {
        let cluster = try PostgreSQLCluster.shared.get()
        return """
            job_store = "postgresql"
            node_name = "\(node)"
            retry_delay = 0.5
            [postgresql]
            url = "\(cluster.url(database: database))"
            password_file = "\(passwordFile)"
            lease = 2
            lease_settle = 1
            [[watch]]
            name = "main"
            inbox = "\(inbox)"
            outbox = "\(outbox)"
            [watch.recipe]
            \(recipe)

            """
    }

    /// Two nodes `a` and `b` on a fresh database; `a`'s root holds the shared inbox and outbox.
    static func twoNodes(recipe: String) throws -> (a: DaemonUnderTest, b: DaemonUnderTest, shared: String) {
        let cluster = try PostgreSQLCluster.shared.get()
        let database = try cluster.createDatabase()
        let shared = try TemporaryDirectory("dsnot-fleet").path
        for name in ["in", "out"] {
            try FileManager.default.createDirectory(atPath: shared + "/" + name, withIntermediateDirectories: true)
        }
        let passwordFile = try cluster.passwordFile(in: shared)
        func node(_ name: String) throws -> DaemonUnderTest {
            try DaemonUnderTest(
                watches: try fleetConfiguration(
                    node: name,
                    database: database,
                    passwordFile: passwordFile,
                    inbox: shared + "/in",
                    outbox: shared + "/out",
                    recipe: recipe
                ),
                rescanInterval: 1
            )
        }
        return (try node("a"), try node("b"), shared)
    }

    @Test func twoDaemonsShareTwentyCheckpointsAndPruneEachExactlyOnce() throws {
        let (a, b, shared) = try Self.twoNodes(recipe: "method = \"magnitude\"\npattern = \"2:4\"\ndsnot = false")
        defer {
            a.stop()
            b.stop()
            try? FileManager.default.removeItem(atPath: shared)
        }
        let names = (0..<20).map { String(format: "f%02d", $0) }
        let staging = shared + "/staging"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        for name in names {
            try FileManager.default.copyItem(atPath: PipelineEndToEndTests.model, toPath: staging + "/" + name)
        }
        for name in names {
            try FileManager.default.moveItem(atPath: staging + "/" + name, toPath: shared + "/in/" + name)
        }
        #expect(a.waitForDone(20, timeout: 180), "\(a.log.suffix(1500))\n\(b.log.suffix(1500))")
        // Either node lists the whole fleet's jobs: one per checkpoint, each run once.
        let jobs = try b.jobs()
        #expect(jobs.count == 20)
        #expect(Set(jobs.map(\.inputPath)) == Set(names.map { shared + "/in/" + $0 }))
        #expect(jobs.allSatisfy { $0.state == .done && $0.attempts == 1 })
        let byNode = Dictionary(grouping: jobs, by: { $0.node ?? "none" }).mapValues(\.count)
        #expect(Set(byNode.keys) == ["a", "b"], "work not split: \(byNode)")
        let outputs = try FileManager.default.contentsOfDirectory(atPath: shared + "/out").sorted()
        #expect(outputs == names.map { $0 + "-magnitude-2of4" })
        let dsnotctl = try Binaries.path("dsnotctl")
        for output in outputs {
            let verified = try runProgram(dsnotctl, ["verify", shared + "/out/" + output])
            #expect(verified.status == 0, "\(output): \(verified.stderr)")
        }
        // status on either node lists both nodes with a recent heartbeat.
        let status = try WireCodec.makeDecoder().decode(
            StatusReport.self,
            from: Data(try a.ctl("status", "--json").stdout.utf8)
        )
        #expect(status.node == "a")
        #expect(status.nodes?.map(\.name) == ["a", "b"])
        #expect(status.nodes?.allSatisfy { Date().timeIntervalSince($0.heartbeatAt) < 30 } == true)
        #expect(try b.ctl("status").stdout.contains("node a: last heartbeat"))
    }

    /// The node running a job is killed with -9 in the middle of it: after its lease (2 s) and the settle
    /// period (1 s) the other node takes the job over and finishes it; one output, which verifies, and no
    /// staging directory left behind.
    @Test func killMinusNineOfTheRunningNodeIsTakenOverAndFinishedOnce() throws {
        let scratch = try CrashRecoveryTests.scratchWithModel("dsnot-fleet-kill")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let recipe = """
            method = "sparsegpt"
            pattern = 0.5
            calibration = { source = "tokens", path = "\(scratch)/calib.safetensors" }
            """
        let (a, b, shared) = try Self.twoNodes(recipe: recipe)
        defer {
            a.stop()
            b.stop()
            try? FileManager.default.removeItem(atPath: shared)
        }
        try FileManager.default.copyItem(atPath: scratch + "/model", toPath: shared + "/in/.big")
        try FileManager.default.moveItem(atPath: shared + "/in/.big", toPath: shared + "/in/big")
        #expect(
            waitUntil(timeout: 60) {
                guard let job = try? a.jobs().first else { return false }
                return job.state == .running && (job.block ?? 0) >= 1
            },
            "\(a.log.suffix(1500))"
        )
        let running = try #require(try a.jobs().first)
        let (victim, survivor) = running.node == "a" ? (a, b) : (b, a)
        kill(victim.process.processIdentifier, SIGKILL)
        victim.process.waitUntilExit()
        #expect(
            waitUntil(timeout: 120) { (try? survivor.jobs().first?.state) == .done },
            "\(survivor.log.suffix(2000))"
        )
        let done = try #require(try survivor.jobs().first)
        #expect(done.node == (running.node == "a" ? "b" : "a"))
        #expect(done.attempts == 2)
        let outputs = try FileManager.default.contentsOfDirectory(atPath: shared + "/out")
        #expect(outputs == ["big-sparsegpt-u50"], "partial or duplicate output: \(outputs)")
        let verified = try runProgram(
            try Binaries.path("dsnotctl"),
            ["verify", shared + "/out/big-sparsegpt-u50"]
        )
        #expect(verified.status == 0, "\(verified.stderr)")
        let history = try survivor.ctl("show", done.id).stdout
        #expect(history.contains("lease expired: node \(running.node ?? "?")"), "\(history)")
    }
}
