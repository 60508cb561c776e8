// SPDX-License-Identifier: Apache-2.0
// Watches inboxes (inotify + rescans) and queues each checkpoint once it is settled and complete.

import DSnoTPipeline
import Foundation
public import Logging
public import ServiceLifecycle

/// Finds checkpoints in the watched inboxes and queues them with the scheduler.
///
/// inotify watches each inbox and each checkpoint directory in it; a full rescan runs at start, after an
/// inotify queue overflow, after a lost watch and every `rescanInterval`. A candidate is queued once it
/// has been quiet for `settle` seconds and `CheckpointInspector.checkComplete` passes; the scheduler
/// ignores it if a job with the same fingerprint and recipe exists, so a changed checkpoint gets a new job.
public actor ModelWatcher: Service {
    /// The watcher's settings (replaced on reload).
    public struct Settings: Sendable, Equatable {
        public var watches: [WatchConfiguration]
        public var settle: Double
        public var rescanInterval: Double

        public init(_ configuration: DaemonConfiguration) {
            watches = configuration.watches
            settle = configuration.settle
            rescanInterval = configuration.rescanInterval
        }
    }

    struct Candidate {
        var watch: String
        var lastActivity: Date
    }

    private let scheduler: PruneScheduler
    private let logger: Logger
    private var settings: Settings
    private var candidates: [String: Candidate] = [:]
    private var lastRescan = Date.distantPast
    private var rescanRequested = true
    private var reported: Set<String> = []
    private var reader: InotifyReader?
    private var firstScanDone = false
    private var firstScanWaiters: [CheckedContinuation<Void, Never>] = []
    private let tick: Duration

    /// Creates a watcher. Nothing is watched before `run()`.
    public init(scheduler: PruneScheduler, settings: Settings, logger: Logger, tick: Duration = .milliseconds(250)) {
        self.scheduler = scheduler
        self.settings = settings
        self.logger = logger
        self.tick = tick
    }

    public func run() async throws {
        let reader = try InotifyReader()
        self.reader = reader
        reader.start()
        defer { reader.stop() }
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { [weak self] in
                    for await signal in reader.signals { await self?.handle(signal) }
                }
                while !Task.isCancelled && !Task.isShuttingDownGracefully {
                    await self.step()
                    try? await Task.sleep(for: tick)
                }
                reader.stop()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            reader.stop()
        }
    }

    /// Returns once the first full scan has queued what was ready at start (for `READY=1`).
    public func waitForFirstScan() async {
        if firstScanDone { return }
        await withCheckedContinuation { firstScanWaiters.append($0) }
    }

    /// Replaces the settings (reload) and rescans.
    public func apply(_ newSettings: Settings) {
        let removedInboxes = Set(settings.watches.map(\.inbox)).subtracting(newSettings.watches.map(\.inbox))
        for inbox in removedInboxes { reader?.unwatch(inbox) }
        settings = newSettings
        rescanRequested = true
    }

    func handle(_ signal: InotifySignal) {
        switch signal {
        case .overflow:
            logger.warning("inotify queue overflow, rescanning")
            rescanRequested = true
        case .watchLost(let directory):
            if settings.watches.contains(where: { $0.inbox == directory }) {
                logger.warning("Inbox watch lost, rescanning", metadata: ["inbox": "\(directory)"])
            }
            rescanRequested = true
        case .activity(let directory, let name):
            if let watch = settings.watches.first(where: { $0.inbox == directory }) {
                guard !CheckpointInspector.isIgnored(name) else { return }
                let path = URL(fileURLWithPath: directory).appendingPathComponent(name).path
                candidates[path] = Candidate(watch: watch.name, lastActivity: Date())
                reader?.watch(path)
            } else if let candidate = candidates[directory] {
                candidates[directory] = Candidate(watch: candidate.watch, lastActivity: Date())
            } else if let watch = settings.watches.first(where: {
                URL(fileURLWithPath: directory).deletingLastPathComponent().path == $0.inbox
            }) {
                candidates[directory] = Candidate(watch: watch.name, lastActivity: Date())
            }
        }
    }

    func step() async {
        let now = Date()
        if rescanRequested || now.timeIntervalSince(lastRescan) >= settings.rescanInterval {
            rescan(now: now)
        }
        for (path, candidate) in candidates where now.timeIntervalSince(candidate.lastActivity) >= settings.settle {
            await consider(path, candidate)
        }
        if !firstScanDone {
            firstScanDone = true
            for waiter in firstScanWaiters { waiter.resume() }
            firstScanWaiters = []
        }
    }

    private func rescan(now: Date) {
        rescanRequested = false
        lastRescan = now
        for watch in settings.watches {
            try? FileManager.default.createDirectory(atPath: watch.inbox, withIntermediateDirectories: true)
            if reader?.watch(watch.inbox) == false {
                logger.error("Cannot watch inbox, relying on rescans", metadata: ["inbox": "\(watch.inbox)"])
            }
            for name in (try? FileManager.default.contentsOfDirectory(atPath: watch.inbox)) ?? []
            where !CheckpointInspector.isIgnored(name) {
                let url = URL(fileURLWithPath: watch.inbox).appendingPathComponent(name)
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue
                else { continue }
                reader?.watch(url.path)
                if candidates[url.path] == nil {
                    let modified = CheckpointInspector.lastModified(url) ?? now
                    candidates[url.path] = Candidate(watch: watch.name, lastActivity: min(modified, now))
                }
            }
        }
    }

    private func consider(_ path: String, _ candidate: Candidate) async {
        let url = URL(fileURLWithPath: path)
        guard let watch = settings.watches.first(where: { $0.name == candidate.watch }) else {
            candidates.removeValue(forKey: path)
            return
        }
        guard FileManager.default.fileExists(atPath: path) else {
            candidates.removeValue(forKey: path)
            reader?.unwatch(path)
            return
        }
        do {
            try CheckpointInspector.checkComplete(url)
            let fingerprint = try CheckpointInspector.fingerprint(url)
            let recipe = try Self.recipe(for: url, watch: watch)
            candidates.removeValue(forKey: path)
            try await scheduler.enqueue(
                inputPath: path,
                fingerprint: fingerprint,
                watch: watch.name,
                outbox: watch.outbox,
                recipe: recipe,
                priority: watch.priority
            )
        } catch {
            // Not ready (still being written, truncated) or a bad dsnot.toml: look again after another
            // settle period; log once per distinct reason.
            candidates[path] = Candidate(watch: candidate.watch, lastActivity: Date())
            let message = "\(path): \(error)"
            if reported.insert(message).inserted {
                logger.info("Checkpoint not ready", metadata: ["model.path": "\(path)", "reason": "\(error)"])
            }
        }
    }

    /// The watch's recipe, overridden by the checkpoint's `dsnot.toml` if it has one, then by `submit --set`.
    static func recipe(for checkpoint: URL, watch: WatchConfiguration, overrides: [String: String] = [:]) throws
        -> PruneJobOptions
    {
        let file = checkpoint.appendingPathComponent("dsnot.toml")
        let source = try? String(contentsOf: file, encoding: .utf8)
        return try watch.recipe(dsnotTOML: source, file: file.path, checkpoint: checkpoint.path, overrides: overrides)
    }

    /// Paths waiting to settle or complete, for tests and status.
    public var pendingPaths: [String] { candidates.keys.sorted() }
}
