// SPDX-License-Identifier: Apache-2.0
// JobStore over PostgreSQL (postgres-nio): the queue several dsnotd nodes share.

public import DSnoTControlProtocol
public import DSnoTPipeline
public import Foundation
public import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// The fleet's job store: one PostgreSQL database shared by every node (`job_store = "postgresql"`).
///
/// Bridging: `JobStore` is synchronous, so each call blocks its thread on postgres-nio's futures
/// (`wait()`); the futures run on NIO's event loops, never on the caller's thread, so a blocked
/// cooperative thread cannot starve them. One connection per store, serialised by a mutex (a node
/// makes a few queries a second); a broken connection is dropped and the next call reconnects, so a
/// restarted server costs the calls made while it was down (the scheduler logs them and retries on
/// its next tick).
///
/// Times in job records are the node's clock, as with SQLite; leases use the server's clock
/// (`clock_timestamp()`), so nodes with skewed clocks agree on when a lease ends.
///
/// ```swift
/// let store = try PostgreSQLJobStore(configuration: postgresql, logger: logger)
/// let claimed = try store.claim(jobID: id, node: "node-a", lease: 30) { try JobStateMachine.apply(.start, to: $0, now: .now) }
/// ```
public final class PostgreSQLJobStore: JobStore {
    /// The newest schema version this binary knows (`dsnot_schema`).
    public static let schemaVersion = 1

    private let target: PostgreSQLURL
    private let connectionConfiguration: PostgresConnection.Configuration
    private let logger: Logger
    private let connection = Mutex<PostgresConnection?>(nil)

    /// Connects, then applies the missing schema migrations in one transaction (under an advisory
    /// lock, so nodes starting together migrate once).
    /// - Throws: `JobStoreError.cannotOpen` (unreachable server, refused login, unreadable
    ///   password file) or `.schemaTooNew`.
    public init(configuration: PostgreSQLConfiguration, logger: Logger) throws {
        target = configuration.url
        self.logger = logger
        let password = try configuration.password()
        var connectionConfiguration: PostgresConnection.Configuration
        switch configuration.url.endpoint {
        case .tcp(let host, let port):
            connectionConfiguration = .init(
                host: host,
                port: port,
                username: configuration.url.user,
                password: password,
                database: configuration.url.database,
                tls: .disable
            )
        case .unixSocket:
            connectionConfiguration = .init(
                unixSocketPath: configuration.url.socketPath ?? "",
                username: configuration.url.user,
                password: password,
                database: configuration.url.database
            )
        }
        connectionConfiguration.options.connectTimeout = .seconds(10)
        self.connectionConfiguration = connectionConfiguration
        do {
            try transaction("migrate") { connection in try Self.migrate(connection, logger: logger, target: target) }
        } catch JobStoreError.database(_, let reason) {
            throw JobStoreError.cannotOpen(path: target.description, reason: reason)
        }
    }

    deinit {
        connection.withLock { current in
            _ = try? current?.close().wait()
            current = nil
        }
    }

    /// Each entry: the statements that bring the schema to that version (index + 1).
    private static let migrations: [[String]] = [
        [
            """
            CREATE TABLE dsnot_job (
                seq BIGSERIAL NOT NULL,
                id TEXT PRIMARY KEY,
                key TEXT NOT NULL UNIQUE,
                watch TEXT NOT NULL,
                state TEXT NOT NULL,
                priority BIGINT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                record TEXT NOT NULL,
                recipe TEXT NOT NULL,
                node TEXT,
                lease_until TIMESTAMPTZ
            )
            """,
            "CREATE INDEX dsnot_job_state ON dsnot_job (state)",
            """
            CREATE TABLE dsnot_job_history (
                seq BIGSERIAL PRIMARY KEY,
                job_id TEXT NOT NULL REFERENCES dsnot_job (id),
                at DOUBLE PRECISION NOT NULL,
                from_state TEXT,
                to_state TEXT NOT NULL,
                detail TEXT
            )
            """,
            "CREATE INDEX dsnot_job_history_job ON dsnot_job_history (job_id)",
            """
            CREATE TABLE dsnot_node (
                name TEXT PRIMARY KEY,
                started_at DOUBLE PRECISION NOT NULL,
                heartbeat_at DOUBLE PRECISION NOT NULL
            )
            """,
        ]
    ]

