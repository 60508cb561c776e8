// SPDX-License-Identifier: Apache-2.0
// Parallel tests: every index, chunk and part once; nested regions inline; BLAS restored; results independent of the split.

import DSnoTSupport
import Synchronization
import Testing

@testable import DSnoTCore

@Suite struct ParallelTests {
    @Test(arguments: [0..<0, 0..<1, 3..<4, 0..<2, 5..<38])
    func everyIndexRunsExactlyOnce(_ indices: Range<Int>) {
        let counts = Mutex([Int: Int]())
        Parallel.forEach(indices) { i in counts.withLock { $0[i, default: 0] += 1 } }
        let seen = counts.withLock { $0 }
        #expect(seen.keys.sorted() == Array(indices))
        #expect(seen.values.allSatisfy { $0 == 1 })
    }

    @Test func workersRunRegionsInlineAndRestoreBLAS() {
        let threads = Linalg.blasThreads
        #expect(!Parallel.isInline)
        let inline = Mutex([Bool]())
        let blas = Mutex([Int]())
        Parallel.forEach(0..<8) { _ in
            inline.withLock { $0.append(Parallel.isInline) }
            blas.withLock { $0.append(Linalg.blasThreads) }
        }
        if Parallel.workers > 1 {
            #expect(inline.withLock { $0 }.allSatisfy { $0 })
            #expect(blas.withLock { $0 }.allSatisfy { $0 == 1 })
        }
        #expect(!Parallel.isInline)
        #expect(Linalg.blasThreads == threads)
    }

    /// The chunks of a split loop cover the range once, in order, each starting on the alignment;
    /// a loop worth splitting is split (when there is more than one worker), and its chunks run inline.
    @Test(arguments: [(0..<1000, 1), (7..<1007, 1), (3..<4099, 8), (0..<17, 8), (0..<5, 1)])
    func chunksCoverTheRangeOnceOnTheAlignment(range: Range<Int>, alignment: Int) {
        let chunks = Mutex([Range<Int>]())
        let inline = Mutex([Bool]())
        Parallel.forEachChunk(range, units: Parallel.minimumUnits, alignment: alignment) { chunk in
            chunks.withLock { $0.append(chunk) }
            inline.withLock { $0.append(Parallel.isInline) }
        }
        let sorted = chunks.withLock { $0 }.sorted { $0.lowerBound < $1.lowerBound }
        #expect(sorted.first?.lowerBound == range.lowerBound && sorted.last?.upperBound == range.upperBound)
        #expect(zip(sorted, sorted.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        #expect(sorted.allSatisfy { !$0.isEmpty && ($0.lowerBound - range.lowerBound) % alignment == 0 })
        let blocks = (range.count + alignment - 1) / alignment
        let expected = Parallel.workers > 1 ? min(blocks, Parallel.partsPerWorker * Parallel.workers) : 1
        #expect(sorted.count == expected)
        if sorted.count > 1 { #expect(inline.withLock { $0 }.allSatisfy { $0 }) }
    }

    /// Work below `minimumUnits`, or a loop started on a worker, is one inline call over the whole range.
    @Test func smallOrNestedLoopsRunAsOneChunk() {
        let calls = Mutex([Range<Int>]())
        Parallel.forEachChunk(0..<10_000, units: Parallel.minimumUnits - 1) { chunk in
            calls.withLock { $0.append(chunk) }
        }
        #expect(calls.withLock { $0 } == [0..<10_000])
        let nested = Mutex([Int]())
        Parallel.forEach(0..<4) { _ in
            var count = 0
            Parallel.forEachChunk(0..<10_000, units: .max) { _ in count += 1 }
            nested.withLock { $0.append(count) }
        }
        if Parallel.workers > 1 { #expect(nested.withLock { $0 } == [1, 1, 1, 1]) }
    }

    @Test(arguments: [1, 3, 100])
    func everyPartRunsOnceWithTheSameCount(count: Int) {
        let parts = Mutex([(Int, Int)]())
        Parallel.forEachPart(count: count, units: .max) { part, of in parts.withLock { $0.append((part, of)) } }
        let seen = parts.withLock { $0 }
        let total = Parallel.partCount(count, units: .max)
        #expect(seen.map(\.0).sorted() == Array(0..<total))
        #expect(seen.allSatisfy { $0.1 == total })
    }

    /// SwiGLU's kernel runs 8 lanes from its start and a scalar tail that rounds differently, so the
    /// split must fall on lane boundaries: split over the cores, it equals one call over all elements,
    /// bit for bit, for an element count that is not a multiple of 8 per part.
    @Test func splitSwiGLUEqualsOneCallBitForBit() {
        var rng = SplitMix64(seed: 11)
        let (rows, columns) = (5, 1003)
        let gate = Matrix(rows: rows, columns: columns, storage: (0..<(rows * columns)).map { _ in 4 * rng.normal() })
        let up = Matrix(rows: rows, columns: columns, storage: (0..<(rows * columns)).map { _ in rng.normal() })
        var serial = up.storage
        gate.storage.withUnsafeBufferPointer { g in
            serial.withUnsafeMutableBufferPointer { u in
                VectorMath.siluMultiply(gate: g.baseAddress!, up: u.baseAddress!, range: 0..<u.count)
            }
        }
        #expect(Activation.swiGLU(gate: gate, up: up).storage == serial)
    }

    /// A block over several sequences at once gives, bit for bit, what one sequence at a time gives
    /// with single-threaded BLAS (each worker runs single-threaded BLAS). With multi-threaded BLAS
    /// (L = 300: the GEMMs are large enough for OpenBLAS to thread them) the bits depend on the CPU's
    /// kernels: identical on the machines this suite ran on before, not on an AMD EPYC where OpenBLAS
    /// 0.3.21 picks its Haswell kernels (single-threaded BLAS there gives the concurrent bits, threaded
    /// BLAS does not); the outputs agree to fp32 round-off either way.
    @Test func concurrentSequencesMatchSerialForwardBitForBit() throws {
        let model = try ModelRegistry.load(directory: ModelFixtures.path("llama_gqa_untied"))
        var rng = SplitMix64(seed: 5)
        let windows = (0..<5).map { _ in (0..<300).map { _ in Int(rng.next() % UInt64(model.vocabularySize)) } }
        var hidden = try windows.map { try model.embed(tokens: $0) }
        var serial = hidden
        var threaded = hidden
        for b in 0..<model.blockCount {
            let block = try model.loadBlock(b)
            Linalg.withSingleThreadedBLAS {
                for i in serial.indices { serial[i] = block.forward(serial[i]) }
            }
            for i in threaded.indices { threaded[i] = block.forward(threaded[i]) }
        }
        try model.runBlocks(&hidden)
        #expect(hidden == serial)
        for (a, b) in zip(hidden, threaded) {
            var worst: Float = 0
            for i in a.storage.indices {
                worst = max(worst, abs(a.storage[i] - b.storage[i]) / max(1, abs(a.storage[i])))
            }
            #expect(worst <= 1e-4)
        }
    }
}
