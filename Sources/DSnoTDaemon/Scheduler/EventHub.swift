// SPDX-License-Identifier: Apache-2.0
// Fan-out of job events to `watch` subscribers; a slow subscriber drops old events, never blocks the daemon.

public import DSnoTControlProtocol
import Synchronization

/// Broadcasts `JobEvent`s to any number of subscribers (one per `dsnotctl watch`).
public final class EventHub: Sendable {
    private let subscribers = Mutex<[Int: AsyncStream<JobEvent>.Continuation]>([:])
    private let nextID = Mutex(0)

    public init() {}

    /// A stream of the events published from now on. Each subscriber buffers at most 256 events.
    public func subscribe() -> AsyncStream<JobEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: JobEvent.self, bufferingPolicy: .bufferingNewest(256))
        let id = nextID.withLock { value in
            value += 1
            return value
        }
        subscribers.withLock { $0[id] = continuation }
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        return stream
    }

    /// Sends an event to every subscriber.
    public func publish(_ event: JobEvent) {
        let current = subscribers.withLock { Array($0.values) }
        for continuation in current { continuation.yield(event) }
    }

    /// Ends every subscription (shutdown).
    public func finish() {
        let current = subscribers.withLock { dictionary in
            defer { dictionary.removeAll() }
            return Array(dictionary.values)
        }
        for continuation in current { continuation.finish() }
    }
}
