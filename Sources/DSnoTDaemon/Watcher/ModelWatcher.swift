// SPDX-License-Identifier: Apache-2.0
// Watches inboxes (inotify + rescans) and queues each checkpoint once it is settled and complete.

public import Foundation
public import Logging
import SafeTensors
public import ServiceLifecycle

/// Finds checkpoints in the watched inboxes and queues them with the scheduler.
///
/// inotify watches each inbox and each checkpoint directory in it; a full rescan runs at start, after an
/// inotify queue overflow, after a lost watch and every `rescanInterval`. A candidate is queued once it
/// has been quiet for `settle` seconds and `CheckpointInspector.inspect` passes; the scheduler
/// ignores it if a job with the same fingerprint and recipe exists, so a changed checkpoint gets a new job.
/// A checkpoint that is quiet but broken (truncated, invalid header or index, unreadable or bad
/// `dsnot.toml`, a FIFO or a link out of the directory) becomes a failed job stating why. Either way
/// its `CheckpointInspector.signature` is remembered, and it is not read again until that changes.
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
    /// Checkpoint path → its signature when it was last inspected, and whether it was broken then:
    /// unchanged, it is not read again.
    private var settled: [String: (signature: String, broken: Bool)] = [:]
    /// How many times a checkpoint was read (for tests: an unchanged broken checkpoint is read once).
    public private(set) var inspections = 0
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
        // A new recipe may make new jobs of unchanged complete checkpoints; a broken one stays failed.
        settled = settled.filter { $0.value.broken }
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
            settled.removeValue(forKey: path)
            reader?.unwatch(path)
            return
        }
        let signature = CheckpointInspector.signature(url)
        if settled[path]?.signature == signature {
            // Queued or failed already, unchanged since: nothing to read again.
            candidates.removeValue(forKey: path)
            return
        }
        inspections += 1
        let verdict = Result { () throws -> (String, RecipeConfiguration) in
            let fingerprint = try CheckpointInspector.inspect(url)
            return (fingerprint, try Self.recipe(for: url, watch: watch))
        }
        guard CheckpointInspector.signature(url) == signature else {
            // Changed while it was read: still being written, look again once it is quiet.
            candidates[path] = Candidate(watch: candidate.watch, lastActivity: Date())
            return
        }
        do {
            var broken = false
            switch verdict {
            case .success(let (fingerprint, recipe)):
                try await scheduler.enqueue(
                    inputPath: path,
                    fingerprint: fingerprint,
                    watch: watch.name,
                    outbox: watch.outbox,
                    recipe: recipe,
                    priority: watch.priority
                )
            case .failure(let problem as CheckpointNotReady) where !problem.isBroken:
                logger.debug("Not a checkpoint (yet)", metadata: ["model.path": "\(path)", "reason": "\(problem)"])
            case .failure(let error):
                // Quiet for `settle` seconds and still broken: a failed job says why, until it changes.
                broken = true
                try await scheduler.reject(
                    inputPath: path,
                    fingerprint: SHA256.hex(Array(signature.utf8)),
                    watch: watch.name,
                    outbox: watch.outbox,
                    recipe: watch.recipe,
                    priority: watch.priority,
                    reason: "\(error)"
                )
            }
            candidates.removeValue(forKey: path)
            settled[path] = (signature, broken)
        } catch {
            // The job store refused: keep the candidate and try again after another settle period.
            candidates[path] = Candidate(watch: candidate.watch, lastActivity: Date())
            logger.error("Cannot record checkpoint", metadata: ["model.path": "\(path)", "error": "\(error)"])
        }
    }

    /// The watch's recipe, overridden by the checkpoint's `dsnot.toml` if it has one.
    /// - Throws: `CheckpointNotReady.unreadable` when `dsnot.toml` cannot be read as UTF-8 text, or the
    ///   override's error.
    public static func recipe(for checkpoint: URL, watch: WatchConfiguration) throws -> RecipeConfiguration {
        guard let source = try recipeOverride(in: checkpoint) else { return watch.recipe }
        let file = checkpoint.appendingPathComponent(recipeOverrideName)
        return try watch.recipe.overridden(byTOML: source, file: file.path, baseDirectory: checkpoint)
    }

    static let recipeOverrideName = "dsnot.toml"
    /// Largest accepted `dsnot.toml`.
    static let maximumRecipeOverrideLength = 1 << 20

    /// The text of the checkpoint's `dsnot.toml`, or nil when it has none.
    /// - Throws: `CheckpointNotReady.unreadable` for a special file, a link out of the checkpoint, a read
    ///   error, an oversized file or bytes that are not UTF-8.
    static func recipeOverride(in checkpoint: URL) throws(CheckpointNotReady) -> String? {
        let bytes: [UInt8]
        do throws(InboxFileError) {
            let file = try InboxFile.open(recipeOverrideName, in: checkpoint)
            bytes = try file.readAll(limit: maximumRecipeOverrideLength)
        } catch .missing {
            return nil
        } catch {
            throw .unreadable(error.description)
        }
        if let offset = firstInvalidUTF8(bytes) {
            throw .unreadable(
                "'\(recipeOverrideName)' is not UTF-8 text: invalid byte 0x"
                    + String(bytes[offset], radix: 16, uppercase: true) + " at offset \(offset)"
            )
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The offset of the first byte that is not part of valid UTF-8, or nil.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int? {
        var parser = Unicode.UTF8.ForwardParser()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let scalar): offset += scalar.count
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }
}
