// SPDX-License-Identifier: Apache-2.0
// The metrics, pure: what committed transitions count, the exposition text, the accepted listen addresses.

import DSnoTControlProtocol
import Foundation
import Testing

@testable import DSnoTDaemon

@Suite struct DaemonMetricsTests {
    let t0 = Date(timeIntervalSince1970: 1_000_000)

    func queued() -> JobRecord {
        JobRecord(id: "j-1", key: "k", watch: "w", inputPath: "/in/m", outbox: "/out", recipe: "r", createdAt: t0)
    }

    /// Applies `transition` to `job` through the state machine and records it, as `PruneScheduler.commit` does.
    func step(_ metrics: DaemonMetrics, _ job: JobRecord, _ transition: JobTransition, at seconds: Double) throws
        -> JobRecord
    {
        let at = t0.addingTimeInterval(seconds)
        let next = try JobStateMachine.apply(transition, to: job, now: at)
        metrics.record(job, next, at: at)
        return next
    }

    /// The sample lines of the exposition, `name{labels} value`, without comments.
    func samples(_ metrics: DaemonMetrics, counts: [JobState: Int]? = [:]) -> [String: String] {
        let text = String(decoding: metrics.render(counts: counts), as: UTF8.self)
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            result[String(line[..<space])] = String(line[line.index(after: space)...])
        }
        return result
    }

    @Test func aJobRunToDoneCountsItsWaitBlocksAndDuration() throws {
        let metrics = DaemonMetrics()
        var job = queued()
        job = try step(metrics, job, .start, at: 4)  // waited 4 s in the queue
        for block in 0..<3 {  // the 0-based block in progress, as the runner reports it
            job = try step(metrics, job, .progress(.pruning, block: block, blockCount: 3), at: 5 + Double(block))
        }
        job = try step(metrics, job, .progress(.writing, block: nil, blockCount: nil), at: 8)
        job = try step(metrics, job, .publish, at: 9)
        job = try step(metrics, job, .succeed(outputPath: "/out/m-r"), at: 24)  // ran 20 s
        metrics.recordPublished(bytes: 12_345)

        let s = samples(metrics, counts: [.done: 1])
        #expect(s["dsnot_job_starts_total"] == "1")
        #expect(s["dsnot_blocks_pruned_total"] == "3")
        #expect(s["dsnot_output_written_bytes_total"] == "12345")
        #expect(s[#"dsnot_jobs{state="done"}"#] == "1.0" && s[#"dsnot_jobs{state="queued"}"#] == "0.0")
        #expect(s["dsnot_job_queue_wait_seconds_count"] == "1" && s["dsnot_job_queue_wait_seconds_sum"] == "4.0")
        #expect(s[#"dsnot_job_queue_wait_seconds_bucket{le="1.0"}"#] == "0")
        #expect(s[#"dsnot_job_queue_wait_seconds_bucket{le="5.0"}"#] == "1")
        #expect(s[#"dsnot_job_duration_seconds_count{outcome="done"}"#] == "1")
        #expect(s[#"dsnot_job_duration_seconds_sum{outcome="done"}"#] == "20.0")
        #expect(s[#"dsnot_job_duration_seconds_count{outcome="failed"}"#] == "0")
    }

    @Test func aRetryWaitsFromTheEndOfItsBackoffAndEachRunIsObserved() throws {
        let metrics = DaemonMetrics()
        var job = queued()
        job = try step(metrics, job, .start, at: 0)
        job = try step(metrics, job, .fail(reason: "disk full", retryable: true), at: 10)
        let retryAt = try #require(job.notBefore).timeIntervalSince(t0)
        job = try step(metrics, job, .start, at: retryAt + 2)
        job = try step(metrics, job, .fail(reason: "bad tensor", retryable: false), at: retryAt + 5)
        let s = samples(metrics)
        #expect(s["dsnot_job_starts_total"] == "2")
        #expect(s["dsnot_job_queue_wait_seconds_sum"] == "2.0")
        #expect(s[#"dsnot_job_duration_seconds_count{outcome="failed"}"#] == "1")
        #expect(s[#"dsnot_job_duration_seconds_sum{outcome="failed"}"#] == "3.0")
        // The retryable failure went back to the queue: not an end, not observed as one.
        #expect(s[#"dsnot_job_duration_seconds_count{outcome="done"}"#] == "0")
    }

    @Test func aRunThatFailsInBlockTwoCountsTheTwoBlocksItFinished() throws {
        let metrics = DaemonMetrics()
        var job = queued()
        job = try step(metrics, job, .start, at: 0)
        for block in 0..<3 { job = try step(metrics, job, .progress(.pruning, block: block, blockCount: 5), at: 1) }
        job = try step(metrics, job, .fail(reason: "bad tensor", retryable: false), at: 2)
        #expect(samples(metrics)["dsnot_blocks_pruned_total"] == "2")
    }

    @Test func aResumedRunCountsOnlyTheBlocksItPruned() throws {
        let metrics = DaemonMetrics()
        var job = queued()
        job = try step(metrics, job, .start, at: 0)
        for block in 3..<5 { job = try step(metrics, job, .progress(.pruning, block: block, blockCount: 5), at: 1) }
        job = try step(metrics, job, .progress(.writing, block: nil, blockCount: nil), at: 2)
        #expect(samples(metrics)["dsnot_blocks_pruned_total"] == "2")
    }

    @Test func guardWaitsCountWhenAJobStartsWaitingForMemoryOrDiskNotAtEveryNewFigure() throws {
        let metrics = DaemonMetrics()
        var job = queued()
        job = try step(
            metrics,
            job,
            .wait(reason: SchedulingPolicy.memoryWaitPrefix + "needs 3 GiB, 1 GiB in use"),
            at: 1
        )
        job = try step(
            metrics,
            job,
            .wait(reason: SchedulingPolicy.memoryWaitPrefix + "needs 3 GiB, 2 GiB in use"),
            at: 2
        )
        job = try step(metrics, job, .wait(reason: SchedulingPolicy.diskWaitPrefix + "output needs 1 GiB"), at: 3)
        job = try step(metrics, job, .wait(reason: "cannot read the job's recipe: busy"), at: 4)
        job = try step(metrics, job, .wait(reason: SchedulingPolicy.memoryWaitPrefix + "needs 3 GiB"), at: 5)
        let s = samples(metrics)
        #expect(s[#"dsnot_guard_waits_total{resource="memory"}"#] == "2")
        #expect(s[#"dsnot_guard_waits_total{resource="disk"}"#] == "1")
    }

    @Test func theWaitReasonsTheMetricsClassifyAreTheOnesThePolicyWrites() {
        let estimate = ResourceEstimate(memoryBytes: 10 << 30, outputBytes: 1 << 30)
        let memory = SchedulingPolicy.resourceShortage(
            estimate: estimate,
            memoryBudget: 16 << 30,
            memoryInUse: 8 << 30,
            freeDisk: 1 << 40,
            diskMargin: 0
        )
        let disk = SchedulingPolicy.resourceShortage(
            estimate: estimate,
            memoryBudget: 16 << 30,
            memoryInUse: 0,
            freeDisk: 1 << 20,
            diskMargin: 0
        )
        #expect(DaemonMetrics.GuardResource(waitingReason: memory) == .memory)
        #expect(DaemonMetrics.GuardResource(waitingReason: disk) == .disk)
    }

    @Test func claimsFallInMillisecondBuckets() {
        let metrics = DaemonMetrics()
        metrics.recordClaim(seconds: 0.0004)
        metrics.recordClaim(seconds: 0.003)
        metrics.recordClaim(seconds: 0.2)
        let s = samples(metrics)
        #expect(s["dsnot_job_claim_seconds_count"] == "3")
        #expect(s[#"dsnot_job_claim_seconds_bucket{le="0.001"}"#] == "1")
        #expect(s[#"dsnot_job_claim_seconds_bucket{le="0.005"}"#] == "2")
        #expect(s[#"dsnot_job_claim_seconds_bucket{le="0.1"}"#] == "2")
        #expect(s[#"dsnot_job_claim_seconds_bucket{le="0.25"}"#] == "3")
        #expect(s[#"dsnot_job_claim_seconds_bucket{le="+Inf"}"#] == "3")
    }

    @Test func anUnreadableStoreKeepsTheLastJobCounts() {
        let metrics = DaemonMetrics()
        #expect(samples(metrics, counts: [.running: 2])[#"dsnot_jobs{state="running"}"#] == "2.0")
        #expect(samples(metrics, counts: nil)[#"dsnot_jobs{state="running"}"#] == "2.0")
    }

    @Test(arguments: [
        ("127.0.0.1:9464", MetricsEndpoint.tcp(host: "127.0.0.1", port: 9464)),
        ("127.1.2.3:0", .tcp(host: "127.1.2.3", port: 0)),
        ("localhost:9100", .tcp(host: "127.0.0.1", port: 9100)),
        ("[::1]:9464", .tcp(host: "::1", port: 9464)),
        ("/run/dsnot/metrics.sock", .unix(path: "/run/dsnot/metrics.sock")),
    ])
    func acceptedListenAddresses(text: String, expected: MetricsEndpoint) {
        #expect(MetricsEndpoint(parsing: text) == expected)
    }

    @Test(arguments: [
        "0.0.0.0:9464",  // every interface: the endpoint has no authentication
        "192.168.1.4:9464", "[::]:9464", "::1:9464", "example.com:80", "127.0.0.1", "127.0.0.1:",
        "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:9x", "127.0.0.256:1", "127.0.0:1", "127..0.1:1",
        "metrics.sock", "relative/metrics.sock", "/" + String(repeating: "a", count: 107),
    ])
    func refusedListenAddresses(text: String) {
        #expect(MetricsEndpoint(parsing: text) == nil)
    }
}
