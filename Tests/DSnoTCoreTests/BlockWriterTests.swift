// SPDX-License-Identifier: Apache-2.0
// The pipeline's writer thread (BlockWriter): a sink's error is the run's error, a resume point follows
// its block's tensors, nothing is written after a run ends, and the report says what writing cost.

import DSnoTCore
import DSnoTTestSupport
import Foundation
import Logging
import SafeTensors
import Synchronization
import Testing

/// A sink that records tensor names under a lock (it is called from the writer thread), sleeps
/// `delay` in every pruned write, and throws `failure` on the pruned tensor named `failOn`.
final class RecordingSink: PrunedTensorSink, Sendable {
    struct Failure: Error, Equatable { var name: String }
    let names = Mutex<[String]>([])
    let delay: Duration
    let failOn: String?

    init(delay: Duration = .zero, failOn: String? = nil) {
        self.delay = delay
        self.failOn = failOn
    }

    func write(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer, pruned: Bool) throws {
        if pruned {
            Thread.sleep(forTimeInterval: delay.inSecondsForTest)
            if name == failOn { throw Failure(name: name) }
        }
        names.withLock { $0.append(name) }
    }

    var written: [String] { names.withLock { $0 } }
}

extension Duration {
    fileprivate var inSecondsForTest: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}

@Suite struct BlockWriterTests {
    static let logger = Logger(label: "test")
    static let model = SequentialPrunerTests.goldenModel

    static func layerNames(_ model: any DecoderModel, block: Int) -> [String] {
        model.prunableLinearLayers(block: block).map(\.tensorName)
    }

    @Test func aSinkErrorOnTheWriterThreadIsTheRunsError() throws {
        let checkpoint = try Checkpoint(directory: Self.model)
        let model = try ModelRegistry.load(directory: Self.model)
        let failing = Self.layerNames(model, block: 0)[2]
        let sink = RecordingSink(failOn: failing)
        let pruner = try SequentialPruner(recipe: Recipe(method: .magnitude, pattern: .unstructured(0.5)))
        #expect(throws: RecordingSink.Failure(name: failing)) {
            try pruner.run(model: model, source: checkpoint, calibration: nil, sink: sink, logger: Self.logger)
        }
        // The rest of block 0 and all of block 1 were never written.
        let written = Set(sink.written)
        #expect(written.isDisjoint(with: Self.layerNames(model, block: 0).dropFirst(2)))
        #expect(written.isDisjoint(with: Self.layerNames(model, block: 1)))
    }

    @Test func aResumePointComesAfterItsBlocksTensorsReachedTheSink() throws {
        let checkpoint = try Checkpoint(directory: Self.model)
        let model = try ModelRegistry.load(directory: Self.model)
        // Slow writes: without the wait before the resume point, block 0 would still be in flight.
        let sink = RecordingSink(delay: .milliseconds(30))
        let pruner = try SequentialPruner(recipe: Recipe(method: .wanda, pattern: .unstructured(0.5)))
        var checked = 0
        let report = try pruner.run(
            model: model,
            source: checkpoint,
            calibration: try SequentialPrunerTests.goldenCalibration(),
            sink: sink,
            logger: Self.logger,
            onBlockFinished: { state in
                let written = Set(sink.written)
                for b in 0..<state.nextBlock {
                    #expect(written.isSuperset(of: Self.layerNames(model, block: b)), "block \(b)")
                }
                checked += 1
            }
        )
        #expect(checked == model.blockCount - 1)
        #expect(Set(sink.written) == Set(checkpoint.tensorNames))
        // 14 writes of 30 ms: the writer's time is in the report, and the pipeline waited for some of it.
        // Bounds that hold however the threads are scheduled: the last block is submitted right before
        // the final drain, so its 7 writes are waited for in full; the wait is not compared with the
        // writer's own time, as it also counts the writer thread's start and wake-up latency.
        #expect(report.timings.writing >= 14 * 0.03)
        let waited = try #require(report.timings.writingWait)
        let lastBlock = Self.layerNames(model, block: model.blockCount - 1).count
        #expect(waited >= Double(lastBlock) * 0.03 && waited <= report.timings.total)
    }

    @Test func nothingIsWrittenAfterACancelledRunReturns() throws {
        let checkpoint = try Checkpoint(directory: Self.model)
        let model = try ModelRegistry.load(directory: Self.model)
        let sink = RecordingSink(delay: .milliseconds(20))
        let pruner = try SequentialPruner(recipe: Recipe(method: .wanda, pattern: .unstructured(0.5)))
        var phases: [PruneProgress.Phase] = []
        // Cancelled in block 0's propagation, while block 0's tensors are being written.
        #expect(throws: PipelineError.cancelled(block: 0)) {
            try pruner.run(
                model: model,
                source: checkpoint,
                calibration: try SequentialPrunerTests.goldenCalibration(),
                sink: sink,
                logger: Self.logger,
                progress: { phases.append($0.phase) },
                isCancelled: { phases.contains(.propagation) }
            )
        }
        let atReturn = sink.written
        // The block in flight was finished before the run returned (the sink may be aborted now).
        #expect(Set(atReturn).isSuperset(of: Self.layerNames(model, block: 0)))
        Thread.sleep(forTimeInterval: 0.2)
        #expect(sink.written == atReturn)
    }
}