    private static func migrate(_ connection: PostgresConnection, logger: Logger, target: PostgreSQLURL) throws {
        // One lock id for dsnot's schema ("dsnot" in ASCII), held to the end of the transaction.
        try run(connection, "SELECT pg_advisory_xact_lock(\(Int64(0x6473_6e6f_74)))", logger)
        try run(connection, "CREATE TABLE IF NOT EXISTS dsnot_schema (version INTEGER NOT NULL)", logger)
        let found =
            try run(connection, "SELECT COALESCE(MAX(version), 0) FROM dsnot_schema", logger).first
            .map { try $0.decode(Int.self) } ?? 0
        guard found <= schemaVersion else {
            throw JobStoreError.schemaTooNew(database: target.description, found: found, supported: schemaVersion)
        }
        for version in (found + 1)..<(schemaVersion + 1) {
            for statement in migrations[version - 1] {
                try run(connection, PostgresQuery(unsafeSQL: statement), logger)
            }
            try run(connection, "INSERT INTO dsnot_schema (version) VALUES (\(version))", logger)
        }
    }

    public func insert(_ job: JobRecord, recipe: PruneJobOptions) throws -> (job: JobRecord, inserted: Bool) {
        try transaction("insert") { connection in
            // The unique key makes two nodes that see one checkpoint create one job: the loser's
            // insert does nothing and it reads the winner's row.
            let inserted = try run(
                connection,
                """
                INSERT INTO dsnot_job (id, key, watch, state, priority, created_at, record, recipe, node)
                VALUES (\(job.id), \(job.key), \(job.watch), \(job.state.rawValue), \(job.priority),
                        \(job.createdAt.timeIntervalSince1970), \(try Self.encode(job)), \(recipe.canonicalJSON),
                        \(job.node))
                ON CONFLICT DO NOTHING RETURNING id
                """
            )
            if inserted.isEmpty {
                let existing = try run(
                    connection,
                    "SELECT record, created_at FROM dsnot_job WHERE key = \(job.key) OR id = \(job.id)"
                )
                guard let row = existing.first else {
                    throw JobStoreError.conflict(jobID: job.id, expected: job.state, got: nil)
                }
                return (try Self.decode(row), false)
            }
            try recordHistory(connection, job: job, from: nil, detail: "created")
            return (job, true)
        }
    }

    /// - Throws: `JobStoreError.conflict` when the stored job is no longer in `previous.state` on
    ///   `previous.node`.
    public func update(_ job: JobRecord, from previous: JobRecord, detail: String?) throws {
        try transaction("update") { connection in try update(connection, job, from: previous, detail: detail) }
    }

    /// The one UPDATE of a job row: only from the state and node the caller saw (compare-and-set: a
    /// node never overwrites a job another node took over); a job leaving running/publishing gives
    /// up its lease.
    private func update(_ connection: PostgresConnection, _ job: JobRecord, from previous: JobRecord, detail: String?)
        throws
    {
        let holdsLease = job.state == .running || job.state == .publishing
        let changed = try run(
            connection,
            """
            UPDATE dsnot_job SET state = \(job.state.rawValue), priority = \(job.priority),
                record = \(try Self.encode(job)), node = \(job.node),
                lease_until = CASE WHEN \(holdsLease) THEN lease_until ELSE NULL END
            WHERE id = \(job.id) AND state = \(previous.state.rawValue) AND node IS NOT DISTINCT FROM \(previous.node)
            RETURNING id
            """
        )
        guard !changed.isEmpty else {
            let state = try run(connection, "SELECT state FROM dsnot_job WHERE id = \(job.id)").first
                .map { try $0.decode(String.self) }
            throw JobStoreError.conflict(updating: job, from: previous, storedState: state)
        }
        if previous.state != job.state {
            try recordHistory(connection, job: job, from: previous.state, detail: detail)
        }
    }

    public func job(id: String) throws -> JobRecord? {
        try query("job(id:)") { connection in
            try run(connection, "SELECT record, created_at FROM dsnot_job WHERE id = \(id)").first.map(Self.decode)
        }
    }

    public func job(key: String) throws -> JobRecord? {
        try query("job(key:)") { connection in
            try run(connection, "SELECT record, created_at FROM dsnot_job WHERE key = \(key)").first.map(Self.decode)
        }
    }

    /// The job's recipe, stored as `PruneJobOptions.canonicalJSON`.
    /// - Throws: `JobStoreError.recipeUnreadable` naming the key, expected and got, or `.database`.
    public func recipe(jobID: String) throws -> PruneJobOptions? {
        let stored = try query("recipe") { connection in
            try run(connection, "SELECT recipe FROM dsnot_job WHERE id = \(jobID)").first.map {
                try $0.decode(String.self)
            }
        }
        guard let text = stored else { return nil }
        do {
            return try RecipeDocument.decode(json: text)
        } catch {
            throw JobStoreError.recipeUnreadable(jobID: jobID, reason: "\(error)")
        }
    }

