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
    /// (`units`, in rough element operations) is large enough to pay for the dispatch.
    static func run(units: Int, _ body: (Int, Int) -> Void) {
        let chunks = units >= 1 << 15 ? workers : 1
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

    /// The `chunk`-th of `count` contiguous parts of `0..<total`.
    static func range(_ chunk: Int, of count: Int, total: Int) -> Range<Int> {
        (total * chunk / count)..<(total * (chunk + 1) / count)
    }
}
