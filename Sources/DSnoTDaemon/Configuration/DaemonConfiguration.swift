// SPDX-License-Identifier: Apache-2.0
// dsnotd's configuration: global settings and the list of watches (inbox → outbox with a recipe).

public import DSnoTPipeline
import Foundation
public import Logging

/// One watched inbox: checkpoints appearing in `inbox` are pruned with `recipe` into `outbox`.
public struct WatchConfiguration: Sendable, Equatable {
    /// Unique name (`dsnotctl list --watch NAME`, `dsnotctl pause NAME`).
    public var name: String
    /// Absolute path of the inbox directory.
    public var inbox: String
    /// Absolute path of the outbox directory (same filesystem as the temp outputs).
    public var outbox: String
    /// Higher runs first.
    public var priority: Int
    /// Start paused.
    public var paused: Bool
    /// `[watch.recipe]` as written (relative paths resolved): what a checkpoint's `dsnot.toml` and
    /// `submit --set` overlay.
    public var recipeDocument: RecipeDocument
    /// `recipeDocument` decoded and validated.
    public var recipe: PruneJobOptions

    /// Creates a watch.
    public init(
        name: String,
        inbox: String,
        outbox: String,
        priority: Int = 0,
        paused: Bool = false,
        recipeDocument: RecipeDocument = RecipeDocument(),
        recipe: PruneJobOptions = .defaults
    ) {
        self.name = name
        self.inbox = inbox
        self.outbox = outbox
        self.priority = priority
        self.paused = paused
        self.recipeDocument = recipeDocument
        self.recipe = recipe
    }
}

/// The whole configuration (`dsnotd.toml(5)`).
///
/// ```swift
/// let configuration = try ConfigurationLoader.load(path: "/etc/dsnot/dsnotd.toml")
/// print(configuration.socketPath, configuration.watches.map(\.name))
/// ```
public struct DaemonConfiguration: Sendable, Equatable {
    /// The system configuration file.
    public static let systemPath = "/etc/dsnot/dsnotd.toml"
    /// `state_dir` when a configuration file does not set it.
    public static let systemStateDirectory = "/var/lib/dsnot"
    /// `socket` when a configuration file does not set it.
    public static let systemSocketPath = "/run/dsnotd.sock"

    /// Where the job database lives.
    public var stateDirectory: String
    /// The control socket (ignored under socket activation).
    public var socketPath: String
    /// Members of this group may run mutating commands; nil = only root and the daemon's user.
    public var adminGroup: String?
    /// Jobs run at once.
    public var workers: Int
    /// Seconds between full rescans of every inbox.
    public var rescanInterval: Double
    /// Seconds a checkpoint directory must stay quiet before it is considered.
    public var settle: Double
    /// Bytes of free disk to keep in the outbox after a job's estimated output.
    public var freeDiskMargin: Int
    /// Bytes a job may use; 0 = 80 % of physical memory.
    public var memoryBudget: Int
    public var logLevel: Logger.Level
    public var watches: [WatchConfiguration]
    /// Seconds before the first retry of a retryable failure (disk full, I/O); doubles per attempt.
    public var retryDelay: Double = 30
    /// Attempts a job gets before a retryable failure becomes final.
    public var maxAttempts: Int = 4
    /// Where the Prometheus endpoint listens (`metrics_listen`); nil = no endpoint (the default).
    public var metricsListen: MetricsEndpoint? = nil
    /// Keep a resume point per finished block in the job's staging directory, and continue an
    /// interrupted job (crash, kill, restart) from its last finished block instead of block 0.
    public var resume = true
    /// Where jobs are kept: the embedded SQLite file (one node) or a PostgreSQL database several
    /// nodes share (`job_store`, docs/design.md "Fleet").
    public var jobStore: JobStoreKind = .sqlite
    /// `[postgresql]`: required with `job_store = "postgresql"`, refused otherwise.
    public var postgresql: PostgreSQLConfiguration? = nil
    /// This node's name in job records and `dsnotctl status` (`node_name`; default: the hostname).
    public var nodeName: String = DaemonConfiguration.defaultNodeName

    /// The host's name (`gethostname`), or `"localhost"` when it has none.
    public static var defaultNodeName: String {
        let name = ProcessInfo.processInfo.hostName
        return name.isEmpty ? "localhost" : name
    }

    /// The documented default for running without a config file: everything under the current
    /// directory, so an unprivileged `dsnotd` (and `make run`) works: `.dsnot/state`, `.dsnot/dsnotd.sock`,
    /// one watch `default` from `inbox/` to `outbox/` with the default recipe.
    public static func unprivilegedDefault(in directory: String) -> DaemonConfiguration {
        let base = URL(fileURLWithPath: directory)
        return DaemonConfiguration(
            stateDirectory: base.appendingPathComponent(".dsnot/state").path,
            socketPath: ".dsnot/dsnotd.sock",
            adminGroup: nil,
            workers: 1,
            rescanInterval: 300,
            settle: 10,
            freeDiskMargin: 1 << 30,
            memoryBudget: 0,
            logLevel: .info,
            watches: [
                WatchConfiguration(
                    name: "default",
                    inbox: base.appendingPathComponent("inbox").path,
                    outbox: base.appendingPathComponent("outbox").path
                )
            ]
        )
    }

    /// Memory budget in bytes, resolving 0 to 80 % of physical memory.
    public var effectiveMemoryBudget: Int {
        memoryBudget > 0 ? memoryBudget : Int(Double(ProcessInfo.processInfo.physicalMemory) * 0.8)
    }

    /// The watch with that name.
    public func watch(named name: String) -> WatchConfiguration? {
        watches.first { $0.name == name }
    }
}
