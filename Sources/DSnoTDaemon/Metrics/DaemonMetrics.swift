// SPDX-License-Identifier: Apache-2.0
// The daemon's Prometheus metrics: recorded from committed job transitions, rendered per scrape.

public import DSnoTControlProtocol
public import Foundation
import Prometheus

/// The daemon's metrics, in one Prometheus registry (names and meanings: dsnotd(8), METRICS).
///
/// Everything is derived from what the scheduler commits: `record(_:_:at:)` sees every job transition
/// (`PruneScheduler.commit`), `recordPublished(bytes:)` each published output. The per-state job gauge
/// is set from the job store's counts when a scrape renders the registry, so it counts every job in
/// the store, including jobs recovered from an earlier run.
///
/// ```swift
/// let metrics = DaemonMetrics()
/// metrics.record(queued, started, at: Date())
/// let text = metrics.render(counts: try store.counts())
/// ```
public final class DaemonMetrics: Sendable {
    /// Upper bounds (seconds) of the duration buckets: a tiny model takes seconds, a 7B one hours.
    static let durationBuckets: [Double] = [
        1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400,
    ]
    /// Upper bounds (seconds) of the claim buckets: a claim is one short transaction, milliseconds on a
    /// healthy store; the upper buckets show a store that is slow or far away.
    static let claimBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]

    private let registry: PrometheusCollectorRegistry
    private let jobsByState: [JobState: Gauge]
    private let jobDuration: [JobState: ValueHistogram]
    private let queueWait: ValueHistogram
    private let claimDuration: ValueHistogram
    private let blocksPruned: Counter
    private let bytesWritten: Counter
    private let guardWaits: [GuardResource: Counter]
    private let jobsStarted: Counter
    private let leaseRenewals: Counter
    private let leaseLosses: Counter

    /// What a job waiting for resources waits for (`SchedulingPolicy.resourceShortage`).
    enum GuardResource: String, CaseIterable, Sendable {
        case memory
        case disk

        /// The resource a waiting reason names, if it is a memory or disk guard wait.
        init?(waitingReason: String?) {
            guard let waitingReason else { return nil }
            if waitingReason.hasPrefix(SchedulingPolicy.memoryWaitPrefix) {
                self = .memory
            } else if waitingReason.hasPrefix(SchedulingPolicy.diskWaitPrefix) {
                self = .disk
            } else {
                return nil
            }
        }
    }

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        func descriptor(_ name: String, unit: String = "", _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "dsnot", metricName: name, unitName: unit, helpText: help)
        }
        let states: [JobState] = [.queued, .running, .publishing, .done, .failed, .cancelled]
        let jobs = descriptor("jobs", "Jobs in the job store, by state.")
        jobsByState = Dictionary(
            uniqueKeysWithValues: states.map {
                ($0, registry.makeGauge(descriptor: jobs, labels: [("state", $0.rawValue)]))
            }
        )
        let duration = descriptor(
            "job_duration",
            unit: "seconds",
            "Seconds from a job's start to its end (done, failed or cancelled), one observation per run."
        )
        jobDuration = Dictionary(
            uniqueKeysWithValues: [JobState.done, .failed, .cancelled].map {
                (
                    $0,
                    registry.makeValueHistogram(
                        descriptor: duration,
                        labels: [("outcome", $0.rawValue)],
                        buckets: Self.durationBuckets
                    )
                )
            }
        )
        queueWait = registry.makeValueHistogram(
            descriptor: descriptor(
                "job_queue_wait",
                unit: "seconds",
                "Seconds a runnable job waited before it started (from its creation, or from the end of its "
                    + "retry back-off)."
            ),
            labels: [],
            buckets: Self.durationBuckets
        )
        claimDuration = registry.makeValueHistogram(
            descriptor: descriptor(
                "job_claim",
                unit: "seconds",
                "Seconds the job store took to claim a queued job for this node (the claiming transaction), "
                    + "whether or not the claim was won."
            ),
            labels: [],
            buckets: Self.claimBuckets
        )
        jobsStarted = registry.makeCounter(
            descriptor: descriptor("job_starts", unit: "total", "Job runs started (a retry is a new run)."),
            labels: []
        )
        blocksPruned = registry.makeCounter(
            descriptor: descriptor("blocks_pruned", unit: "total", "Decoder blocks pruned, over all jobs."),
            labels: []
        )
        bytesWritten = registry.makeCounter(
            descriptor: descriptor(
                "output_written_bytes",
                unit: "total",
                "Bytes of published outputs (every file of each output directory)."
            ),
            labels: []
        )
        leaseRenewals = registry.makeCounter(
            descriptor: descriptor("lease_renewals", unit: "total", "Leases on running jobs this node renewed."),
            labels: []
        )
        leaseLosses = registry.makeCounter(
            descriptor: descriptor(
                "lease_losses",
                unit: "total",
                "Running jobs this node stopped because it no longer held their lease (expired and taken over, "
                    + "or cancelled from another node)."
            ),
            labels: []
        )
        let waits = descriptor(
            "guard_waits",
            unit: "total",
            "Times a queued job started waiting because it did not fit the memory budget or the free disk."
        )
        guardWaits = Dictionary(
            uniqueKeysWithValues: GuardResource.allCases.map {
                ($0, registry.makeCounter(descriptor: waits, labels: [("resource", $0.rawValue)]))
            }
        )
    }

    /// Records one committed transition of a job (`previous` → `next`, committed at `now`).
    public func record(_ previous: JobRecord, _ next: JobRecord, at now: Date) {
        if previous.state == .queued && next.state == .running {
            jobsStarted.increment()
            let since = max(previous.createdAt, previous.notBefore ?? previous.createdAt)
            queueWait.record(max(0, now.timeIntervalSince(since)))
        }
        // While pruning, `block` is the 0-based block in progress: moving on to a later block finishes
        // the ones between, and leaving the phase for the next one (not for a failure) finishes the
        // rest. Entering the phase counts nothing: a resumed run enters at its resume block, whose
        // predecessors an earlier run pruned.
        let wasPruning = previous.state == .running && previous.phase == .pruning
        let doneBefore = wasPruning ? previous.block ?? 0 : 0
        if next.state == .running, next.phase == .pruning, let block = next.block {
            if wasPruning, block > doneBefore { blocksPruned.increment(by: Int64(block - doneBefore)) }
        } else if previous.state == .running, previous.phase == .pruning, let count = previous.blockCount,
            next.state == .publishing || (next.state == .running && next.phase != .pruning), count > doneBefore
        {
            blocksPruned.increment(by: Int64(count - doneBefore))
        }
        if previous.state != next.state, let histogram = jobDuration[next.state], let started = previous.startedAt,
            previous.state == .running || previous.state == .publishing
        {
            histogram.record(max(0, now.timeIntervalSince(started)))
        }
        if let resource = GuardResource(waitingReason: next.waitingReason),
            GuardResource(waitingReason: previous.waitingReason) != resource
        {
            guardWaits[resource]?.increment()
        }
    }

    /// Records how long one claim took (`PruneScheduler.start`).
    public func recordClaim(seconds: Double) {
        claimDuration.record(max(0, seconds))
    }

    /// Records one lease renewal (`lost == false`) or one lease found lost.
    public func recordLease(lost: Bool) {
        (lost ? leaseLosses : leaseRenewals).increment()
    }

    /// Records the size of a published output.
    public func recordPublished(bytes: Int) {
        bytesWritten.increment(by: Int64(max(0, bytes)))
    }

    /// The Prometheus text exposition (format 0.0.4), with the job gauge set from `counts` first
    /// (nil when the store could not be read: the gauge keeps its last values).
    public func render(counts: [JobState: Int]?) -> [UInt8] {
        if let counts {
            for (state, gauge) in jobsByState { gauge.set(to: Double(counts[state] ?? 0)) }
        }
        return registry.emitToBuffer()
    }
}
