// SPDX-License-Identifier: Apache-2.0
// Test helpers: checkpoint fixtures, a scripted job runner.

import DSnoTControlProtocol
import DSnoTDaemon
import DSnoTTestSupport
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Writes tiny but structurally valid checkpoints.
enum CheckpointFixture {
    /// The bytes of a safetensors file with one F32 tensor of `elements` values.
    static func shardBytes(elements: Int = 4, name: String = "w") -> [UInt8] {
        let header = Array(
            #"{"\#(name)":{"dtype":"F32","shape":[\#(elements)],"data_offsets":[0,\#(elements * 4)]}}"#.utf8
        )
        var bytes: [UInt8] = []
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: header.count >> shift)) }
        return bytes + header + [UInt8](repeating: 0, count: elements * 4)
    }

    /// Creates `directory` with config.json and model.safetensors (optionally cut to `truncateTo` bytes).
    @discardableResult
    static func write(to directory: URL, elements: Int = 4, truncateTo: Int? = nil) throws -> URL {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(#"{"model_type":"llama"}"#.utf8).write(to: directory.appendingPathComponent("config.json"))
        var shard = shardBytes(elements: elements)
        if let truncateTo { shard = Array(shard.prefix(truncateTo)) }
        try Data(shard).write(to: directory.appendingPathComponent("model.safetensors"))
        return directory
    }
}

/// Test-only `JobRunner`: copies the input's config.json into the output and reports `blocks` fake
/// pruning blocks, sleeping `blockDelay` each and honouring cancellation at block boundaries. Stands in
/// for DSnoTCore's `SequentialPruner`, which is built in parallel.
final class ScriptedJobRunner: JobRunner {
    enum Script: Sendable {
        case succeed
        case failRetryable(String)
        case failPermanent(String)
        /// Throws this error as it is (not a `JobFailure`): the scheduler classifies it.
        case throwError(any Error)
    }

    let blocks: Int
    let blockDelay: Double
    let estimator: @Sendable (JobSpec) throws -> ResourceEstimate
    private let script = Mutex<[Script]>([])
    private let runs = Mutex(0)

    convenience init(
        blocks: Int = 4,
        blockDelay: Double = 0.01,
        estimate: ResourceEstimate = .init(memoryBytes: 1, outputBytes: 1),
        script: [Script] = []
    ) {
        self.init(blocks: blocks, blockDelay: blockDelay, script: script) { _ in estimate }
    }

    /// A runner whose estimate depends on the job (or throws).
    init(
        blocks: Int = 4,
        blockDelay: Double = 0.01,
        script: [Script] = [],
        estimator: @escaping @Sendable (JobSpec) throws -> ResourceEstimate
    ) {
        self.blocks = blocks
        self.blockDelay = blockDelay
        self.estimator = estimator
        self.script.withLock { $0 = script }
    }

    var runCount: Int { runs.withLock { $0 } }

    func estimate(_ job: JobSpec) throws -> ResourceEstimate { try estimator(job) }

    func run(_ job: JobSpec, progress: @Sendable (JobProgress) -> Void, isCancelled: @Sendable () -> Bool) throws
        -> JobOutcome
    {
        runs.withLock { $0 += 1 }
        let step = script.withLock { $0.isEmpty ? Script.succeed : $0.removeFirst() }
        progress(JobProgress(phase: .loading))
        for block in 0..<blocks {
            if isCancelled() { throw JobFailure.cancelled }
            Thread.sleep(forTimeInterval: blockDelay)
            progress(JobProgress(phase: .pruning, block: block + 1, blockCount: blocks))
        }
        switch step {
        case .succeed: break
        case .failRetryable(let reason): throw JobFailure.retryable(reason)
        case .failPermanent(let reason): throw JobFailure.permanent(reason)
        case .throwError(let error): throw error
        }
        progress(JobProgress(phase: .writing))
        let source = URL(fileURLWithPath: job.inputPath).appendingPathComponent("config.json")
        try FileManager.default.copyItem(
            at: source,
            to: URL(fileURLWithPath: job.temporaryOutputPath).appendingPathComponent("config.json")
        )
        return JobOutcome(summary: "\(blocks) blocks")
    }
}

/// Polls `condition` every 20 ms for up to `timeout` seconds.
func eventually(timeout: Double = 10, _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition()
}

let testLogger: Logger = {
    var logger = Logger(label: "dsnot.test", factory: { _ in SwiftLogNoOpLogHandler() })
    logger.logLevel = .critical
    return logger
}()

/// A configuration rooted in `directory` with one watch `main`.
func testConfiguration(in directory: TemporaryDirectory, settle: Double = 0.2) -> DaemonConfiguration {
    var configuration = DaemonConfiguration.unprivilegedDefault(in: directory.path)
    configuration.socketPath = directory.socketPath
    configuration.settle = settle
    configuration.memoryBudget = 1 << 30
    configuration.freeDiskMargin = 0
    configuration.watches = [
        WatchConfiguration(name: "main", inbox: directory.sub("in").path, outbox: directory.sub("out").path)
    ]
    return configuration
}

/// Runs blocking work (the blocking `ControlClient`) on a thread of its own: blocking a cooperative-pool
/// thread would starve the server under test, which runs on that pool (2 threads on a 2-core machine).
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}
