// SPDX-License-Identifier: Apache-2.0
// ParallelRows: splits element-wise work between BLAS calls over the cores (concurrentPerform over rows).

import Dispatch
import Foundation

/// Runs the element-wise kernels between GEMMs (softmax, SwiGLU) on every core, like BLAS does for
/// the GEMMs themselves. Only the outer loop is parallel; each chunk writes disjoint rows.
enum ParallelRows {
    /// Worker count: the online processors, capped at 8.
    static let workers = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))

    /// Calls `body(chunk, chunkCount)` for `chunk` in `0..<chunkCount`, concurrently when the work
    /// (`units`, in rough element operations) is large enough to pay for the dispatch and the calling
    /// thread is not already one of `ParallelSequences`' workers.
    static func run(units: Int, _ body: (Int, Int) -> Void) {
        let chunks = units >= 1 << 15 && !isInline ? workers : 1
        if chunks == 1 {
            body(0, 1)
        } else {
            // The chunks write disjoint rows of buffers the caller owns for the duration of the call.
            withoutActuallyEscaping(body) { body in
                nonisolated(unsafe) let body = body
                DispatchQueue.concurrentPerform(iterations: chunks) { body($0, chunks) }
            }
        }
    }

    /// Per-thread flag: set while the thread runs one of `ParallelSequences`' sequences, whose
    /// element-wise kernels then run inline (the other cores are busy with other sequences).
    private static let inlineKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Whether regions on this thread run inline.
    static var isInline: Bool { pthread_getspecific(inlineKey) != nil }

    /// Runs `body` with this thread's regions inline, then restores the previous state.
    static func inline(_ body: () -> Void) {
        let previous = pthread_getspecific(inlineKey)
        pthread_setspecific(inlineKey, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(inlineKey, previous) }
        body()
    }

    /// The `chunk`-th of `count` contiguous parts of `0..<total`.
    static func range(_ chunk: Int, of count: Int, total: Int) -> Range<Int> {
        (total * chunk / count)..<(total * (chunk + 1) / count)
    }
}
