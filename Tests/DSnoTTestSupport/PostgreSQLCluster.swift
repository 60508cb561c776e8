// SPDX-License-Identifier: Apache-2.0
// PostgreSQLCluster: a throwaway PostgreSQL server (initdb + pg_ctl) on a Unix socket in a temp directory.

public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real PostgreSQL server for the tests of the fleet job store: `initdb` into a fresh directory, a
/// server listening only on a Unix socket there (no TCP port, so parallel test processes never
/// collide), password (SCRAM) authentication for the superuser `dsnot`, stopped when the test process
/// exits. One per test process (`shared`); each test takes a database of its own (`createDatabase`).
///
/// The binaries are found in `$DSNOT_POSTGRESQL_BIN`, else the newest `/usr/lib/postgresql/*/bin`
/// (Debian's `postgresql` package, which `scripts/install-deps.sh` installs), else on `PATH`. The
/// server refuses to run as root, so under root it runs as `nobody` (through `runuser`).
///
/// ```swift
/// let cluster = try PostgreSQLCluster.shared.get()
/// let url = cluster.url(database: try cluster.createDatabase())
/// ```
public final class PostgreSQLCluster: Sendable {
    /// The superuser the tests log in as, and its password.
    public static let user = "dsnot"
    public let password: String
    /// The directory holding the socket (`.s.PGSQL.5432`), the data directory and the log.
    public let directory: String
    public var socketDirectory: String { directory }
    let binaries: String
    private let serverPID: Int32

    /// The cluster of this test process, started on first use.
    public static let shared: Result<PostgreSQLCluster, any Error> = Result {
        let cluster = try PostgreSQLCluster()
        atexit { try? PostgreSQLCluster.shared.get().stop() }
        return cluster
    }

    /// A `postgresql://` URL of `database` on the socket, without the password.
    public func url(database: String) -> String {
        "postgresql://\(Self.user)@/\(database)?host=\(socketDirectory)"
    }