    public func jobs(state: JobState?, watch: String?, limit: Int?) throws -> [JobRecord] {
        try query("jobs") { connection in
            // NULL parameters mean "any": one statement for every filter combination.
            let limitClause = limit.map { " LIMIT \(max(0, $0))" } ?? ""
            var sql = PostgresQuery(
                unsafeSQL: """
                    SELECT record, created_at FROM dsnot_job
                    WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR watch = $2)
                    ORDER BY created_at DESC, seq DESC\(limitClause)
                    """
            )
            sql.binds.append(state?.rawValue)
            sql.binds.append(watch)
            return try run(connection, sql).map(Self.decode)
        }
    }

    public func counts() throws -> [JobState: Int] {
        try query("counts") { connection in
            var result: [JobState: Int] = [:]
            for row in try run(connection, "SELECT state, COUNT(*) FROM dsnot_job GROUP BY state") {
                let (name, count) = try row.decode((String, Int).self)
                if let state = JobState(rawValue: name) { result[state] = count }
            }
            return result
        }
    }

    public func history(jobID: String) throws -> [JobHistoryEntry] {
        try query("history") { connection in
            try run(
                connection,
                """
                SELECT job_id, at, from_state, to_state, detail FROM dsnot_job_history
                WHERE job_id = \(jobID) ORDER BY seq
                """
            ).map { row in
                let (id, at, from, to, detail) = try row.decode((String, Double, String?, String, String?).self)
                return JobHistoryEntry(
                    jobID: id,
                    at: Date(timeIntervalSince1970: at),
                    from: from.flatMap(JobState.init(rawValue:)),
                    to: JobState(rawValue: to) ?? .failed,
                    detail: detail
                )
            }
        }
    }

    /// `SELECT … FOR UPDATE SKIP LOCKED`: of two nodes claiming one job, the second skips the row the
    /// first holds and gets nothing, instead of waiting and then starting it a second time.
    public func claim(jobID: String, node: String, lease: Double, transition: (JobRecord) throws -> JobRecord) throws
        -> JobRecord?
    {
        try transaction("claim") { connection in
            let queued = JobState.queued.rawValue
            guard
                let row = try run(
                    connection,
                    """
                    SELECT record, created_at FROM dsnot_job WHERE id = \(jobID) AND state = \(queued)
                    FOR UPDATE SKIP LOCKED
                    """
                ).first
            else { return nil }
            let current = try Self.decode(row)
            var next = try transition(current)
            next.node = node
            try update(connection, next, from: current, detail: nil)
            try run(
                connection,
                "UPDATE dsnot_job SET lease_until = clock_timestamp() + make_interval(secs => \(lease)) WHERE id = \(jobID)"
            )
            return next
        }
    }

    public func renewLease(jobID: String, node: String, lease: Double) throws -> Bool {
        try query("renewLease") { connection in
            let renewed = try run(
                connection,
                """
                UPDATE dsnot_job SET lease_until = clock_timestamp() + make_interval(secs => \(lease))
                WHERE id = \(jobID) AND node = \(node) AND state IN ('running', 'publishing')
                RETURNING id
                """
            )
            return !renewed.isEmpty
        }
    }

    public func reapExpiredLeases(settle: Double, transition: (JobRecord) throws -> (JobRecord, String?)?) throws
        -> [JobRecord]
    {
        try transaction("reapExpiredLeases") { connection in
            let expired = try run(
                connection,
                """
                SELECT record, created_at FROM dsnot_job
                WHERE state IN ('running', 'publishing')
                  AND lease_until < clock_timestamp() - make_interval(secs => \(settle))
                ORDER BY seq FOR UPDATE SKIP LOCKED
                """
            ).map(Self.decode)
            var reaped: [JobRecord] = []
            for job in expired {
                guard let (next, detail) = try transition(job) else { continue }
                try update(connection, next, from: job, detail: detail)
                reaped.append(next)
            }
            return reaped
        }
    }

    public func heartbeat(node: String, startedAt: Date) throws {
        _ = try query("heartbeat") { connection in
            try run(
                connection,
                """
                INSERT INTO dsnot_node (name, started_at, heartbeat_at)
                VALUES (\(node), \(startedAt.timeIntervalSince1970), \(Date().timeIntervalSince1970))
                ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at
                """
            )
        }
    }

