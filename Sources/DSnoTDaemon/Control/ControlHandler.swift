// SPDX-License-Identifier: Apache-2.0
// Answers control requests without any socket: decode, check version and permission, dispatch.

public import DSnoTControlProtocol
import DSnoTPipeline
public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// What the handler answers: one response, or a response followed by a stream of events (`watch`).
public enum ControlReply: Sendable {
    case response(ControlResponse)
    case stream(ControlResponse, AsyncStream<JobEvent>)

    /// The first (or only) response.
    public var response: ControlResponse {
        switch self {
        case .response(let response), .stream(let response, _): return response
        }
    }
}

/// Dispatches control requests to the scheduler and store. Transport-free, so tests call it directly.
///
/// ```swift
/// let reply = await handler.handle(line: Data(#"{"version":1,"command":"status"}"#.utf8), peer: peer)
/// ```
public struct ControlHandler: Sendable {
    let scheduler: PruneScheduler
    let store: any JobStore
    let events: EventHub
    let daemon: DaemonStatus
    let access: AccessPolicy
    let reload: @Sendable () async -> Result<String, ControlError>

    public init(
        scheduler: PruneScheduler,
        store: any JobStore,
        events: EventHub,
        daemon: DaemonStatus,
        access: AccessPolicy,
        reload: @escaping @Sendable () async -> Result<String, ControlError>
    ) {
        self.scheduler = scheduler
        self.store = store
        self.events = events
        self.daemon = daemon
        self.access = access
        self.reload = reload
    }

    /// Handles one request line (without its newline), decoded by `StrictRequestDecoder`.
    public func handle(line: Data, peer: PeerCredentials) async -> ControlReply {
        do {
            let request = try StrictRequestDecoder.decode(line)
            return await handle(request, peer: peer)
        } catch {
            return .response(.failure(error, id: Self.requestID(in: line)))
        }
    }

    /// Handles a decoded request.
    public func handle(_ request: ControlRequest, peer: PeerCredentials) async -> ControlReply {
        guard request.version == ProtocolVersion.current else {
            return .response(
                .failure(
                    ControlError(
                        code: .versionMismatch,
                        message: "client speaks protocol v\(request.version), dsnotd speaks v\(ProtocolVersion.current)"
                    ),
                    id: request.id
                )
            )
        }
        if request.command.isMutating && !access.mayWrite(peer) {
            return .response(
                .failure(
                    ControlError(
                        code: .permissionDenied,
                        message: "'\(request.command.name)' changes the daemon; it needs \(access.writersDescription) "
                            + "(you are uid \(peer.uid))"
                    ),
                    id: request.id
                )
            )
        }
        do {
            return try await dispatch(request.command, id: request.id)
        } catch let error as ControlError {
            return .response(.failure(error, id: request.id))
        } catch {
            return .response(.failure(ControlError(code: .internalError, message: "\(error)"), id: request.id))
        }
    }

    private func dispatch(_ command: ControlCommand, id: Int?) async throws -> ControlReply {
        var response = ControlResponse(id: id)
        switch command {
        case .status:
            response.status = try await status()
        case .list(let state, let watch, let limit):
            var jobs = try store.jobs(state: state, watch: watch, limit: limit)
            for index in jobs.indices where jobs[index].state == .running {
                jobs[index] = try await scheduler.job(id: jobs[index].id)
            }
            response.jobs = jobs
        case .show(let job):
            response.job = try await scheduler.job(id: job)
            response.history = try store.history(jobID: job).map {
                JobHistoryItem(at: $0.at, from: $0.from, to: $0.to, detail: $0.detail)
            }
        case .submit(let path, let overrides, let priority):
            response.job = try await submit(path: path, overrides: overrides, priority: priority)
        case .cancel(let job):
            response.job = try await scheduler.cancel(id: job)
        case .retry(let job):
            response.job = try await scheduler.retry(id: job)
        case .pause(let watch):
            response.message = try await scheduler.pause(watch: watch)
        case .resume(let watch):
            response.message = try await scheduler.resume(watch: watch)
        case .reload:
            switch await reload() {
            case .success(let message): response.message = message
            case .failure(let error): throw error
            }
        case .watch(let job):
            if let job { _ = try await scheduler.job(id: job) }
            let stream = events.subscribe()
            response.message = job.map { "watching job \($0)" } ?? "watching all jobs"
            guard let job else { return .stream(response, stream) }
            return .stream(
                response,
                AsyncStream { continuation in
                    let task = Task {
                        for await event in stream where event.job.id == job { continuation.yield(event) }
                        continuation.finish()
                    }
                    continuation.onTermination = { _ in task.cancel() }
                }
            )
        }
        return .response(response)
    }

    private func status() async throws -> StatusReport {
        let snapshot = try await scheduler.snapshot()
        let configuration = await daemon.configuration
        let startedAt = daemon.startedAt
        var state = await daemon.state
        if state == .running && snapshot.paused { state = .paused }
        var report = StatusReport(
            state: state,
            pid: getpid(),
            startedAt: startedAt,
            uptimeSeconds: Date().timeIntervalSince(startedAt),
            configPath: await daemon.configPath,
            counts: snapshot.counts,
            running: snapshot.running,
            waitingReason: snapshot.paused ? "queue paused" : snapshot.waitingReason,
            watches: configuration.watches.map {
                WatchSummary(
                    name: $0.name,
                    inbox: $0.inbox,
                    outbox: $0.outbox,
                    recipe: $0.recipe.recipe.label,
                    paused: snapshot.pausedWatches.contains($0.name)
                )
            }
        )
        report.node = configuration.nodeName
        report.nodes = await scheduler.nodes()
        return report
    }

    private func submit(path: String, overrides: [String: String], priority: Int?) async throws -> JobRecord {
        guard path.hasPrefix("/") else {
            throw ControlError(code: .invalidArgument, message: "path '\(path)' is not absolute")
        }
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let configuration = await daemon.configuration
        guard let watch = configuration.watches.first else {
            throw ControlError(code: .invalidState, message: "no [[watch]] is configured, so there is no outbox")
        }
        do {
            try CheckpointInspector.checkComplete(url)
        } catch {
            throw ControlError(code: .invalidArgument, message: "\(url.path) is not a complete checkpoint: \(error)")
        }
        let recipe: PruneJobOptions
        do {
            recipe = try ModelWatcher.recipe(for: url, watch: watch, overrides: overrides)
        } catch {
            throw ControlError(code: .invalidArgument, message: "\(error)")
        }
        let fingerprint = try CheckpointInspector.fingerprint(url)
        return try await scheduler.enqueue(
            inputPath: url.path,
            fingerprint: fingerprint,
            watch: "submit",
            outbox: watch.outbox,
            recipe: recipe,
            priority: priority ?? watch.priority
        ).job
    }

    private static func requestID(in line: Data) -> Int? {
        struct OnlyID: Decodable { var id: Int? }
        return (try? JSONDecoder().decode(OnlyID.self, from: line))?.id
    }
}