    /// The password in a file (for `password_file`), written into `directory`.
    public func passwordFile(in directory: String) throws -> String {
        let path = directory + "/pg-password"
        try Data((password + "\n").utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// Creates an empty database with a fresh name and returns the name.
    public func createDatabase() throws -> String {
        let name = "t_" + UUID().uuidString.lowercased().filter(\.isHexDigit).prefix(16)
        try sql("CREATE DATABASE \(name)")
        return name
    }

    /// Runs one SQL command with `psql` as the superuser (in `database`, default `postgres`).
    @discardableResult
    public func sql(_ command: String, database: String = "postgres") throws -> String {
        let result = try ExternalProcess.run(
            binaries + "/psql",
            [
                "-h", socketDirectory, "-U", Self.user, "-d", database, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
                "-c", command,
            ],
            environment: ["PGPASSWORD": password, "PATH": "/usr/bin:/bin"]
        )
        guard result.status == 0 else {
            throw ClusterError(step: "psql -c \(command)", output: result.output)
        }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Stops the server (SIGQUIT: immediate shutdown, waited for at most 10 s) and removes its directory.
    public func stop() throws {
        kill(serverPID, SIGQUIT)
        _ = waitForServerExit()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Waits up to 10 s for the server process to end.
    private func waitForServerExit() -> Bool {
        for _ in 0..<100 {
            var status: Int32 = 0
            if kill(serverPID, 0) != 0 || waitpid(serverPID, &status, WNOHANG) == serverPID { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }

    /// Why the cluster could not be set up.
    public struct ClusterError: Error, CustomStringConvertible {
        public var step: String
        public var output: String
        public var description: String { "PostgreSQL test cluster: \(step) failed: \(output)" }
    }

    /// A cluster of the caller's own (to stop or restart): `stop()` it when done.
    public static func start() throws -> PostgreSQLCluster { try PostgreSQLCluster() }

    /// Stops the server the way a crash or an operator's restart would (SIGINT, fast shutdown: the
    /// connections are cut), keeping its data; `restarted()` starts it again.
    public func stopServer() {
        kill(serverPID, SIGINT)
        _ = waitForServerExit()
    }

    /// The same cluster (directory, data, password) served by a new server process.
    public func restarted() throws -> PostgreSQLCluster {
        try PostgreSQLCluster(binaries: binaries, directory: directory, password: password)
    }

    private convenience init() throws {
        let binaries = try Self.findBinaries()
        let directory = try TemporaryDirectory("dsnot-pg").path
        let password = "pw-\(UInt64.random(in: 0...UInt64.max))"
        try Self.initialize(binaries: binaries, directory: directory, password: password)
        try self.init(binaries: binaries, directory: directory, password: password)
    }

    /// `initdb` into `<directory>/data` (owned by the server's user).
    private static func initialize(binaries: String, directory: String, password: String) throws {
        let data = directory + "/data"
        try Data((password + "\n").utf8).write(to: URL(fileURLWithPath: directory + "/initdb-password"))
        if getuid() == 0 {
            // The server's files must belong to the user it runs as.
            _ = try ExternalProcess.run("/bin/chown", ["-R", "nobody:nogroup", directory])
            _ = try ExternalProcess.run("/bin/chmod", ["0700", directory])
        }
        try Self.checked(
            "initdb",
            Self.asServerUser([
                binaries + "/initdb", "-D", data, "-U", Self.user, "--pwfile=" + directory + "/initdb-password",
                "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
            ])
        )
    }

    /// Starts a server on the initialized `directory` and waits until it accepts a login.
    private init(binaries: String, directory: String, password: String) throws {
        self.binaries = binaries
        self.directory = directory
        self.password = password
        let data = directory + "/data"
        // The server runs in the foreground as this process's child (`pg_ctl start` daemonizes, and
        // Foundation's Process then never sees the exit of the `pg_ctl` it started). Socket only, in
        // the private directory; no fsync (a throwaway cluster).
        let server = Process()
        let command = Self.serverUserCommand([
            binaries + "/postgres", "-D", data, "-k", directory, "-c", "listen_addresses=", "-c", "fsync=off",
            "-c", "synchronous_commit=off", "-c", "max_connections=50",
        ])
        server.executableURL = URL(fileURLWithPath: command[0])
        server.arguments = Array(command.dropFirst())
        server.environment = ["PATH": "/usr/bin:/bin", "LC_ALL": "C"]
        let log = directory + "/server.log"
        if !FileManager.default.fileExists(atPath: log) { FileManager.default.createFile(atPath: log, contents: nil) }
        let logHandle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        _ = try logHandle.seekToEnd()
        server.standardOutput = logHandle
        server.standardError = logHandle
        server.standardInput = FileHandle.nullDevice
        try server.run()
        serverPID = server.processIdentifier
        // Ready once it accepts a login (at most 30 s).
        let deadline = Date().addingTimeInterval(30)
        while true {
            if (try? sql("SELECT 1")) == "1" { break }
            guard server.isRunning, Date() < deadline else {
                let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
                throw ClusterError(step: "starting postgres", output: text)
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    private static func checked(_ step: String, _ result: ExternalProcess.Result) throws {
        guard result.status == 0 else { throw ClusterError(step: step, output: result.output) }
    }

    /// Runs a server program as the server's user to completion.
    private static func asServerUser(_ command: [String]) throws -> ExternalProcess.Result {
        let full = serverUserCommand(command)
        return try ExternalProcess.run(
            full[0],
            Array(full.dropFirst()),
            environment: ["PATH": "/usr/bin:/bin", "LC_ALL": "C"]
        )
    }

    /// `command` as the server's user: `nobody` under root (`setpriv` execs it, so the process is the
    /// program itself), else the current user.
    private static func serverUserCommand(_ command: [String]) -> [String] {
        guard getuid() == 0 else { return command }
        return ["/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] + command
    }

    private static func findBinaries() throws -> String {
        let manager = FileManager.default
        if let explicit = ProcessInfo.processInfo.environment["DSNOT_POSTGRESQL_BIN"] { return explicit }
        let root = "/usr/lib/postgresql"
        let versions = ((try? manager.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        if let newest = versions.last, manager.isExecutableFile(atPath: "\(root)/\(newest)/bin/initdb") {
            return "\(root)/\(newest)/bin"
        }
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
        where manager.isExecutableFile(atPath: "\(directory)/initdb")
            && manager.isExecutableFile(atPath: "\(directory)/pg_ctl")
        {
            return String(directory)
        }
        throw ClusterError(
            step: "finding initdb and pg_ctl",
            output: "not in $DSNOT_POSTGRESQL_BIN, /usr/lib/postgresql/*/bin or PATH: install Debian's postgresql "
                + "package (scripts/install-deps.sh)"
        )
    }
}
