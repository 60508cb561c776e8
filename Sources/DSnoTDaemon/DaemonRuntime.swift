// SPDX-License-Identifier: Apache-2.0
// Wires the daemon together: store, scheduler, watcher, control server, readiness, reload, watchdog.

public import DSnoTControlProtocol
import Foundation
public import Logging
public import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

/// The assembled daemon. `dsnotd` creates one, calls `prepare()`, and runs `services` in a `ServiceGroup`.
///
/// ```swift
/// let runtime = try DaemonRuntime(configuration: configuration, configPath: path, logger: logger)
/// try await runtime.prepare()
/// let group = ServiceGroup(configuration: .init(services: runtime.services.map { .init(service: $0) },
///                                               gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
/// try await group.run()
/// ```
public final class DaemonRuntime: Sendable {
    public let store: any JobStore
    public let scheduler: PruneScheduler
    public let watcher: ModelWatcher
    public let status: DaemonStatus
    public let events: EventHub
    public let metrics: DaemonMetrics
    public let notifier: SystemdNotifier
    let logger: Logger
    let configPath: String?
    /// Resolved once at start: changing `admin_group` takes a restart.
    let adminGroup: String?
    /// Resolved once at start: changing `metrics_listen` takes a restart.
    let metricsEndpoint: MetricsEndpoint?
    let listener: ControlServer.Listener
    /// `ControlLimits.standard` fitted to the descriptor limit raised at start.
    let controlLimits: ControlLimits
    let socketReady: AsyncStream<Void>
    let socketReadyContinuation: AsyncStream<Void>.Continuation

