// SPDX-License-Identifier: Apache-2.0
// Which queued job starts next, and does it fit? Pure decisions, unit-tested without a scheduler.

public import DSnoTControlProtocol
public import Foundation

/// The scheduler's pure decisions.
public enum SchedulingPolicy {
    /// Queued jobs eligible to start now, best first: higher priority, then older. Jobs of paused watches
    /// and jobs in retry back-off (`notBefore` in the future) are left out.
    public static func candidates(_ queued: [JobRecord], pausedWatches: Set<String>, now: Date) -> [JobRecord] {
        queued.filter { job in
            job.state == .queued && !pausedWatches.contains(job.watch) && (job.notBefore.map { $0 <= now } ?? true)
        }.sorted { a, b in
            a.priority != b.priority ? a.priority > b.priority : (a.createdAt, a.id) < (b.createdAt, b.id)
        }
    }

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
        if estimate.memoryBytes + memoryInUse > memoryBudget {
            return "waiting for memory: needs \(format(estimate.memoryBytes)), budget \(format(memoryBudget)) "
                + "with \(format(memoryInUse)) in use"
        }
        if estimate.outputBytes + diskMargin > freeDisk {
            return "waiting for disk: output needs \(format(estimate.outputBytes)) + margin \(format(diskMargin)), "
                + "\(format(freeDisk)) free"
        }
        return nil
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
