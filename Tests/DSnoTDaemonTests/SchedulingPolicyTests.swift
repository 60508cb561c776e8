// SPDX-License-Identifier: Apache-2.0
// Which job starts next and whether it fits: pure decisions.

import DSnoTControlProtocol
import DSnoTDaemon
import Foundation
import Testing

@Suite struct SchedulingPolicyTests {
    let now = Date(timeIntervalSince1970: 2_000_000)

    func job(_ id: String, priority: Int = 0, age: Double, watch: String = "w", notBefore: Date? = nil) -> JobRecord {
        var job = JobRecord(
            id: id,
            key: id,
            watch: watch,
            inputPath: "/in/\(id)",
            outbox: "/out",
            recipe: "r",
            priority: priority,
            createdAt: now.addingTimeInterval(-age)
        )
        job.notBefore = notBefore
        return job
    }

    @Test func higherPriorityFirstThenOldest() {
        let jobs = [job("a", age: 10), job("b", priority: 5, age: 1), job("c", age: 20)]
        #expect(SchedulingPolicy.candidates(jobs, pausedWatches: [], now: now).map(\.id) == ["b", "c", "a"])
    }

    @Test func pausedWatchesAndBackoffAreSkipped() {
        let jobs = [
            job("a", age: 10, watch: "paused"), job("b", age: 5, notBefore: now.addingTimeInterval(60)),
            job("c", age: 1, notBefore: now.addingTimeInterval(-1)),
        ]
        #expect(SchedulingPolicy.candidates(jobs, pausedWatches: ["paused"], now: now).map(\.id) == ["c"])
    }

    @Test func jobWaitsWhenMemoryOrDiskDoNotFit() throws {
        let estimate = ResourceEstimate(memoryBytes: 6 << 30, outputBytes: 2 << 30)
        let memory = try #require(
            SchedulingPolicy.resourceShortage(
                estimate: estimate,
                memoryBudget: 8 << 30,
                memoryInUse: 4 << 30,
                freeDisk: 100 << 30,
                diskMargin: 0
            )
        )
        #expect(memory.hasPrefix("waiting for memory"))
        let disk = try #require(
            SchedulingPolicy.resourceShortage(
                estimate: estimate,
                memoryBudget: 8 << 30,
                memoryInUse: 0,
                freeDisk: 3 << 30,
                diskMargin: 2 << 30
            )
        )
        #expect(disk.hasPrefix("waiting for disk"))
        #expect(
            SchedulingPolicy.resourceShortage(
                estimate: estimate,
                memoryBudget: 8 << 30,
                memoryInUse: 0,
                freeDisk: 5 << 30,
                diskMargin: 2 << 30
            ) == nil
        )
    }

    @Test func etaExtrapolatesFromBlocksDone() throws {
        // 5 of 20 blocks in 50 s → 10 s per block → 150 s left (exact in binary floating point).
        #expect(SchedulingPolicy.eta(block: 5, blockCount: 20, elapsed: 50) == 150)
        #expect(SchedulingPolicy.eta(block: 0, blockCount: 20, elapsed: 50) == nil)
        #expect(SchedulingPolicy.eta(block: nil, blockCount: 20, elapsed: 50) == nil)
    }
}
