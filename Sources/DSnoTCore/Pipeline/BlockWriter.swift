// SPDX-License-Identifier: Apache-2.0
// BlockWriter: a finished block's pruned tensors go to the sink on a writer thread, one block in flight.

import DSnoTSupport
import Dispatch
import SafeTensors

/// Writes each finished block's pruned tensors to the sink on a thread of its own while the pipeline
/// goes on (the block's propagation, the next block's load and statistics pass).
///
/// Bounded: at most one block is in flight. `submit` first waits for the previous block's write, so
/// the writer holds one block's pruned weights in the checkpoint dtype (`MemoryEstimate` counts
/// them). The sink is used by one thread at a time, which is all `PrunedTensorSink` asks: the
/// pipeline hands it to the writer with `submit` and takes it back with `drain` (the dispatch
/// group's wait orders the writer's effects before whatever the pipeline does next). A write's
/// error surfaces at the next `submit` or `drain` and ends the run like any other; the rest of
/// that block is not written. A run that ends early (an error, a cancellation) must `drain`
/// before the sink is finished or aborted: `SequentialPruner.run` does it on every exit.
///
/// ```swift
/// let writer = BlockWriter(sink: sink)
/// defer { writer.waitQuietly() }
/// waited += try writer.submit(tensors)  // returns at once unless the previous block is still writing
/// waited += try writer.drain()  // before a resume point, and at the end
/// ```
final class BlockWriter: @unchecked Sendable {
    /// One pruned weight, encoded in the checkpoint dtype.
    struct Tensor: Sendable {
        var name: String
        var dtype: DType
        var shape: [Int]
        var bytes: [UInt8]
    }

    private let sink: any PrunedTensorSink
    private let queue = DispatchQueue(label: "dsnot.block-writer")
    private let group = DispatchGroup()
    /// Set on the writer thread, read on the pipeline's after `group.wait()`.
    private var failure: (any Error)?
    /// The writer thread's seconds spent in the sink, over all blocks (read after `drain`).
    private(set) var writingSeconds = 0.0

    init(sink: any PrunedTensorSink) {
        self.sink = sink
    }

    /// Waits for the previous block's write (rethrowing its error), then starts writing `tensors`.
    /// - Returns: the seconds the caller waited for the previous block.
    func submit(_ tensors: [Tensor]) throws -> Double {
        let waited = try drain()
        queue.async(group: group) { [self] in
            let start = ContinuousClock.now
            do {
                for tensor in tensors {
                    try tensor.bytes.withUnsafeBytes { raw in
                        try sink.write(
                            name: tensor.name,
                            dtype: tensor.dtype,
                            shape: tensor.shape,
                            bytes: raw,
                            pruned: true
                        )
                    }
                }
            } catch {
                failure = error
            }
            writingSeconds += (ContinuousClock.now - start).inSeconds
        }
        return waited
    }

    /// Waits until no block is in flight; rethrows the error of the last write, if it failed.
    /// - Returns: the seconds waited.
    @discardableResult
    func drain() throws -> Double {
        let start = ContinuousClock.now
        group.wait()
        if let failure {
            self.failure = nil
            throw failure
        }
        return (ContinuousClock.now - start).inSeconds
    }

    /// Waits until no block is in flight, dropping any error (the run is ending with an error of its own).
    func waitQuietly() {
        group.wait()
        failure = nil
    }
}
