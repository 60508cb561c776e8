// SPDX-License-Identifier: Apache-2.0
// ParallelSequences tests: every index once, nested regions inline, BLAS restored, results independent of it.

import Synchronization
import Testing

@testable import DSnoTCore

@Suite struct ParallelSequencesTests {
    @Test(arguments: [0..<0, 0..<1, 3..<4, 0..<2, 5..<38])
    func everyIndexRunsExactlyOnce(_ indices: Range<Int>) {
        let counts = Mutex([Int: Int]())
        ParallelSequences.forEach(indices) { i in counts.withLock { $0[i, default: 0] += 1 } }
        let seen = counts.withLock { $0 }
        #expect(seen.keys.sorted() == Array(indices))
        #expect(seen.values.allSatisfy { $0 == 1 })
    }

    @Test func workersRunRegionsInlineAndRestoreBLAS() {
        let threads = Linalg.blasThreads
        #expect(!ParallelRows.isInline)
        let inline = Mutex([Bool]())
        let blas = Mutex([Int]())
        ParallelSequences.forEach(0..<8) { _ in
            inline.withLock { $0.append(ParallelRows.isInline) }
            blas.withLock { $0.append(Linalg.blasThreads) }
        }
        if ParallelSequences.width > 1 {
            #expect(inline.withLock { $0 }.allSatisfy { $0 })
            #expect(blas.withLock { $0 }.allSatisfy { $0 == 1 })
        }
        #expect(!ParallelRows.isInline)
        #expect(Linalg.blasThreads == threads)
    }

    /// A block over several sequences at once gives, bit for bit, what one sequence at a time with
    /// multi-threaded BLAS gives (L = 300: the GEMMs are large enough for OpenBLAS to thread them).
    @Test func concurrentSequencesMatchSerialForwardBitForBit() throws {
        let model = try ModelRegistry.load(directory: ModelFixtures.path("llama_gqa_untied"))
        var rng = SplitMix64(seed: 5)
        let windows = (0..<5).map { _ in (0..<300).map { _ in Int(rng.next() % UInt64(model.vocabularySize)) } }
        var hidden = try windows.map { try model.embed(tokens: $0) }
        var serial = hidden
        for b in 0..<model.blockCount {
            let block = try model.loadBlock(b)
            for i in serial.indices { serial[i] = block.forward(serial[i]) }
        }
        try model.runBlocks(&hidden)
        #expect(hidden == serial)
    }
}
