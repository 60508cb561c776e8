// SPDX-License-Identifier: Apache-2.0
// The two job store backends, for tests that run against both: SQLite on a file, PostgreSQL on a real server.

import DSnoTControlProtocol
import DSnoTDaemon
import DSnoTTestSupport
import Foundation
import GRDB
import Testing

/// A job store backend under test. `open()` opens a store on the same database each time (a restart);
/// `raw(_:)` runs SQL on it behind the store's back (damaging a row, ageing a lease).
enum JobStoreBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite
    case postgresql

    var testDescription: String { rawValue }

    /// The job table's name in raw SQL.
    var jobTable: String { self == .sqlite ? "job" : "dsnot_job" }

    struct Fixture {
        let open: () throws -> any JobStore
        let raw: (String) throws -> Void
        /// The `[postgresql]` configuration (nil for SQLite).
        let postgresql: PostgreSQLConfiguration?
    }

    /// A fresh, empty database: a file in `directory`, or a new database on the test cluster.
    func fixture(in directory: TemporaryDirectory) throws -> Fixture {
        switch self {
        case .sqlite:
            let path = directory.sub("jobs.sqlite").path
            return Fixture(
                open: { try SQLiteJobStore(path: path) },
                raw: { sql in try DatabaseQueue(path: path).write { try $0.execute(sql: sql) } },
                postgresql: nil
            )
        case .postgresql:
            let postgresql = try Self.postgresqlConfiguration(in: directory)
            return Fixture(
                open: { try PostgreSQLJobStore(configuration: postgresql, logger: testLogger) },
                raw: { sql in try PostgreSQLJobStore(configuration: postgresql, logger: testLogger).execute(sql) },
                postgresql: postgresql
            )
        }
    }

    /// A new database on the test process's cluster, logged into with a `password_file`.
    static func postgresqlConfiguration(in directory: TemporaryDirectory) throws -> PostgreSQLConfiguration {
        let cluster = try PostgreSQLCluster.shared.get()
        let url = try PostgreSQLURL(parsing: cluster.url(database: try cluster.createDatabase()))
        return PostgreSQLConfiguration(url: url, passwordFile: try cluster.passwordFile(in: directory.path))
    }
}

extension JobRecord {
    /// A queued job of the `main` watch for the store tests of both backends; `seconds` orders creation.
    static func fixture(_ id: String, key: String, at seconds: Double = 0) -> JobRecord {
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
}
