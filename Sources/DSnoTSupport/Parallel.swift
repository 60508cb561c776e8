// SPDX-License-Identifier: Apache-2.0
// Parallel: the project's one parallel-for (worker count, fan-out, nesting rule, Sendable escape hatch).

import Dispatch
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The one way dsnot uses several cores besides BLAS's own threads: the numeric core (DSnoTCore) for
/// sequences, rows and element-wise kernels, and the sparse format (SparseFormat) for LZ4 blocks. As
/// llm.c does with OpenMP, only outer loops are parallel; each iteration writes only state it owns,
/// so results never depend on the worker count or on how a loop is split.
///
/// Two grains, one pool of `workers` threads:
/// - `forEachItem(_:around:_:)`: independent coarse items (one sequence through a block, one LZ4
///   block), one per worker at a time. Nested regions run inline, so each item's arithmetic is
///   exactly the single-item arithmetic. DSnoTCore's `Parallel.forEach` is this with single-threaded
///   BLAS `around` the fan-out.
/// - `forEachChunk(_:units:_:)` and `forEachPart(count:units:_:)`: one loop split into parts (the
///   rows of a layer, the element-wise kernels between GEMMs). Inline when the work is too small to
///   pay for the dispatch, or when the caller already runs on a worker.
///
/// Why one sequence per core rather than one sequence split over the cores: splitting a single
/// `(L, hidden)` sequence costs a synchronisation per GEMM and per element-wise kernel (dozens per
/// block), and every gap between BLAS calls idles the other cores while OpenBLAS's workers spin.
///
/// ```swift
/// Parallel.forEachItem(blocks.indices) { b in compressed[b] = compress(blocks[b]) }
/// Parallel.forEachChunk(0..<rows, units: rows * columns) { range in
///     for r in range { mask[r] = … }  // rows are independent
/// }
/// ```
public enum Parallel {
    /// Worker threads of every parallel region, and so the items `forEachItem` keeps in flight: the
    /// processors available to this process (`ProcessInfo.activeProcessorCount`), capped at 8. The
    /// cap bounds the memory of item loops (each sequence in flight holds its intermediates;
    /// `MemoryEstimate` counts `workers` of them; each LZ4 block in flight its buffers); BLAS calls
    /// made outside `forEach` still use every core.
    public static let workers = max(1, min(8, ProcessInfo.processInfo.activeProcessorCount))

    /// Parts per worker of a split loop: a worker slowed down (another process, costlier rows)
    /// leaves its remaining parts to the others.
    public static let partsPerWorker = 4

    /// Work (in rough element operations) below which a loop runs inline: smaller regions cost
    /// more to dispatch than they gain.
    public static let minimumUnits = 1 << 15

    /// Calls `body(i)` once for every `i` in `indices`, on up to `workers` threads, each claiming
    /// the next index when it finishes one, with nested regions inline; `around` wraps the fan-out
    /// (DSnoTCore passes single-threaded BLAS). Serial, without `around`, when there is one index or
    /// one worker, or when already on a worker. `body` must only write state owned by index `i`.
    public static func forEachItem(
        _ indices: Range<Int>,
        around: (() -> Void) -> Void = { $0() },
        _ body: (Int) -> Void
    ) {
        guard min(workers, indices.count) > 1, !isInline else {
            for i in indices { body(i) }
            return
        }
        // `body` does not escape: `around` returns once the fan-out has.
        withoutActuallyEscaping(body) { body in
            around { fanOut(parts: indices.count) { body(indices.lowerBound + $0) } }
        }
    }

    /// Calls `body(chunk)` for contiguous chunks that together cover `range` once, concurrently when
    /// the loop's `units` of work pay for it. Every chunk but the last starts and ends on a multiple
    /// of `alignment` from `range.lowerBound`: a vector kernel with a scalar tail then treats each
    /// element exactly as one call over the whole range does. `body` must only write state owned by
    /// the elements of its chunk.
    public static func forEachChunk(
        _ range: Range<Int>,
        units: Int,
        alignment: Int = 1,
        _ body: (Range<Int>) -> Void
    ) {
        let (first, count) = (range.lowerBound, range.count)
        let blocks = (count + alignment - 1) / max(1, alignment)
        let parts = partCount(blocks, units: units)
        guard parts > 1 else {
            if !range.isEmpty { body(range) }
            return
        }
        fanOut(parts: parts) { part in
            let start = min(count, alignment * (blocks * part / parts))
            let end = min(count, alignment * (blocks * (part + 1) / parts))
            body((first + start)..<(first + end))
        }
    }

    /// Calls `body(part, parts)` for every `part` in `0..<parts`, where `parts` is chosen as in
    /// `forEachChunk` for a loop of `count` items; the body deals the items to parts itself (for
    /// example every `parts`-th row, when a row's cost grows along the loop).
    public static func forEachPart(count: Int, units: Int, _ body: (_ part: Int, _ parts: Int) -> Void) {
        let parts = partCount(count, units: units)
        guard parts > 1 else {
            if count > 0 { body(0, 1) }
            return
        }
        fanOut(parts: parts) { body($0, parts) }
    }

    /// Parts of a split loop of `count` items and `units` of work: 1 (inline) for small work, one
    /// worker or a caller that is a worker itself; else `partsPerWorker` per worker, at most `count`.
    public static func partCount(_ count: Int, units: Int) -> Int {
        guard workers > 1, count > 1, units >= minimumUnits, !isInline else { return 1 }
        return min(count, partsPerWorker * workers)
    }

    /// The one fan-out: `body(part)` for every part in `0..<parts`, on `min(workers, parts)` threads
    /// (the caller's among them) that each claim the next part, with nested regions inline.
    private static func fanOut(parts: Int, _ body: (Int) -> Void) {
        let next = Atomic<Int>(0)
        // `body` does not escape: `concurrentPerform` returns once every part has run.
        withoutActuallyEscaping(body) { body in
            let body = UncheckedSendable(body)
            DispatchQueue.concurrentPerform(iterations: min(workers, parts)) { _ in
                inline {
                    while true {
                        let part = next.wrappingAdd(1, ordering: .relaxed).oldValue
                        guard part < parts else { return }
                        body.value(part)
                    }
                }
            }
        }
    }

    /// Per-thread flag: set while the thread runs a part or an item of a parallel region, whose
    /// nested regions then run inline (the other workers are busy with the other parts).
    private static let inlineKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Whether parallel regions started on this thread run inline.
    public static var isInline: Bool { pthread_getspecific(inlineKey) != nil }

    /// Runs `body` with this thread's regions inline, then restores the previous state.
    private static func inline(_ body: () -> Void) {
        let previous = pthread_getspecific(inlineKey)
        pthread_setspecific(inlineKey, UnsafeRawPointer(bitPattern: 1))
        defer { pthread_setspecific(inlineKey, previous) }
        body()
    }

    /// The one Sendable escape hatch: a value the caller shares with the workers of one region.
    /// Sound because every region writes only state owned by its index, part or chunk, and returns
    /// only when all of them have finished.
    private struct UncheckedSendable<Value>: @unchecked Sendable {
        let value: Value
        init(_ value: Value) { self.value = value }
    }
}
