// SPDX-License-Identifier: Apache-2.0
// `dsnotd --check-config` with a PostgreSQL job store (a real server): it connects, logs in and reads
// the schema version, and says clearly which of the three went wrong.

import DSnoTTestSupport
import Foundation
import Testing

@Suite struct FleetCheckConfigTests {
    /// A configuration file for `dsnotd` with `job_store = "postgresql"` and this `[postgresql]` table.
    func configFile(_ name: String, in directory: TemporaryDirectory, postgresql: String) throws -> String {
        let path = directory.file(name)
        let text = """
            state_dir = "\(directory.file("state"))"
            socket = "\(directory.socketPath)"
            job_store = "postgresql"
            node_name = "check-node"
            [postgresql]
            \(postgresql)
            [[watch]]
            inbox = "\(directory.file("in"))"
            outbox = "\(directory.file("out"))"
            """
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func checkConfigReachesTheDatabaseAndNamesWhatFailed() throws {
        let dsnotd = try Binaries.path("dsnotd")
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let cluster = try PostgreSQLCluster.shared.get()
        let database = try cluster.createDatabase()
        let passwordFile = try cluster.passwordFile(in: directory.path)

        let good = try configFile(
            "good.toml",
            in: directory,
            postgresql: "url = \"\(cluster.url(database: database))\"\npassword_file = \"\(passwordFile)\""
        )
        let ok = try runProgram(dsnotd, ["--config", good, "--check-config"])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("ok, 1 watch(es), job store reachable"), "\(ok.stdout)")
        // The check migrated the empty database to this binary's schema.
        #expect(try cluster.sql("SELECT MAX(version) FROM dsnot_schema", database: database) == "1")

        let wrongPassword = directory.file("wrong")
        try Data("nope\n".utf8).write(to: URL(fileURLWithPath: wrongPassword))
        let refused = try runProgram(
            dsnotd,
            [
                "--config",
                try configFile(
                    "wrong-password.toml",
                    in: directory,
                    postgresql: "url = \"\(cluster.url(database: database))\"\npassword_file = \"\(wrongPassword)\""
                ), "--check-config",
            ]
        )
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("password authentication failed for user \"dsnot\""), "\(refused.stderr)")

        let nowhere = try runProgram(
            dsnotd,
            [
                "--config",
                try configFile(
                    "wrong-password.toml",
                    in: directory,
                    postgresql: "url = \"postgresql://dsnot@/x?host=\(directory.file("none"))\""
                ),
                "--check-config",
            ]
        )
        #expect(nowhere.status == 1)
        #expect(nowhere.stderr.contains("cannot open job database postgresql://dsnot@/x?host="), "\(nowhere.stderr)")

        try cluster.sql("INSERT INTO dsnot_schema (version) VALUES (2)", database: database)
        let tooNew = try runProgram(dsnotd, ["--config", good, "--check-config"])
        #expect(tooNew.status == 1)
        #expect(tooNew.stderr.contains("has schema version 2, newer than this dsnotd supports (1)"), "\(tooNew.stderr)")
    }
}
