// SPDX-License-Identifier: Apache-2.0
// The scheduler: an actor owning the queue, starting jobs on dedicated threads, committing every transition.

import DSnoTControlProtocol
public import Foundation
public import Logging
public import ServiceLifecycle

/// Runs queued jobs, `workers` at a time, each on its own thread through a `JobRunner`.
///
/// State changes go through `JobStateMachine` and are committed to the `JobStore` before their side
/// effect (creating the temp output, renaming it into place). Cancel and shutdown are honoured at the
/// runner's next block boundary; on graceful shutdown running jobs are re-queued.
///
/// ```swift
/// let scheduler = PruneScheduler(store: store, runner: PipelineJobRunner(logger: logger), settings: .init(configuration),
///                                events: EventHub(), logger: logger)
/// try await scheduler.recover()
/// try await ServiceGroup(services: [scheduler], logger: logger).run()
/// ```
public actor PruneScheduler: Service {
    /// The parts of the configuration the scheduler uses (replaced on reload).
    public struct Settings: Sendable, Equatable {
        public var workers: Int
        public var memoryBudget: Int
        public var freeDiskMargin: Int
        public var watches: [WatchConfiguration]
        public var retryPolicy: RetryPolicy
        /// Longest wait for running jobs to reach a block boundary at shutdown.
        public var shutdownTimeout: Double
        /// Jobs keep resume points and continue from them after a restart (`resume` in dsnotd.toml).
        public var resume: Bool
        /// This node's name (`node_name`): recorded in the jobs it claims.
        public var node: String
        /// Leases of a shared job store (nil: SQLite, this node alone owns the store).
        public var lease: Lease?

        /// How long a claimed job's lease lasts, and how long after it expired others take the job.
        public struct Lease: Sendable, Equatable {
            public var seconds: Double
            public var settle: Double

            public init(seconds: Double, settle: Double) {
                self.seconds = seconds
                self.settle = settle
            }
        }

        public init(_ configuration: DaemonConfiguration, retryPolicy: RetryPolicy? = nil) {
            workers = configuration.workers
            memoryBudget = configuration.effectiveMemoryBudget
            freeDiskMargin = configuration.freeDiskMargin
            watches = configuration.watches
            self.retryPolicy =
                retryPolicy
                ?? RetryPolicy(maximumAttempts: configuration.maxAttempts, baseDelay: configuration.retryDelay)
            shutdownTimeout = 60
            resume = configuration.resume
            node = configuration.nodeName
            lease = configuration.postgresql.map { Lease(seconds: $0.leaseSeconds, settle: $0.settleSeconds) }
            if configuration.jobStore == .sqlite { lease = nil }
        }
    }

    enum Event: Sendable {
        case wake
        case progress(String, JobProgress)
        case finished(String, Result<JobOutcome, any Error>)
        case shutdown
    }

    struct RunningJob {
        var record: JobRecord
        let flag: CancelFlag
        let estimate: ResourceEstimate
        var pruningStarted: Date?
        /// When this node last renewed the job's lease (claiming counts).
        var leaseRenewedAt: Date
        /// The store no longer gives this node the job: it stops and never publishes.
        var leaseLost = false
    }

    let store: any JobStore
    let runner: any JobRunner
    let events: EventHub
    /// Where committed transitions are counted (the metrics endpoint), if anywhere.
    let metrics: DaemonMetrics?
    let logger: Logger
    let now: @Sendable () -> Date
    let diskSpace: @Sendable (String) -> DiskSpace
    var settings: Settings
    var running: [String: RunningJob] = [:]
    var globalPaused = false
    var pausedWatches: Set<String>
    var waitingReason: String?
    /// Estimates of queued jobs (`runner.estimate` opens the checkpoint), kept while they wait.
    var estimates: [String: ResourceEstimate] = [:]
    var stopping = false
    /// When this process started, and last wrote its heartbeat (`dsnotctl status` lists the nodes).
    let processStartedAt: Date
    var lastHeartbeat: Date?
    var stopRequestedAt: Date?
    /// Called with a one-line status after every change (for `STATUS=`).
    var onStatusLine: (@Sendable (String) -> Void)?
    var lastStatusLine: String?
    let (eventStream, eventContinuation) = AsyncStream.makeStream(of: Event.self)

    /// Creates a scheduler. No work starts before `run()`.
    public init(
        store: any JobStore,
        runner: any JobRunner,
        settings: Settings,
        events: EventHub,
        metrics: DaemonMetrics? = nil,
        logger: Logger,
        now: @escaping @Sendable () -> Date = { Date() },
        diskSpace: @escaping @Sendable (String) -> DiskSpace = PruneScheduler.statvfsDiskSpace
    ) {
        self.store = store
        self.runner = runner
        self.settings = settings
        self.events = events
        self.metrics = metrics
        self.logger = logger
        self.now = now
        self.diskSpace = diskSpace
        self.pausedWatches = Set(settings.watches.filter(\.paused).map(\.name))
        self.processStartedAt = now()
    }

    /// Sets the status-line callback.
    public func setStatusLineHandler(_ handler: @escaping @Sendable (String) -> Void) {
        onStatusLine = handler
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                let continuation = eventContinuation
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        continuation.yield(.wake)
                    }
                }
                await self.loop()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.eventContinuation.yield(.shutdown)
        }
        events.finish()
    }

    /// Asks the scheduler to look at the queue again soon.
    nonisolated func wake() { eventContinuation.yield(.wake) }

    private func loop() async {
        scheduleNext()
        for await event in eventStream {
            switch event {
            case .wake: maintainLeases()
            case .progress(let id, let progress): handleProgress(id, progress)
            case .finished(let id, let result): handleFinished(id, result)
            case .shutdown:
                stopping = true
                stopRequestedAt = now()
                for job in running.values { job.flag.set(.shutdown) }
                logger.notice(
                    "Stopping: running jobs stop at the next block boundary",
                    metadata: ["jobs": "\(running.count)"]
                )
            }
            if stopping {
                if running.isEmpty { return }
                if let since = stopRequestedAt, now().timeIntervalSince(since) > settings.shutdownTimeout {
                    logger.error("Shutdown timeout: jobs left running are re-queued at next start")
                    return
                }
            } else {
                scheduleNext()
            }
        }
    }
}
