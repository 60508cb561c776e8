// SPDX-License-Identifier: Apache-2.0
// A thread-safe flag the pruning thread polls at block boundaries.

import Synchronization

/// Set by the scheduler (user cancel, shutdown, lost lease), read by the runner's `isCancelled` at block boundaries.
final class CancelFlag: Sendable {
    enum Reason: Sendable, Equatable {
        case user
        case shutdown
        /// The node no longer holds the job's lease (a shared job store): stop, never publish.
        case leaseLost
    }

    private let reason = Mutex<Reason?>(nil)

    func set(_ value: Reason) {
        reason.withLock { current in
            if current == nil { current = value }
        }
    }

    var current: Reason? { reason.withLock { $0 } }
    var isSet: Bool { current != nil }
}
