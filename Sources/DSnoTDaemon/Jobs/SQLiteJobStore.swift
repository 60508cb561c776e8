// SPDX-License-Identifier: Apache-2.0
// JobStore over SQLite (GRDB, WAL journal) in the state directory.

public import DSnoTControlProtocol
public import DSnoTPipeline
public import Foundation
import GRDB

/// The embedded job store: `<state_dir>/jobs.sqlite`, WAL mode with `synchronous = FULL` (a commit is
/// on disk when it returns), one row per job and one per transition.
///
/// ```swift
/// let store = try SQLiteJobStore(path: "/var/lib/dsnot/jobs.sqlite")
/// let (job, inserted) = try store.insert(record)
/// ```
public final class SQLiteJobStore: JobStore {
    private let pool: DatabasePool

    /// Opens (creating if needed) the database and migrates it.
    /// - Throws: `JobStoreError.cannotOpen`.
    public init(path: String) throws {
        do {
            var configuration = Configuration()
            configuration.busyMode = .timeout(5)
            pool = try DatabasePool(path: path, configuration: configuration)
            // GRDB sets `synchronous = NORMAL` with WAL, under which a power loss may undo the last
            // commits: an acknowledged `done` must survive it, so the one writer connection fsyncs the
            // WAL at every commit (docs/design.md, "Durability").
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            try Self.migrator.migrate(pool)
        } catch {
            throw JobStoreError.cannotOpen(path: path, reason: "\(error)")
        }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE job (
                        id TEXT PRIMARY KEY NOT NULL,
                        key TEXT NOT NULL UNIQUE,
                        watch TEXT NOT NULL,
                        state TEXT NOT NULL,
                        priority INTEGER NOT NULL,
                        created_at DOUBLE NOT NULL,
                        record TEXT NOT NULL,
                        recipe TEXT NOT NULL
                    );
                    CREATE INDEX job_state ON job(state);
                    CREATE TABLE job_history (
                        seq INTEGER PRIMARY KEY AUTOINCREMENT,
                        job_id TEXT NOT NULL REFERENCES job(id),
                        at DOUBLE NOT NULL,
                        from_state TEXT,
                        to_state TEXT NOT NULL,
                        detail TEXT
                    );
                    CREATE INDEX job_history_job ON job_history(job_id);
                    """
            )
        }
        // Fleet (issue 15): the node running a job, and the nodes' heartbeats. SQLite is one node, so
        // no lease column: a job's node holds it until the job leaves running/publishing.
        migrator.registerMigration("v2") { db in
            try db.execute(
                sql: """
                    ALTER TABLE job ADD COLUMN node TEXT;
                    CREATE TABLE node (
                        name TEXT PRIMARY KEY NOT NULL,
                        started_at DOUBLE NOT NULL,
                        heartbeat_at DOUBLE NOT NULL
                    );
                    """
            )
        }
        return migrator
    }

    public func insert(_ job: JobRecord, recipe: PruneJobOptions) throws -> (job: JobRecord, inserted: Bool) {
        try write("insert") { db in
            if let row = try Row.fetchOne(
                db,
                sql: "SELECT record, created_at FROM job WHERE key = ?",
                arguments: [job.key]
            ) {
                return (try Self.decode(row), false)
            }
            try db.execute(
                sql: """
                    INSERT INTO job (id, key, watch, state, priority, created_at, record, recipe)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    job.id, job.key, job.watch, job.state.rawValue, job.priority,
                    job.createdAt.timeIntervalSince1970, try Self.encode(job),
                    recipe.canonicalJSON,
                ]
            )
            try Self.recordHistory(db, job: job, from: nil, detail: "created")
            return (job, true)
        }
    }

    /// - Throws: `JobStoreError.conflict` when the stored job is no longer in `previous.state` on
    ///   `previous.node`.
    public func update(_ job: JobRecord, from previous: JobRecord, detail: String?) throws {
        try write("update") { db in try Self.update(db, job, from: previous, detail: detail) }
    }

    /// The one UPDATE of a job row: only from the state and node the caller saw (compare-and-set).
    private static func update(_ db: Database, _ job: JobRecord, from previous: JobRecord, detail: String?) throws {
        try db.execute(
            sql:
                "UPDATE job SET state = ?, priority = ?, record = ?, node = ? WHERE id = ? AND state = ? AND node IS ?",
            arguments: [
                job.state.rawValue, job.priority, try encode(job), job.node, job.id, previous.state.rawValue,
                previous.node,
            ]
        )
        guard db.changesCount == 1 else {
            let state = try String.fetchOne(db, sql: "SELECT state FROM job WHERE id = ?", arguments: [job.id])
            throw JobStoreError.conflict(updating: job, from: previous, storedState: state)
        }
        if previous.state != job.state {
            try recordHistory(db, job: job, from: previous.state, detail: detail)
        }
    }

    /// One process holds the database, so a claim is a read and a compare-and-set in one transaction.
    public func claim(jobID: String, node: String, lease: Double, transition: (JobRecord) throws -> JobRecord) throws
        -> JobRecord?
    {
        try write("claim") { db in
            guard
                let row = try Row.fetchOne(
                    db,
                    sql: "SELECT record, created_at FROM job WHERE id = ? AND state = ?",
                    arguments: [jobID, JobState.queued.rawValue]
                )
            else { return nil }
            let current = try Self.decode(row)
            var next = try transition(current)
            next.node = node
            try Self.update(db, next, from: current, detail: nil)
            return next
        }
    }

    /// True while the job is running or publishing on `node`: one process, so no lease expires.
    public func renewLease(jobID: String, node: String, lease: Double) throws -> Bool {
        try read("renewLease") { db in
            try Bool.fetchOne(
                db,
                sql: "SELECT 1 FROM job WHERE id = ? AND node = ? AND state IN (?, ?)",
                arguments: [jobID, node, JobState.running.rawValue, JobState.publishing.rawValue]
            ) ?? false
        }
    }

    /// Nothing to reap: the one node's interrupted jobs are re-queued by `PruneScheduler.recover`.
    public func reapExpiredLeases(settle: Double, transition: (JobRecord) throws -> (JobRecord, String?)?) throws
        -> [JobRecord]
    { [] }

    public func heartbeat(node: String, startedAt: Date) throws {
        try write("heartbeat") { db in
            try db.execute(
                sql: """
                    INSERT INTO node (name, started_at, heartbeat_at) VALUES (?, ?, ?)
                    ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at
                    """,
                arguments: [node, startedAt.timeIntervalSince1970, Date().timeIntervalSince1970]
            )
        }
    }

    public func nodes() throws -> [NodeStatus] {
        try read("nodes") { db in
            try Row.fetchAll(db, sql: "SELECT * FROM node ORDER BY name").map { row in
                NodeStatus(
                    name: row["name"],
                    startedAt: Date(timeIntervalSince1970: row["started_at"]),
                    heartbeatAt: Date(timeIntervalSince1970: row["heartbeat_at"])
                )
            }
        }
    }

    public func job(id: String) throws -> JobRecord? {
        try read("job(id:)") { db in
            try Row.fetchOne(db, sql: "SELECT record, created_at FROM job WHERE id = ?", arguments: [id]).map(
                Self.decode
            )
        }
    }

    /// The job's recipe, stored as `PruneJobOptions.canonicalJSON`.
    /// - Throws: `JobStoreError.recipeUnreadable` naming the key, expected and got, or `.database`.
    public func recipe(jobID: String) throws -> PruneJobOptions? {
        let stored = try read("recipe") { db in
            try String.fetchOne(db, sql: "SELECT recipe FROM job WHERE id = ?", arguments: [jobID])
        }
        guard let text = stored else { return nil }
        do {
            return try RecipeDocument.decode(json: text)
        } catch {
            throw JobStoreError.recipeUnreadable(jobID: jobID, reason: "\(error)")
        }
    }

    public func job(key: String) throws -> JobRecord? {
        try read("job(key:)") { db in
            try Row.fetchOne(db, sql: "SELECT record, created_at FROM job WHERE key = ?", arguments: [key]).map(
                Self.decode
            )
        }
    }

    public func jobs(state: JobState?, watch: String?, limit: Int?) throws -> [JobRecord] {
        try read("jobs") { db in
            var clauses: [String] = []
            var arguments: StatementArguments = []
            if let state {
                clauses.append("state = ?")
                arguments += [state.rawValue]
            }
            if let watch {
                clauses.append("watch = ?")
                arguments += [watch]
            }
            let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
            let limitClause = limit.map { " LIMIT \(max(0, $0))" } ?? ""
            return try Row.fetchAll(
                db,
                sql:
                    "SELECT record, created_at FROM job \(whereClause) ORDER BY created_at DESC, rowid DESC\(limitClause)",
                arguments: arguments
            ).map(Self.decode)
        }
    }

    public func counts() throws -> [JobState: Int] {
        try read("counts") { db in
            var result: [JobState: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT state, COUNT(*) AS n FROM job GROUP BY state") {
                let name: String = row["state"]
                if let state = JobState(rawValue: name) { result[state] = row["n"] }
            }
            return result
        }
    }

    public func history(jobID: String) throws -> [JobHistoryEntry] {
        try read("history") { db in
            try Row.fetchAll(
                db,
                sql: "SELECT * FROM job_history WHERE job_id = ? ORDER BY seq",
                arguments: [jobID]
            ).map { row in
                let from: String? = row["from_state"]
                let to: String = row["to_state"]
                return JobHistoryEntry(
                    jobID: row["job_id"],
                    at: Date(timeIntervalSince1970: row["at"]),
                    from: from.flatMap(JobState.init(rawValue:)),
                    to: JobState(rawValue: to) ?? .failed,
                    detail: row["detail"]
                )
            }
        }
    }

    /// The writer connection's `PRAGMA synchronous` (2, FULL: the WAL is fsynced at every commit), for tests.
    public func synchronousSetting() throws -> Int {
        do {
            return try pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
        } catch {
            throw JobStoreError.database(operation: "synchronous", reason: "\(error)")
        }
    }

    /// The journal mode SQLite reports (`"wal"`), for tests.
    public func journalMode() throws -> String {
        try read("journal_mode") { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    private static func recordHistory(_ db: Database, job: JobRecord, from: JobState?, detail: String?) throws {
        try db.execute(
            sql: "INSERT INTO job_history (job_id, at, from_state, to_state, detail) VALUES (?, ?, ?, ?, ?)",
            arguments: [job.id, job.updatedAt.timeIntervalSince1970, from?.rawValue, job.state.rawValue, detail]
        )
    }

    private static func encode(_ job: JobRecord) throws -> String {
        String(decoding: try WireCodec.makeEncoder().encode(job), as: UTF8.self)
    }

    /// The row's record, with `createdAt` from the `created_at` column: the record's JSON keeps whole
    /// seconds (ISO-8601, the wire format), the column the full `Date` (seconds since 1970 as a REAL,
    /// in every database since v1), so jobs queued within one second still order by age.
    private static func decode(_ row: Row) throws -> JobRecord {
        let text: String = row["record"]
        var job = try WireCodec.makeDecoder().decode(JobRecord.self, from: Data(text.utf8))
        let createdAt: Double = row["created_at"]
        job.createdAt = Date(timeIntervalSince1970: createdAt)
        return job
    }

    private func write<T>(_ operation: String, _ body: (Database) throws -> T) throws -> T {
        do { return try pool.write(body) } catch {
            throw JobStoreError.database(operation: operation, reason: "\(error)")
        }
    }

    private func read<T>(_ operation: String, _ body: (Database) throws -> T) throws -> T {
        do { return try pool.read(body) } catch {
            throw JobStoreError.database(operation: operation, reason: "\(error)")
        }
    }
}
