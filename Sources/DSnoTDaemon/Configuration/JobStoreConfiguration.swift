// SPDX-License-Identifier: Apache-2.0
// Which job store a node uses (`job_store`), the PostgreSQL connection of a fleet, and the node's name.

import Foundation

/// `job_store = "sqlite"` (embedded, the default) or `"postgresql"` (a fleet sharing one queue).
public enum JobStoreKind: String, Sendable, Equatable {
    case sqlite
    case postgresql
}

/// How to reach the fleet's PostgreSQL database (`[postgresql]` in dsnotd.toml).
///
/// ```swift
/// let target = try PostgreSQLURL(parsing: "postgresql://dsnot@/dsnot?host=/run/postgresql")
/// // target.endpoint == .unixSocket(directory: "/run/postgresql", port: 5432)
/// ```
public struct PostgreSQLURL: Sendable, Equatable, CustomStringConvertible {
    /// A TCP host and port, or libpq's Unix-socket form (`?host=/socket/dir`: the socket is
    /// `<dir>/.s.PGSQL.<port>`).
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unixSocket(directory: String, port: Int)
    }

    public var endpoint: Endpoint
    public var user: String
    /// A password written in the URL itself (`password_file` is the better place).
    public var password: String?
    public var database: String

    /// What a valid `url` looks like (for error messages).
    public static let expectation =
        "\"postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE\" or, for a Unix socket, "
        + "\"postgresql://USER@/DATABASE?host=/socket/dir\" (optional sslmode=disable)"

    /// The socket file of a Unix-socket endpoint.
    public var socketPath: String? {
        guard case .unixSocket(let directory, let port) = endpoint else { return nil }
        return URL(fileURLWithPath: directory).appendingPathComponent(".s.PGSQL.\(port)").path
    }

    /// The URL without its password (for logs and errors).
    public var description: String {
        switch endpoint {
        case .tcp(let host, let port):
            let shownHost = host.contains(":") ? "[\(host)]" : host
            return "postgresql://\(user)@\(shownHost):\(port)/\(database)"
        case .unixSocket(let directory, let port):
            return "postgresql://\(user)@/\(database)?host=\(directory)&port=\(port)"
        }
    }

    /// Parses a `postgresql://` (or `postgres://`) URL.
    /// - Throws: a reason naming what is wrong (the caller adds the key and line).
    public init(parsing text: String) throws(PostgreSQLURLError) {
        guard let components = URLComponents(string: text),
            let scheme = components.scheme, ["postgresql", "postgres"].contains(scheme)
        else { throw PostgreSQLURLError(reason: "not a postgresql:// URL") }
        guard let user = components.user, !user.isEmpty else {
            throw PostgreSQLURLError(reason: "no user (postgresql://USER@…)")
        }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !path.isEmpty, !path.contains("/") else {
            throw PostgreSQLURLError(reason: "no database name (…/DATABASE)")
        }
        var socketDirectory: String?
        var port = components.port ?? 5432
        for item in components.queryItems ?? [] {
            switch (item.name, item.value) {
            case ("host", let value?) where value.hasPrefix("/"): socketDirectory = value
            case ("host", let value):
                throw PostgreSQLURLError(reason: "host= must be an absolute socket directory, got \"\(value ?? "")\"")
            case ("port", let value?) where Int(value).map({ (1...65535).contains($0) }) == true:
                port = Int(value) ?? port
            case ("sslmode", "disable"): continue
            case ("sslmode", let value):
                throw PostgreSQLURLError(
                    reason: "sslmode \"\(value ?? "")\" is not supported (only sslmode=disable: use a Unix socket "
                        + "or a trusted network)"
                )
            default:
                throw PostgreSQLURLError(reason: "unknown parameter \"\(item.name)\"")
            }
        }
        guard (1...65535).contains(port) else { throw PostgreSQLURLError(reason: "port \(port) out of range") }
        if let socketDirectory {
            guard (components.host ?? "").isEmpty else {
                throw PostgreSQLURLError(reason: "both a host and ?host=/socket/dir")
            }
            endpoint = .unixSocket(directory: socketDirectory, port: port)
            guard (socketDirectory + "/.s.PGSQL.\(port)").utf8.count <= 107 else {
                throw PostgreSQLURLError(reason: "the socket path is longer than 107 bytes")
            }
        } else {
            guard let host = components.host, !host.isEmpty else {
                throw PostgreSQLURLError(reason: "no host (…@HOST/… or ?host=/socket/dir)")
            }
            endpoint = .tcp(host: host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: port)
        }
        self.user = user
        password = components.password
        database = path
    }
}

/// Why a `[postgresql] url` does not parse.
public struct PostgreSQLURLError: Error, Equatable {
    public var reason: String
}

/// The `[postgresql]` table: where the fleet's database is and how long leases last.
public struct PostgreSQLConfiguration: Sendable, Equatable {
    public var url: PostgreSQLURL
    /// A file holding the password (first line; read at start, so the configuration can stay readable).
    public var passwordFile: String?
    /// Seconds a claimed job's lease lasts; the node renews it every third of that while running.
    public var leaseSeconds: Double = 30
    /// Seconds after a lease expired before another node takes the job over (clock steps, a slow
    /// rename after the node's last check).
    public var settleSeconds: Double = 30

    public init(url: PostgreSQLURL, passwordFile: String? = nil) {
        self.url = url
        self.passwordFile = passwordFile
    }

    /// The password: the file's first line, or the URL's, or none.
    /// - Throws: `JobStoreError.cannotOpen` when the file cannot be read.
    public func password() throws -> String? {
        guard let passwordFile else { return url.password }
        do {
            let text = try String(contentsOfFile: passwordFile, encoding: .utf8)
            return String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
        } catch {
            throw JobStoreError.cannotOpen(
                path: url.description,
                reason: "cannot read password_file \(passwordFile): \((error as NSError).localizedDescription)"
            )
        }
    }
}
