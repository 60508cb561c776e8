// SPDX-License-Identifier: Apache-2.0
// Which queued job starts next, and does it fit? Pure decisions, unit-tested without a scheduler.

public import DSnoTControlProtocol
public import Foundation

/// Free and total bytes of a filesystem (for unprivileged users: `f_bavail`, `f_blocks`).
public struct DiskSpace: Sendable, Equatable {
    public var free: Int
    public var total: Int

    public init(free: Int, total: Int) {
        self.free = free
        self.total = total
    }
}

/// The scheduler's pure decisions.
public enum SchedulingPolicy {
    /// Queued jobs eligible to start now, best first: higher priority, then older; jobs created at the same
    /// instant keep their order in `queued` (the scheduler passes the store's insertion order). Jobs of
    /// paused watches and jobs in retry back-off (`notBefore` in the future) are left out.
    public static func candidates(_ queued: [JobRecord], pausedWatches: Set<String>, now: Date) -> [JobRecord] {
        let eligible = queued.filter { job in
            job.state == .queued && !pausedWatches.contains(job.watch) && (job.notBefore.map { $0 <= now } ?? true)
        }
        return eligible.indices.sorted { i, j in
            let (a, b) = (eligible[i], eligible[j])
            return a.priority != b.priority ? a.priority > b.priority : (a.createdAt, i) < (b.createdAt, j)
        }.map { eligible[$0] }
    }

    /// What to do with a queued job, given its estimate.
    public enum Admission: Sendable, Equatable {
        /// It fits now.
        case start
        /// It does not fit now (other jobs hold memory, the disk is full for now), but could later.
        case wait(reason: String)
        /// It can never fit the configured budget: fail it rather than hold the queue.
        case never(reason: String)
    }

    /// Whether a job with this estimate starts, waits or can never run.
    ///
    /// The ordering rule (`scheduleNext`): queued jobs are considered in `candidates` order; a job that
    /// starts takes a worker; a job that waits is passed over and the next one that fits starts in its
    /// place; a job that can never fit fails at once. So a job waiting for memory or disk never holds
    /// back the jobs behind it that fit; with several workers it can be overtaken by smaller jobs for as
    /// long as they keep it from fitting.
    /// - Parameters:
    ///   - memoryInUse: bytes estimated for the jobs already running.
    ///   - disk: free and total bytes of the outbox's filesystem.
    public static func admission(
        estimate: ResourceEstimate,
        memoryBudget: Int,
        memoryInUse: Int,
        disk: DiskSpace,
        diskMargin: Int
    ) -> Admission {
        if estimate.memoryBytes > memoryBudget {
            return .never(
                reason: "needs \(format(estimate.memoryBytes)) of memory, more than memory_budget "
                    + "\(format(memoryBudget)): it can never start"
            )
        }
        if sum(estimate.outputBytes, diskMargin) > disk.total {
            return .never(
                reason: "output needs \(format(estimate.outputBytes)) + margin \(format(diskMargin)), more than "
                    + "the outbox filesystem's total size \(format(disk.total)): it can never be written"
            )
        }
        if let shortage = resourceShortage(
            estimate: estimate,
            memoryBudget: memoryBudget,
            memoryInUse: memoryInUse,
            freeDisk: disk.free,
            diskMargin: diskMargin
        ) {
            return .wait(reason: shortage)
        }
        return .start
    }

    /// How `resourceShortage` begins its reasons (the metrics count guard waits by them).
    static let memoryWaitPrefix = "waiting for memory: "
    static let diskWaitPrefix = "waiting for disk: "

    /// Why a job with this estimate cannot start now, or nil if it fits.
    /// - Parameters:
    ///   - memoryInUse: bytes estimated for the jobs already running.
    ///   - freeDisk: free bytes on the outbox's filesystem.
    public static func resourceShortage(
        estimate: ResourceEstimate,
        memoryBudget: Int,
        memoryInUse: Int,
        freeDisk: Int,
        diskMargin: Int
    ) -> String? {
        if sum(estimate.memoryBytes, memoryInUse) > memoryBudget {
            return "\(memoryWaitPrefix)needs \(format(estimate.memoryBytes)), budget \(format(memoryBudget)) "
                + "with \(format(memoryInUse)) in use"
        }
        if sum(estimate.outputBytes, diskMargin) > freeDisk {
            return "\(diskWaitPrefix)output needs \(format(estimate.outputBytes)) + margin \(format(diskMargin)), "
                + "\(format(freeDisk)) free"
        }
        return nil
    }

    /// `a + b`, saturating: estimates come from hostile recipes and checkpoints.
    static func sum(_ a: Int, _ b: Int) -> Int {
        let (total, overflow) = a.addingReportingOverflow(b)
        return overflow ? Int.max : total
    }

    /// Seconds left for a job that has done `block` of `blockCount` blocks in `elapsed` seconds.
    public static func eta(block: Int?, blockCount: Int?, elapsed: Double) -> Double? {
        guard let block, let blockCount, block > 0, blockCount >= block, elapsed > 0 else { return nil }
        return elapsed / Double(block) * Double(blockCount - block)
    }

    static func format(_ bytes: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(bytes)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(bytes) B" : "\(String(format: "%.1f", value)) \(units[unit])"
    }
}
