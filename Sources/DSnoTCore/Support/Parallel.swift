// SPDX-License-Identifier: Apache-2.0
// Parallel in the numeric core: DSnoTSupport's parallel-for, with BLAS single-threaded inside items.

public import DSnoTSupport

/// The numeric core uses DSnoTSupport's `Parallel` (the project's one parallel-for) under its usual
/// name; this file adds the core's one rule that the support module cannot know: items of a
/// `forEach` run BLAS single-threaded (`Linalg.withSingleThreadedBLAS`), so each item's arithmetic is
/// exactly the single-item arithmetic and the cores are not oversubscribed.
typealias Parallel = DSnoTSupport.Parallel

extension Parallel {
    /// Calls `body(i)` once for every `i` in `indices`, on up to `workers` threads, each claiming
    /// the next index when it finishes one. `body` runs with single-threaded BLAS and nested regions
    /// inline. Serial (with multi-threaded BLAS) when there is one index or one worker, or when
    /// already on a worker. `body` must only write state owned by index `i`.
    static func forEach(_ indices: Range<Int>, _ body: (Int) -> Void) {
        forEachItem(indices, around: { fanOut in Linalg.withSingleThreadedBLAS { fanOut() } }, body)
    }
}
