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

    @Test func admissionStartsWaitsOrRefusesForGood() {
        let disk = DiskSpace(free: 5 << 30, total: 100 << 30)
        func admit(_ memory: Int, _ output: Int, inUse: Int = 0, margin: Int = 0) -> SchedulingPolicy.Admission {
            SchedulingPolicy.admission(
                estimate: ResourceEstimate(memoryBytes: memory, outputBytes: output),
                memoryBudget: 8 << 30,
                memoryInUse: inUse,
                disk: disk,
                diskMargin: margin
            )
        }
        #expect(admit(8 << 30, 5 << 30) == .start)  // exactly the budget and exactly the free space fit
        // Beyond what could ever be available: fail now, whatever runs.
        #expect(
            admit(16 << 40, 1)
                == .never(reason: "needs 16.0 TiB of memory, more than memory_budget 8.0 GiB: it can never start")
        )
        #expect(
            admit(1, 99 << 30, margin: 2 << 30)
                == .never(
                    reason: "output needs 99.0 GiB + margin 2.0 GiB, more than the outbox filesystem's total size "
                        + "100.0 GiB: it can never be written"
                )
        )
        // Could fit later: wait.
        guard case .wait(let memory) = admit(6 << 30, 1, inUse: 4 << 30) else {
            Issue.record("expected a wait for memory")
            return
        }
        #expect(memory == "waiting for memory: needs 6.0 GiB, budget 8.0 GiB with 4.0 GiB in use")
        guard case .wait(let space) = admit(1, 6 << 30) else {
            Issue.record("expected a wait for disk")
            return
        }
        #expect(space.hasPrefix("waiting for disk: output needs 6.0 GiB"))
    }

    @Test func hostileEstimatesSaturateInsteadOfOverflowing() {
        let disk = DiskSpace(free: Int.max, total: 1 << 40)
        func admit(_ memory: Int, _ output: Int, inUse: Int, margin: Int) -> SchedulingPolicy.Admission {
            SchedulingPolicy.admission(
                estimate: ResourceEstimate(memoryBytes: memory, outputBytes: output),
                memoryBudget: 8 << 30,
                memoryInUse: inUse,
                disk: disk,
                diskMargin: margin
            )
        }
        guard case .never(let memory) = admit(Int.max, Int.max, inUse: Int.max, margin: Int.max) else {
            Issue.record("expected never for memory")
            return
        }
        #expect(memory.contains("more than memory_budget"))
        guard case .never(let output) = admit(1, Int.max, inUse: 0, margin: Int.max) else {
            Issue.record("expected never for disk")
            return
        }
        #expect(output.contains("total size"))
        guard case .wait(let busy) = admit(1, 1, inUse: Int.max, margin: 0) else {
            Issue.record("expected a wait for memory")
            return
        }
        #expect(busy.hasPrefix("waiting for memory"))
    }

    @Test func etaExtrapolatesFromBlocksDone() throws {
        // 5 of 20 blocks in 50 s → 10 s per block → 150 s left (exact in binary floating point).
        #expect(SchedulingPolicy.eta(block: 5, blockCount: 20, elapsed: 50) == 150)
        #expect(SchedulingPolicy.eta(block: 0, blockCount: 20, elapsed: 50) == nil)
        #expect(SchedulingPolicy.eta(block: nil, blockCount: 20, elapsed: 50) == nil)
    }
}
