// SPDX-License-Identifier: Apache-2.0
// Nodes sharing a job store: heartbeats, lease renewal, taking over the jobs of a node that died.

public import DSnoTControlProtocol
import Foundation
import Logging
import SparseFormat

extension PruneScheduler {
    /// Seconds between heartbeats and lease renewals: a third of the lease (so two renewals may be
    /// missed before it ends), or 10 s with SQLite, where only the heartbeat matters.
    var renewalInterval: Double { settings.lease.map { $0.seconds / 3 } ?? 10 }

    /// On every scheduler tick: writes the node's heartbeat, renews the leases of its running jobs
    /// (a job whose lease is gone is stopped at its next block boundary and never published), and
    /// gives the jobs of nodes whose lease ended more than the settle period ago back to the queue.
    func maintainLeases() {
        let at = now()
        if lastHeartbeat.map({ at.timeIntervalSince($0) >= renewalInterval }) ?? true {
            do {
                try store.heartbeat(node: settings.node, startedAt: processStartedAt)
                lastHeartbeat = at
            } catch {
                logger.error("Cannot write the node's heartbeat", metadata: ["error": "\(error)"])
            }
        }
        guard let lease = settings.lease else { return }
        reapExpiredLeases(lease)
        for (id, entry) in running
        where !entry.leaseLost && at.timeIntervalSince(entry.leaseRenewedAt) >= renewalInterval {
            renewLease(id, entry, lease: lease, at: at)
        }
    }

    /// Renews one job's lease; a refusal marks it lost and stops the runner.
    /// - Returns: whether the node still holds the lease as far as it knows (a store it cannot reach
    ///   leaves the job running until the lease has surely ended).
    @discardableResult
    func renewLease(_ id: String, _ entry: RunningJob, lease: Settings.Lease, at: Date) -> Bool {
        var entry = entry
        do {
            if try store.renewLease(jobID: id, node: settings.node, lease: lease.seconds) {
                entry.leaseRenewedAt = at
                running[id] = entry
                metrics?.recordLease(lost: false)
                return true
            }
        } catch {
            logger.error("Cannot renew a job's lease", metadata: ["job.id": "\(id)", "error": "\(error)"])
            // Keep running while the lease may still hold; give up once it surely has ended.
            if at.timeIntervalSince(entry.leaseRenewedAt) < lease.seconds { return true }
        }
        entry.leaseLost = true
        entry.flag.set(.leaseLost)
        running[id] = entry
        metrics?.recordLease(lost: true)
        logger.error(
            "Lease lost: the job is stopped and will not be published by this node",
            metadata: ["event": "job.lease_lost", "job.id": "\(id)", "node": "\(settings.node)"]
        )
        return false
    }

    /// Takes back the jobs of nodes that stopped renewing: a publishing job whose output is already
    /// in the shared outbox is finished (`recoverPublished`'s rule), any other counts an attempt and
    /// is re-queued with back-off (or fails when its attempts are spent).
    private func reapExpiredLeases(_ lease: Settings.Lease) {
        let at = now()
        let policy = settings.retryPolicy
        let reaped: [JobRecord]
        do {
            reaped = try store.reapExpiredLeases(settle: lease.settle) { job in
                // This node's own job, still running: its renewals failed (the store was out of reach)
                // and are retried every tick; it is not taken from itself.
                if job.node == settings.node, running[job.id] != nil { return nil }
                if job.state == .publishing, let output = publishedOutput(of: job) {
                    let next = try JobStateMachine.apply(.succeed(outputPath: output), to: job, now: at, policy: policy)
                    return (next, "found published after node \(job.node ?? "?") stopped renewing its lease")
                }
                let reason = "lease expired: node \(job.node ?? "?") stopped renewing it"
                let next = try JobStateMachine.apply(
                    .fail(reason: reason, retryable: true),
                    to: job,
                    now: at,
                    policy: policy
                )
                return (next, reason)
            }
        } catch {
            logger.error("Cannot take back expired leases", metadata: ["error": "\(error)"])
            return
        }
        for job in reaped {
            // The dead node's staging directory in the (shared) outbox: nobody will publish it.
            if let node = job.node, node != settings.node {
                do { try publisher(for: job, node: node).discard() } catch {
                    logger.error(
                        "Cannot remove a staging directory",
                        metadata: ["job.id": "\(job.id)", "error": "\(error)"]
                    )
                }
            }
            events.publish(JobEvent(kind: "state", job: job))
            logger.warning(
                "Took back a job whose node stopped renewing its lease",
                metadata: ["event": "job.lease_expired", "job.id": "\(job.id)", "state": "\(job.state.rawValue)"]
            )
        }
        if !reaped.isEmpty { wake() }
    }

    /// Whether this node may publish `id` now: its lease is renewed right before the rename (a
    /// shared store only; with SQLite the node alone holds its jobs).
    func mayPublish(_ id: String, _ entry: RunningJob) -> Bool {
        guard let lease = settings.lease else { return true }
        if entry.leaseLost { return false }
        do {
            if try store.renewLease(jobID: id, node: settings.node, lease: lease.seconds) {
                metrics?.recordLease(lost: false)
                return true
            }
        } catch {
            logger.error("Cannot renew a job's lease", metadata: ["job.id": "\(id)", "error": "\(error)"])
        }
        metrics?.recordLease(lost: true)
        return false
    }

    /// The nodes sharing the job store, for `status`.
    public func nodes() -> [NodeStatus] {
        do { return try store.nodes() } catch {
            logger.error("Cannot read the nodes", metadata: ["error": "\(error)"])
            return []
        }
    }
}
