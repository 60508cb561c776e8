// SPDX-License-Identifier: Apache-2.0
// ParallelSequences: one block's forward pass over many sequences at once, one sequence per core.

import Dispatch
import Synchronization

/// Runs independent per-sequence work (a block over the calibration or evaluation sequences) with
/// one sequence per core, instead of one sequence at a time split over the cores.
///
/// Why: on a few cores, splitting a single `(L, hidden)` sequence costs a synchronisation per GEMM and
/// per element-wise kernel (dozens per block), and every gap between BLAS calls idles the other
/// cores while OpenBLAS's own workers spin. Independent sequences need none of that. Inside `body`,
/// BLAS runs single-threaded and `ParallelRows` regions run inline on the worker, so the arithmetic
/// of each sequence is exactly the single-sequence arithmetic (results do not depend on the core count).
///
/// ```swift
/// hidden.withUnsafeMutableBufferPointer { h in
///     ParallelSequences.forEach(h.indices) { n in h[n] = block.forward(h[n]) }
/// }
/// ```
enum ParallelSequences {
    /// Sequences processed at once: one per core (the caller's chunk size for progress and cancellation).
    static var width: Int { ParallelRows.workers }

    /// Calls `body(i)` once for every `i` in `indices`, concurrently on up to `width` threads, each
    /// claiming the next index when it finishes one. Serial (with multi-threaded BLAS) when there is
    /// one index or one core. `body` must only write state owned by index `i`.
    static func forEach(_ indices: Range<Int>, _ body: (Int) -> Void) {
        let workers = min(width, indices.count)
        guard workers > 1, !ParallelRows.isInline else {
            for i in indices { body(i) }
            return
        }
        let next = Atomic<Int>(indices.lowerBound)
        Linalg.withSingleThreadedBLAS {
            withoutActuallyEscaping(body) { body in
                nonisolated(unsafe) let body = body
                DispatchQueue.concurrentPerform(iterations: workers) { _ in
                    ParallelRows.inline {
                        while true {
                            let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
                            guard i < indices.upperBound else { return }
                            body(i)
                        }
                    }
                }
            }
        }
    }
}
