// SPDX-License-Identifier: Apache-2.0
// Coarse time bounds that catch quadratic blow-ups on long words, long whitespace runs and 1 MB of text.

import DSnoTCore
import Foundation
import Testing

/// Bounds are 10-20x the times measured on a loaded 2-core machine, so they only fail on an algorithmic
/// regression (a quadratic merge loop or scanner), not on scheduling noise.
@Suite struct TokenizerPerformanceTests {
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let clock = ContinuousClock()
        let elapsed = try clock.measure(body)
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }

    static let pathological: [(String, String)] = [
        ("200k-letter word", String(repeating: "abcdefghij", count: 20_000)),
        ("200k spaces then a word", String(repeating: " ", count: 200_000) + "x"),
        ("alternating newline and space", String(repeating: "\n ", count: 100_000) + "y"),
        ("200k digits", String(repeating: "0123456789", count: 20_000)),
        ("100k emoji", String(repeating: "👩‍👩‍👧", count: 20_000)),
    ]

    @Test(arguments: ["smollm2", "sp-bpe", "sp-bpe-metaspace"])
    func pathologicalInputsStayFast(name: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(name)
        for (label, text) in Self.pathological {
            var ids: [Int32] = []
            let elapsed = try Self.seconds { ids = try tokenizer.encode(text) }
            #expect(!ids.isEmpty)
            #expect(elapsed < 3.0, "\(name), \(label): \(elapsed) s (bound 3 s)")
        }
    }

    /// About 1 MB: the corpus six times, each copy with a different number prefixed to every line so that
    /// the word cache cannot replay whole copies.
    @Test func oneMegabyteEncodesWellUnderASecond() throws {
        let tokenizer = try TokenizerFixtures.tokenizer("smollm2")
        let lines = try TokenizerFixtures.corpus().split(separator: "\n", omittingEmptySubsequences: false)
        var text = ""
        for copy in 0..<6 {
            for (index, line) in lines.enumerated() { text += "\(copy * 100_000 + index) \(line)\n" }
        }
        #expect(text.utf8.count >= 1_000_000)
        var ids: [Int32] = []
        let elapsed = try Self.seconds { ids = try tokenizer.encode(text) }
        #expect(ids.count > 300_000)
        #expect(elapsed < 5.0, "1 MB: \(elapsed) s (bound 5 s; 0.1-0.6 s measured)")
    }
}
