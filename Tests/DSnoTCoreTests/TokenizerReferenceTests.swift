// SPDX-License-Identifier: Apache-2.0
// Token ids identical to the Python `tokenizers` package on the committed corpus (SmolLM2, SentencePiece BPE).

import DSnoTCore
import Foundation
import Testing

/// The committed fixtures of scripts/make-tokenizer-fixtures.py.
enum TokenizerFixtures {
    static func directory() throws -> URL {
        let resources = try #require(Bundle.module.resourceURL)
        return resources.appendingPathComponent("tokenizers")
    }

    static func corpus() throws -> String {
        try String(contentsOf: directory().appendingPathComponent("corpus.txt"), encoding: .utf8)
    }

    /// The committed tokenizers, each loaded once per test process (SmolLM2's JSON takes a while to parse).
    private static let loaded: [String: Result<Tokenizer, any Error>] = Dictionary(
        uniqueKeysWithValues: ["smollm2", "sp-bpe", "sp-bpe-metaspace"].map { name in
            (
                name,
                Result { try Tokenizer(contentsOf: directory().appendingPathComponent("\(name)/tokenizer.json").path) }
            )
        }
    )

    static func tokenizer(_ name: String) throws -> Tokenizer {
        try #require(loaded[name], "no committed tokenizer named \(name)").get()
    }

    static func json(_ relativePath: String) throws -> [String: Any] {
        let data = try Data(contentsOf: directory().appendingPathComponent(relativePath))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func ids(_ value: Any?) throws -> [Int32] {
        let numbers = try #require(value as? [NSNumber])
        return numbers.map { Int32(truncating: $0) }
    }

    /// Category name → text, from corpus-index.json (code point ranges).
    static func categories(of corpus: String) throws -> [(name: String, text: String)] {
        let data = try Data(contentsOf: directory().appendingPathComponent("corpus-index.json"))
        let entries = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        let scalars = Array(corpus.unicodeScalars)
        return try entries.map { entry in
            let start = try #require(entry["start"] as? Int)
            let end = try #require(entry["end"] as? Int)
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[start..<end])
            return (try #require(entry["name"] as? String), String(view))
        }
    }

    /// Index and values around the first difference, for a readable failure.
    static func firstDifference(_ got: [Int32], _ expected: [Int32]) -> String {
        let index =
            (0..<min(got.count, expected.count)).first { got[$0] != expected[$0] } ?? min(got.count, expected.count)
        let range = max(0, index - 3)..<(index + 4)
        return "first difference at \(index): got \(Array(got[range.clamped(to: 0..<got.count)])), "
            + "expected \(Array(expected[range.clamped(to: 0..<expected.count)])); counts \(got.count) vs \(expected.count)"
    }
}

@Suite struct TokenizerReferenceTests {
    static let tokenizers = ["smollm2", "sp-bpe", "sp-bpe-metaspace"]

    @Test(arguments: tokenizers)
    func wholeCorpusMatchesReference(name: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(name)
        let reference = try TokenizerFixtures.json("\(name)/reference.json")
        let corpus = try TokenizerFixtures.corpus()
        #expect(corpus.utf8.count >= 100_000)
        let expected = try TokenizerFixtures.ids(reference["corpus_ids"])
        let got = try tokenizer.encode(corpus)
        #expect(got.count > 40_000)
        #expect(got == expected, "\(name): \(TokenizerFixtures.firstDifference(got, expected))")
    }

    @Test(arguments: tokenizers)
    func everyCategoryMatchesReference(name: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(name)
        let reference = try TokenizerFixtures.json("\(name)/reference.json")
        let expectedByCategory = try #require(reference["categories"] as? [[String: Any]])
        let categories = try TokenizerFixtures.categories(of: TokenizerFixtures.corpus())
        try #require(categories.count == expectedByCategory.count)
        for (category, expectedEntry) in zip(categories, expectedByCategory) {
            #expect(category.name == expectedEntry["name"] as? String)
            let expected = try TokenizerFixtures.ids(expectedEntry["ids"])
            let got = try tokenizer.encode(category.text)
            #expect(got == expected, "\(name)/\(category.name): \(TokenizerFixtures.firstDifference(got, expected))")
        }
    }

    @Test(arguments: tokenizers)
    func smallCasesMatchReference(name: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(name)
        let reference = try TokenizerFixtures.json("\(name)/reference.json")
        let cases = try #require(reference["cases"] as? [[String: Any]])
        try #require(cases.count >= 10)
        for entry in cases {
            let text = try #require(entry["text"] as? String)
            #expect(
                try tokenizer.encode(text) == TokenizerFixtures.ids(entry["ids"]),
                "\(name): \(text.debugDescription)"
            )
            #expect(
                try tokenizer.encode(text, addSpecialTokens: true) == TokenizerFixtures.ids(entry["ids_with_special"]),
                "\(name) with special tokens: \(text.debugDescription)"
            )
            let decoded = try tokenizer.decode(TokenizerFixtures.ids(entry["ids"]))
            #expect(decoded == entry["decoded"] as? String, "\(name) decode: \(text.debugDescription)")
        }
    }

    /// decode(encode(x)) == x for the lossless tokenizers, and equals the reference decode otherwise.
    @Test(arguments: tokenizers)
    func corpusDecodeRoundTrip(name: String) throws {
        let tokenizer = try TokenizerFixtures.tokenizer(name)
        let reference = try TokenizerFixtures.json("\(name)/reference.json")
        let corpus = try TokenizerFixtures.corpus()
        let decoded = try tokenizer.decode(tokenizer.encode(corpus))
        let lossless = try #require(reference["corpus_decoded_equals_corpus"] as? Bool)
        #expect((decoded == corpus) == lossless, "\(name): lossless per `tokenizers` = \(lossless)")
        if name != "sp-bpe" { #expect(lossless) }
    }
}