    /// Opens the job database and builds every part; nothing runs yet.
    /// - Throws: `JobStoreError` when the state directory or database cannot be opened.
    public init(
        configuration: DaemonConfiguration,
        configPath: String?,
        runner: (any JobRunner)? = nil,
        logger: Logger,
        notifier: SystemdNotifier = SystemdNotifier()
    ) throws {
        store = try Self.openStore(configuration, logger: logger)
        events = EventHub()
        metrics = DaemonMetrics()
        scheduler = PruneScheduler(
            store: store,
            runner: runner ?? PipelineJobRunner(logger: logger),
            settings: .init(configuration),
            events: events,
            metrics: metrics,
            logger: logger
        )
        watcher = ModelWatcher(scheduler: scheduler, settings: .init(configuration), logger: logger)
        status = DaemonStatus(configuration: configuration, configPath: configPath)
        self.notifier = notifier
        self.logger = logger
        self.configPath = configPath
        adminGroup = configuration.adminGroup
        metricsEndpoint = configuration.metricsListen
        listener = SocketActivation.listeningDescriptor().map { .activated($0) } ?? .path(configuration.socketPath)
        if case .path = listener {
            let directory = URL(fileURLWithPath: configuration.socketPath).deletingLastPathComponent().path
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        (socketReady, socketReadyContinuation) = AsyncStream.makeStream(of: Void.self)
        let descriptors = DescriptorLimit.raiseSoftToHard()
        controlLimits = ControlLimits.standard.fitted(toDescriptorLimit: descriptors)
        logger.info(
            "Control connection limits",
            metadata: [
                "descriptors": "\(descriptors)",
                "connections": "\(controlLimits.maximumConnections)",
                "connections.per_uid": "\(controlLimits.maximumConnectionsPerUser)",
            ]
        )
    }

    /// Opens the configured job store: `<state_dir>/jobs.sqlite`, or the fleet's PostgreSQL database
    /// (connected, logged in and migrated: `dsnotd --check-config` calls this too).
    /// - Throws: `JobStoreError` (`cannotOpen` naming the database and the server's reason, or
    ///   `schemaTooNew`).
    public static func openStore(_ configuration: DaemonConfiguration, logger: Logger) throws -> any JobStore {
        if configuration.jobStore == .postgresql, let postgresql = configuration.postgresql {
            return try PostgreSQLJobStore(configuration: postgresql, logger: logger)
        }
        do {
            try FileManager.default.createDirectory(
                atPath: configuration.stateDirectory,
                withIntermediateDirectories: true
            )
        } catch {
            throw JobStoreError.cannotOpen(path: configuration.stateDirectory, reason: "\(error)")
        }
        return try SQLiteJobStore(
            path: URL(fileURLWithPath: configuration.stateDirectory).appendingPathComponent("jobs.sqlite").path
        )
    }

    /// Start-up recovery: re-queues interrupted jobs and removes orphaned temp outputs.
    public func prepare() async throws {
        let requeued = try await scheduler.recover()
        let notifier = self.notifier
        await scheduler.setStatusLineHandler { notifier.status($0) }
        if !requeued.isEmpty {
            logger.notice(
                "Re-queued interrupted jobs",
                metadata: ["event": "job.requeued", "jobs": "\(requeued.count)"]
            )
        }
    }

    /// The services to run, in start order.
    public var services: [any Service] {
        var services: [any Service] = [
            scheduler,
            watcher,
            ControlServer(
                handler: makeHandler(),
                listener: listener,
                logger: logger,
                limits: controlLimits,
                ready: { [socketReadyContinuation] in socketReadyContinuation.yield() }
            ),
            LifecycleService(runtime: self),
        ]
        if let watchdog = WatchdogService(notifier: notifier) { services.append(watchdog) }
        if let metricsEndpoint {
            let (metrics, store, logger) = (self.metrics, self.store, self.logger)
            services.append(
                MetricsServer(endpoint: metricsEndpoint, logger: logger) {
                    var counts: [JobState: Int]?
                    do { counts = try store.counts() } catch {
                        logger.error("Metrics: cannot count jobs", metadata: ["error": "\(error)"])
                    }
                    return metrics.render(counts: counts)
                }
            )
        }
        return services
    }

    func makeHandler() -> ControlHandler {
        ControlHandler(
            scheduler: scheduler,
            store: store,
            events: events,
            daemon: status,
            access: AccessPolicy(daemonUID: getuid(), adminGroup: adminGroup),
            reload: { [self] in await self.reload() }
        )
    }

    /// Re-reads the configuration. An invalid file is rejected and the old configuration stays.
    public func reload() async -> Result<String, ControlError> {
        notifier.reloading()
        await status.setState(.reloading)
        defer { notifier.ready(status: "running") }
        let old = await status.configuration
        let new: DaemonConfiguration
        do {
            new = try ConfigurationLoader.resolve(explicitPath: configPath).0
        } catch {
            await status.setState(.running)
            logger.error(
                "Configuration rejected, keeping the old one",
                metadata: ["event": "config.rejected", "error": "\(error)"]
            )
            return .failure(
                ControlError(code: .reloadFailed, message: "\(error); the old configuration stays in force")
            )
        }
        await scheduler.apply(.init(new))
        await watcher.apply(.init(new))
        await status.setConfiguration(new)
        await status.setState(.running)
        var message = "configuration reloaded: \(new.watches.count) watch(es)"
        if new.socketPath != old.socketPath || new.stateDirectory != old.stateDirectory
            || new.adminGroup != old.adminGroup || new.metricsListen != old.metricsListen
        {
            message += "; socket, state_dir, admin_group and metrics_listen changes take effect at restart"
        }
        logger.notice("Configuration reloaded", metadata: ["event": "config.reloaded"])
        return .success(message)
    }
}

/// READY=1 once the socket, database and first scan are up; SIGHUP reloads; STOPPING=1 at shutdown.
struct LifecycleService: Service {
    let runtime: DaemonRuntime

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await _ in runtime.socketReady { break }
            await runtime.watcher.waitForFirstScan()
            runtime.notifier.ready(status: "running")
            runtime.logger.notice("dsnotd started", metadata: ["event": "daemon.started", "pid": "\(getpid())"])
            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                _ = await runtime.reload()
            }
        }
        runtime.notifier.stopping()
        await runtime.status.setState(.stopping)
        runtime.logger.notice("dsnotd stopping", metadata: ["event": "daemon.stopping"])
    }
}
