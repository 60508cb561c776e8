// SPDX-License-Identifier: Apache-2.0
// Parses and validates dsnotd.toml: unknown keys and bad values are errors with key and line.

import DSnoTPipeline
public import Foundation
import Logging
import TOMLKit

/// Loads `dsnotd.toml`.
public enum ConfigurationLoader {
    /// Reads and validates the file at `path`.
    /// - Throws: `ConfigurationError`.
    public static func load(path: String) throws(ConfigurationError) -> DaemonConfiguration {
        let source: String
        do {
            source = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw .unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().standardizedFileURL
        return try parse(source, file: path, baseDirectory: directory)
    }

    /// The configuration in force when `dsnotd` starts: `--config PATH` if given, else
    /// `/etc/dsnot/dsnotd.toml` if it exists, else the unprivileged default in the current directory.
    public static func resolve(explicitPath: String?) throws(ConfigurationError) -> (DaemonConfiguration, String?) {
        if let explicitPath { return (try load(path: explicitPath), explicitPath) }
        if FileManager.default.fileExists(atPath: DaemonConfiguration.systemPath) {
            return (try load(path: DaemonConfiguration.systemPath), DaemonConfiguration.systemPath)
        }
        return (.unprivilegedDefault(in: FileManager.default.currentDirectoryPath), nil)
    }

    /// Parses a configuration document. Relative paths are resolved against `baseDirectory`.
    public static func parse(_ source: String, file: String, baseDirectory: URL) throws(ConfigurationError)
        -> DaemonConfiguration
    {
        let (table, locator) = try TOMLFields.parseDocument(source, file: file)
        var top = TOMLFields(table, path: "", file: file, locator: locator)
        // A configuration file means a system install: its defaults are the systemd unit's directories
        // (StateDirectory=dsnot; the socket unit listens on /run/dsnotd.sock), not the working directory.
        var config = DaemonConfiguration.unprivilegedDefault(in: baseDirectory.path)
        config.stateDirectory = DaemonConfiguration.systemStateDirectory
        config.socketPath = DaemonConfiguration.systemSocketPath
        if let dir = try top.string("state_dir") {
            config.stateDirectory = TOMLFields.resolve(dir, baseDirectory)
        }
        if let socket = try top.string("socket") {
            config.socketPath = TOMLFields.resolve(socket, baseDirectory)
            guard config.socketPath.utf8.count <= 107 else {
                throw top.invalid(
                    "socket",
                    expected: "a path of at most 107 bytes",
                    got: "\(config.socketPath.utf8.count) bytes"
                )
            }
        }
        if let group = try top.string("admin_group") { config.adminGroup = group.isEmpty ? nil : group }
        if let workers = try top.int("workers", range: 1...64) { config.workers = workers }
        if let interval = try top.double("rescan_interval") {
            guard interval >= 1, interval.isFinite else {
                throw top.invalid("rescan_interval", expected: "seconds ≥ 1", got: "\(interval)")
            }
            config.rescanInterval = interval
        }
        if let settle = try top.double("settle") {
            guard settle >= 0, settle.isFinite else {
                throw top.invalid("settle", expected: "seconds ≥ 0", got: "\(settle)")
            }
            config.settle = settle
        }
        if let margin = try top.size("free_disk_margin") { config.freeDiskMargin = margin }
        if let delay = try top.double("retry_delay") {
            guard delay >= 0.1, delay.isFinite else {
                throw top.invalid("retry_delay", expected: "seconds ≥ 0.1", got: "\(delay)")
            }
            config.retryDelay = delay
        }
        if let attempts = try top.int("max_attempts", range: 1...100) { config.maxAttempts = attempts }
        if let resume = try top.bool("resume") { config.resume = resume }
        if let budget = try top.size("memory_budget") { config.memoryBudget = budget }
        if let listen = try top.string("metrics_listen"), !listen.isEmpty {
            guard let endpoint = MetricsEndpoint(parsing: listen) else {
                throw top.invalid("metrics_listen", expected: MetricsEndpoint.expectation, got: "\"\(listen)\"")
            }
            config.metricsListen = endpoint
        }
        if let level = try top.string("log_level") {
            guard let parsed = Logger.Level(rawValue: level) else {
                throw top.invalid(
                    "log_level",
                    expected: "one of trace, debug, info, notice, warning, error, critical",
                    got: "\"\(level)\""
                )
            }
            config.logLevel = parsed
        }
        try parseJobStore(&top, into: &config, file: file, locator: locator, baseDirectory: baseDirectory)
        config.watches = try parseWatches(&top, file: file, locator: locator, baseDirectory: baseDirectory)
        try top.rejectUnknownKeys()
        return config
    }

    /// `job_store`, `node_name` and the `[postgresql]` table (required with `job_store = "postgresql"`).
    private static func parseJobStore(
        _ top: inout TOMLFields,
        into config: inout DaemonConfiguration,
        file: String,
        locator: TOMLKeyLocator,
        baseDirectory: URL
    ) throws(ConfigurationError) {
        if let kind = try top.string("job_store") {
            guard let parsed = JobStoreKind(rawValue: kind) else {
                throw top.invalid("job_store", expected: "\"sqlite\" or \"postgresql\"", got: "\"\(kind)\"")
            }
            config.jobStore = parsed
        }
        if let name = try top.string("node_name") {
            guard !name.isEmpty, name.utf8.count <= 255,
                name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) })
            else {
                throw top.invalid(
                    "node_name",
                    expected: "1 to 255 ASCII letters, digits, '-', '_' or '.'",
                    got: "\"\(name)\""
                )
            }
            config.nodeName = name
        }
        guard let value = top.value("postgresql") else {
            if config.jobStore == .postgresql { throw .missingKey(file: file, key: "postgresql.url") }
            return
        }
        guard let table = value.table else {
            throw top.invalid("postgresql", expected: "a table ([postgresql])", got: TOMLFields.show(value))
        }
        guard config.jobStore == .postgresql else {
            throw top.conflict("postgresql", "[postgresql] is only read with job_store = \"postgresql\"")
        }
        var fields = TOMLFields(table, path: "postgresql", file: file, locator: locator)
        guard let text = try fields.string("url") else { throw .missingKey(file: file, key: "postgresql.url") }
        let url: PostgreSQLURL
        do { url = try PostgreSQLURL(parsing: text) } catch {
            throw fields.invalid("url", expected: PostgreSQLURL.expectation, got: "\"\(text)\" (\(error.reason))")
        }
        var postgresql = PostgreSQLConfiguration(url: url)
        if let passwordFile = try fields.string("password_file") {
            guard url.password == nil else {
                throw fields.conflict("password_file", "the url has a password too: keep it in one place")
            }
            postgresql.passwordFile = TOMLFields.resolve(passwordFile, baseDirectory)
        }
        if let lease = try fields.double("lease") {
            guard lease >= 1, lease <= 3600, lease.isFinite else {
                throw fields.invalid("lease", expected: "seconds in 1...3600", got: "\(lease)")
            }
            postgresql.leaseSeconds = lease
        }
        if let settle = try fields.double("lease_settle") {
            guard settle >= 0, settle <= 3600, settle.isFinite else {
                throw fields.invalid("lease_settle", expected: "seconds in 0...3600", got: "\(settle)")
            }
            postgresql.settleSeconds = settle
        }
        try fields.rejectUnknownKeys()
        config.postgresql = postgresql
    }

    private static func parseWatches(
        _ top: inout TOMLFields,
        file: String,
        locator: TOMLKeyLocator,
        baseDirectory: URL
    ) throws(ConfigurationError) -> [WatchConfiguration] {
        guard let value = top.value("watch") else { return [] }
        guard let array = value.array else {
            throw top.invalid("watch", expected: "an array of tables ([[watch]])", got: TOMLFields.show(value))
        }
        var watches: [WatchConfiguration] = []
        for (index, element) in array.enumerated() {
            guard let table = element.table else {
                throw top.invalid("watch[\(index)]", expected: "a table", got: TOMLFields.show(element))
            }
            var fields = TOMLFields(table, path: "watch[\(index)]", file: file, locator: locator)
            let name = try fields.string("name") ?? "watch\(index)"
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw fields.invalid("name", expected: "letters, digits, '-', '_' or '.'", got: "\"\(name)\"")
            }
            if watches.contains(where: { $0.name == name }) {
                throw fields.conflict("name", "another watch is already named '\(name)'")
            }
            guard let inbox = try fields.string("inbox") else {
                throw .missingKey(file: file, key: fields.keyPath("inbox"))
            }
            guard let outbox = try fields.string("outbox") else {
                throw .missingKey(file: file, key: fields.keyPath("outbox"))
            }
            var watch = WatchConfiguration(
                name: name,
                inbox: TOMLFields.resolve(inbox, baseDirectory),
                outbox: TOMLFields.resolve(outbox, baseDirectory)
            )
            if watch.inbox == watch.outbox { throw fields.conflict("outbox", "outbox must differ from inbox") }
            watch.priority = try fields.int("priority", range: -1000...1000) ?? 0
            watch.paused = try fields.bool("paused") ?? false
            if let recipeValue = fields.value("recipe") {
                guard let recipeTable = recipeValue.table else {
                    throw fields.invalid("recipe", expected: "a table", got: TOMLFields.show(recipeValue))
                }
                let recipeFields = TOMLFields(recipeTable, path: fields.keyPath("recipe"), file: file, locator: locator)
                watch.recipeDocument = try RecipeDocument(recipeFields, baseDirectory: baseDirectory.path)
                watch.recipe = try watch.recipeDocument.decode(file: file, prefix: recipeFields.path, locator: locator)
            }
            try fields.rejectUnknownKeys()
            watches.append(watch)
        }
        return watches
    }
}
