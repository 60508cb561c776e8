// SPDX-License-Identifier: Apache-2.0
// Counts open control connections, in total and per uid, and admits or refuses a new one.

import Synchronization

/// The admission decision for control connections under `ControlLimits`. Thread-safe: the event
/// loops admit and release concurrently.
///
/// ```swift
/// let limiter = ConnectionLimiter(limits: .standard)
/// if case .refused(let reason, _) = limiter.admit(peer, isWriter: { policy.mayWrite(peer) }) { … }
/// limiter.release(peer)  // when the admitted connection closes
/// ```
final class ConnectionLimiter: Sendable {
    enum Decision: Equatable {
        case admitted
        /// Refused; `reason` says which limit, for the `busy` error line. `firstOfBurst` is true for
        /// the first refusal since a connection was last admitted (the one worth a log line).
        case refused(reason: String, firstOfBurst: Bool)
    }

    private struct Counts {
        var total = 0
        var perUser: [UInt32: Int] = [:]
        var refusedSinceLastAdmission = 0
    }

    let limits: ControlLimits
    private let counts = Mutex(Counts())

    init(limits: ControlLimits) {
        self.limits = limits
    }

    /// Admits `peer` if the total, per-uid and writer-reserve limits allow, counting the connection
    /// until `release(peer)`. Users who may write (trusted by docs/threat-model.md) are bound by the
    /// total only. `isWriter` runs at most once, and only when a per-uid or reserve limit would
    /// refuse (it may look up groups).
    func admit(_ peer: PeerCredentials, isWriter: () -> Bool) -> Decision {
        counts.withLock { counts in
            let ofUser = counts.perUser[peer.uid, default: 0]
            var writer: Bool?
            func peerIsWriter() -> Bool {
                if let writer { return writer }
                let answer = isWriter()
                writer = answer
                return answer
            }
            let refusal: String?
            if counts.total >= limits.maximumConnections {
                refusal = "dsnotd holds \(counts.total) control connections, its maximum"
            } else if ofUser >= limits.maximumConnectionsPerUser && !peerIsWriter() {
                refusal = "uid \(peer.uid) holds \(ofUser) control connections, the maximum per user"
            } else if counts.total >= limits.maximumConnections - limits.writerReserve && !peerIsWriter() {
                refusal =
                    "dsnotd holds \(counts.total) control connections; the last \(limits.writerReserve) "
                    + "are kept for users who may write"
            } else {
                refusal = nil
            }
            if let refusal {
                counts.refusedSinceLastAdmission += 1
                return .refused(
                    reason: refusal + "; close idle connections or try again later",
                    firstOfBurst: counts.refusedSinceLastAdmission == 1
                )
            }
            counts.total += 1
            counts.perUser[peer.uid] = ofUser + 1
            counts.refusedSinceLastAdmission = 0
            return .admitted
        }
    }

    /// Forgets one admitted connection of `peer`.
    func release(_ peer: PeerCredentials) {
        counts.withLock { counts in
            counts.total = max(0, counts.total - 1)
            let remaining = counts.perUser[peer.uid, default: 0] - 1
            counts.perUser[peer.uid] = remaining > 0 ? remaining : nil
        }
    }

    /// Connections open now.
    var openConnections: Int { counts.withLock { $0.total } }
}
