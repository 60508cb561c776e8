// SPDX-License-Identifier: Apache-2.0
// The job lifecycle, pure: every allowed transition, every refused one, retry back-off.

import DSnoTControlProtocol
import DSnoTDaemon
import Foundation
import Testing

@Suite struct JobStateMachineTests {
    let t0 = Date(timeIntervalSince1970: 1_000_000)

    func queued() -> JobRecord {
        JobRecord(id: "j-1", key: "k", watch: "w", inputPath: "/in/m", outbox: "/out", recipe: "r", createdAt: t0)
    }

    @Test func happyPathRunsThroughPublishingToDone() throws {
        var job = try JobStateMachine.apply(.start, to: queued(), now: t0)
        #expect(job.state == .running && job.attempts == 1 && job.phase == .loading && job.startedAt == t0)
        job = try JobStateMachine.apply(.progress(.pruning, block: 3, blockCount: 22), to: job, now: t0)
        #expect(job.state == .running && job.block == 3 && job.blockCount == 22)
        job = try JobStateMachine.apply(.publish, to: job, now: t0)
        #expect(job.state == .publishing && job.outputPath == nil)
        job = try JobStateMachine.apply(.succeed(outputPath: "/out/m-r-j-1"), to: job, now: t0.addingTimeInterval(5))
        #expect(job.state == .done && job.finishedAt == t0.addingTimeInterval(5) && job.outputPath == "/out/m-r-j-1")
    }

    @Test func retryableFailureRequeuesWithExponentialBackoffUntilAttemptsRunOut() throws {
        let policy = RetryPolicy(maximumAttempts: 3, baseDelay: 10, maximumDelay: 1000)
        var job = queued()
        for attempt in 1...3 {
            job = try JobStateMachine.apply(.start, to: job, now: t0, policy: policy)
            job = try JobStateMachine.apply(.fail(reason: "ENOSPC", retryable: true), to: job, now: t0, policy: policy)
            if attempt < 3 {
                #expect(job.state == .queued)
                // delay = 10 · 2^(attempt − 1): 10 s, then 20 s (exact: powers of two)
                #expect(job.notBefore == t0.addingTimeInterval(10 * Double(1 << (attempt - 1))))
            }
        }
        #expect(job.state == .failed && job.retryable == true && job.attempts == 3)
    }

    @Test func permanentFailureIsNotRetried() throws {
        var job = try JobStateMachine.apply(.start, to: queued(), now: t0)
        job = try JobStateMachine.apply(.fail(reason: "bad checkpoint", retryable: false), to: job, now: t0)
        #expect(job.state == .failed && job.retryable == false && job.notBefore == nil)
    }

    @Test func interruptedJobIsRequeuedWithoutCountingAFailure() throws {
        var job = try JobStateMachine.apply(.start, to: queued(), now: t0)
        job = try JobStateMachine.apply(.requeue(reason: "daemon restarted"), to: job, now: t0)
        #expect(job.state == .queued && job.reason == nil && job.waitingReason == "interrupted: daemon restarted")
        #expect(job.attempts == 0)
    }

    /// Four kill -9 restarts (and a stop) in a row do not use up the retries: the first real retryable
    /// failure afterwards is still retried, and only the failed run is counted.
    @Test func interruptionsDoNotUseUpRetries() throws {
        let policy = RetryPolicy(maximumAttempts: 4, baseDelay: 10, maximumDelay: 1000)
        var job = queued()
        for reason in [
            "daemon restarted", "daemon restarted", "daemon restarted", "daemon restarted", "daemon stopping",
        ] {
            job = try JobStateMachine.apply(.start, to: job, now: t0, policy: policy)
            #expect(job.attempts == 1)
            job = try JobStateMachine.apply(.requeue(reason: reason), to: job, now: t0, policy: policy)
        }
        #expect(job.attempts == 0)
        // An interruption while publishing gives the attempt back too.
        job = try JobStateMachine.apply(.start, to: job, now: t0, policy: policy)
        job = try JobStateMachine.apply(.publish, to: job, now: t0, policy: policy)
        job = try JobStateMachine.apply(.requeue(reason: "daemon restarted"), to: job, now: t0, policy: policy)
        #expect(job.attempts == 0)
        job = try JobStateMachine.apply(.start, to: job, now: t0, policy: policy)
        job = try JobStateMachine.apply(.fail(reason: "No space", retryable: true), to: job, now: t0, policy: policy)
        #expect(job.state == .queued && job.attempts == 1 && job.notBefore == t0.addingTimeInterval(10))
    }

    @Test func userRetryResetsAFailedJob() throws {
        var job = try JobStateMachine.apply(.start, to: queued(), now: t0)
        job = try JobStateMachine.apply(.fail(reason: "x", retryable: false), to: job, now: t0)
        job = try JobStateMachine.apply(.retry, to: job, now: t0)
        #expect(job.state == .queued && job.attempts == 0 && job.reason == nil && job.finishedAt == nil)
    }

    @Test(arguments: [
        (JobState.queued, JobTransition.succeed(outputPath: "/x")),
        (.queued, .publish),
        (.queued, .progress(.pruning, block: 1, blockCount: 2)),
        (.queued, .retry),
        (.running, .start),
        (.running, .retry),
        (.publishing, .progress(.pruning, block: 1, blockCount: 2)),
        (.done, .start),
        (.done, .retry),
        (.done, .cancel(reason: "x")),
        (.failed, .start),
        (.cancelled, .succeed(outputPath: "/x")),
        (.running, .succeed(outputPath: "/x")),
    ])
    func transitionsThatDoNotApplyAreRefused(_ state: JobState, _ transition: JobTransition) {
        var job = queued()
        job.state = state
        #expect(throws: TransitionRefused.self) { try JobStateMachine.apply(transition, to: job, now: t0) }
    }

    @Test func backoffIsCapped() {
        let policy = RetryPolicy(maximumAttempts: 99, baseDelay: 30, maximumDelay: 3600)
        #expect(policy.delay(afterAttempts: 1) == 30)
        #expect(policy.delay(afterAttempts: 4) == 240)
        #expect(policy.delay(afterAttempts: 20) == 3600)
    }
}