    public func nodes() throws -> [NodeStatus] {
        try query("nodes") { connection in
            try run(connection, "SELECT name, started_at, heartbeat_at FROM dsnot_node ORDER BY name").map { row in
                let (name, started, beat) = try row.decode((String, Double, Double).self)
                return NodeStatus(
                    name: name,
                    startedAt: Date(timeIntervalSince1970: started),
                    heartbeatAt: Date(timeIntervalSince1970: beat)
                )
            }
        }
    }

    /// Runs raw SQL (tests: damaging a stored recipe, ageing a lease).
    public func execute(_ sql: String) throws {
        try query("execute") { connection in _ = try run(connection, PostgresQuery(unsafeSQL: sql)) }
    }

    // MARK: Connection and errors

    private func recordHistory(_ connection: PostgresConnection, job: JobRecord, from: JobState?, detail: String?)
        throws
    {
        try run(
            connection,
            """
            INSERT INTO dsnot_job_history (job_id, at, from_state, to_state, detail)
            VALUES (\(job.id), \(job.updatedAt.timeIntervalSince1970), \(from?.rawValue), \(job.state.rawValue),
                    \(detail))
            """
        )
    }

    @discardableResult
    private func run(_ connection: PostgresConnection, _ sql: PostgresQuery) throws -> PostgresQueryResult {
        try Self.run(connection, sql, logger)
    }

    @discardableResult
    private static func run(_ connection: PostgresConnection, _ sql: PostgresQuery, _ logger: Logger) throws
        -> PostgresQueryResult
    {
        try connection.query(sql, logger: logger).wait()
    }

    /// One statement outside an explicit transaction.
    private func query<T>(_ operation: String, _ body: (PostgresConnection) throws -> T) throws -> T {
        try withConnection(operation, body)
    }

    /// `body` between BEGIN and COMMIT; any error rolls back.
    private func transaction<T>(_ operation: String, _ body: (PostgresConnection) throws -> T) throws -> T {
        try withConnection(operation) { connection in
            try run(connection, "BEGIN")
            do {
                let result = try body(connection)
                try run(connection, "COMMIT")
                return result
            } catch {
                _ = try? run(connection, "ROLLBACK")
                throw error
            }
        }
    }

    /// Runs `body` on the store's connection, connecting first when there is none (or it broke).
    /// Errors become `JobStoreError.database` with the server's message; `JobStoreError`s pass.
    private func withConnection<T>(_ operation: String, _ body: (PostgresConnection) throws -> T) throws -> T {
        let logger = self.logger
        let configuration = connectionConfiguration
        let result: Result<T, any Error> = connection.withLock { current in
            do {
                let live: PostgresConnection
                if let existing = current, !existing.isClosed {
                    live = existing
                } else {
                    live = try PostgresConnection.connect(
                        on: MultiThreadedEventLoopGroup.singleton.next(),
                        configuration: configuration,
                        id: 1,
                        logger: logger
                    ).wait()
                    current = live
                }
                do { return .success(try body(live)) } catch {
                    if live.isClosed { current = nil }
                    return .failure(error)
                }
            } catch {
                return .failure(error)
            }
        }
        do { return try result.get() } catch let error as JobStoreError {
            throw error
        } catch {
            throw JobStoreError.database(operation: operation, reason: Self.explain(error))
        }
    }

    /// A PostgreSQL error as an operator reads it: the server's message and SQLSTATE, or what failed
    /// on the way (PSQLError's own description hides both).
    static func explain(_ error: any Error) -> String {
        guard let error = error as? PSQLError else { return "\(error)" }
        if let info = error.serverInfo, let message = info[.message] {
            let state = info[.sqlState].map { " [SQLSTATE \($0)]" } ?? ""
            return "server says: \(message)\(state)"
        }
        if let underlying = error.underlying { return "\(error.code): \(underlying)" }
        return "\(error.code)"
    }

    private static func encode(_ job: JobRecord) throws -> String {
        String(decoding: try WireCodec.makeEncoder().encode(job), as: UTF8.self)
    }

    /// The row's record, with `createdAt` from the `created_at` column (as `SQLiteJobStore.decode`).
    private static func decode(_ row: PostgresRow) throws -> JobRecord {
        let (text, createdAt) = try row.decode((String, Double).self)
        var job = try WireCodec.makeDecoder().decode(JobRecord.self, from: Data(text.utf8))
        job.createdAt = Date(timeIntervalSince1970: createdAt)
        return job
    }
}
