// SPDX-License-Identifier: Apache-2.0
// Unit tests of the tokenizer's parts: regex scanners vs `tokenizers` splits, byte table, BPE, decoders.

import Foundation
import Testing

@testable import DSnoTCore

@Suite struct TokenizerComponentTests {
    /// The hand-written scanners cut the whole corpus exactly where `tokenizers`' Split(Regex, Isolated) does.
    @Test(arguments: RegexSplitter.allCases)
    func scannerMatchesTokenizersSplit(_ splitter: RegexSplitter) throws {
        let splits = try TokenizerFixtures.json("splits.json")
        let entry = try #require(splits["\(splitter)"] as? [String: Any])
        #expect(entry["pattern"] as? String == splitter.rawValue)
        let expected = try #require(entry["ends"] as? [Int])
        let scalars = Array(try TokenizerFixtures.corpus().unicodeScalars)
        var ends: [Int] = []
        splitter.appendMatchEnds(of: scalars[...], to: &ends)
        #expect(ends.count > 30_000)
        let index = (0..<min(ends.count, expected.count)).first { ends[$0] != expected[$0] }
        #expect(index == nil && ends.count == expected.count, "first difference at piece \(index ?? -1)")
    }

    static func pieces(_ splitter: RegexSplitter, _ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        var ends: [Int] = []
        splitter.appendMatchEnds(of: scalars[...], to: &ends)
        var start = 0
        return ends.map { end in
            defer { start = end }
            return String(String.UnicodeScalarView(scalars[start..<end]))
        }
    }

    /// Expected pieces as printed by `tokenizers`' `Split(Regex(pattern), "isolated").pre_tokenize_str`.
    @Test(arguments: [
        (RegexSplitter.gpt2, "Hello  world", ["Hello", " ", " world"]),
        (.gpt2, "it's 2024!\n\n  x", ["it", "'s", " 2024", "!", "\n\n ", " x"]),
        (.gpt2, "a\t\tb", ["a", "\t", "\t", "b"]),
        (.gpt2, "I'M", ["I", "'", "M"]),
        (.llama3, "I'M 1234567", ["I", "'M", " ", "123", "456", "7"]),
        (.llama3, "x.\n\n  y", ["x", ".\n\n", " ", " y"]),
        (.llama3, "a \n\t b", ["a", " \n", "\t", " b"]),
        (.qwen2, "v1.25", ["v", "1", ".", "2", "5"]),
        (.qwen2, "end   ", ["end", "   "]),
    ])
    func handCases(splitter: RegexSplitter, text: String, expected: [String]) {
        #expect(Self.pieces(splitter, text) == expected)
    }

    @Test func scalarClassesFollowUnicodeCategories() {
        #expect(ScalarClass.of("a") == .letter)
        #expect(ScalarClass.of("東") == .letter)
        #expect(ScalarClass.of("٣") == .number)
        #expect(ScalarClass.of("½") == .number)
        #expect(ScalarClass.of("\u{3000}") == .whitespace)
        #expect(ScalarClass.of("\u{A0}") == .whitespace)
        #expect(ScalarClass.of("\u{200D}") == .other)
        #expect(ScalarClass.of("'") == .other)
    }

    @Test func byteTableIsABijectionWithGPT2Anchors() {
        #expect(Set(ByteLevel.scalarForByte).count == 256)
        #expect(ByteLevel.scalarForByte[Int(UInt8(ascii: " "))] == "\u{120}")  // Ġ
        #expect(ByteLevel.scalarForByte[Int(UInt8(ascii: "\n"))] == "\u{10A}")  // Ċ
        #expect(ByteLevel.scalarForByte[Int(UInt8(ascii: "A"))] == "A")
        for byte in 0..<256 {
            #expect(ByteLevel.byteForScalar[Int(ByteLevel.scalarForByte[byte].value)] == UInt8(byte))
        }
        let text = "naïve 東京 👩‍👩‍👧"
        let mapped = ByteLevel.encode(Array(text.unicodeScalars)[...])
        let bytes = ByteLevel.decode(String(String.UnicodeScalarView(mapped)))
        #expect(bytes == Array(text.utf8))
    }

    /// Ranks decide, not order of appearance: "b c" (rank 0) before "a b" (rank 1), then "a bc" (rank 2).
    @Test func mergesFollowRanks() throws {
        let tokenizer = try Tokenizer(data: TinyTokenizer.data(TinyTokenizer.spec()))
        #expect(try tokenizer.encode("abc") == [5])
        #expect(try tokenizer.encode("ab") == [3])
        #expect(try tokenizer.encode("cab") == [2, 3])
        #expect(try tokenizer.encode("bcab<eos>ab") == [4, 3, 8, 3])
        #expect(try tokenizer.decode([4, 3, 8, 6, 0]) == "bcab<eos> a")
        #expect(tokenizer.id(forToken: "<eos>") == 8)
        #expect(tokenizer.id(forToken: "abc") == 5)
        #expect(tokenizer.id(forToken: "zzz") == nil)
    }

    @Test func modelWithoutTypeIsBPEWhenItHasMerges() throws {
        var spec = TinyTokenizer.spec()
        var model = try #require(spec["model"] as? [String: Any])
        model.removeValue(forKey: "type")
        spec["model"] = model
        #expect(try Tokenizer(data: TinyTokenizer.data(spec)).encode("abc") == [5])
        model.removeValue(forKey: "merges")
        spec["model"] = model
        #expect(throws: TokenizerError.missingField(path: "model.type", expected: "a string")) {
            try Tokenizer(data: TinyTokenizer.data(spec))
        }
    }

    @Test func heapPopsByRankThenPosition() {
        var heap = MinHeap()
        for (rank, position) in [(5, 1), (2, 9), (2, 3), (7, 0), (2, 4)] {
            heap.push(rank: Int32(rank), position: position)
        }
        var popped: [Int] = []
        while let (_, position) = heap.pop() { popped.append(position) }
        #expect(popped == [3, 4, 9, 1, 0])
    }

    @Test func byteFallbackDecoderReplacesInvalidRunsPerByte() {
        let decoded = TokenDecoder.byteFallback(["a", "<0xE6>", "<0x9D>", "<0xB1>", "b", "<0xFF>", "<0xFE>", "<0x41>"])
        #expect(decoded == ["a", "東", "b", "\u{FFFD}", "\u{FFFD}", "\u{FFFD}"])
    }

    @Test func stripAndMetaspaceDecoders() {
        #expect(TokenDecoder.strip("  x  ", content: " ", start: 1, stop: 0) == " x  ")
        #expect(TokenDecoder.strip("  x  ", content: " ", start: 5, stop: 1) == "x ")
        let metaspace = TokenDecoder.metaspace(replacement: "\u{2581}", prependScheme: .first)
        #expect(metaspace.decodeChain(["\u{2581}Hello", "\u{2581}world"]) == ["Hello", " world"])
    }

    @Test func normalizersPrependOnlyNonEmptyAndReplaceLiterally() {
        let llama: Normalizer = .sequence([.prepend(["\u{2581}"]), .replace(pattern: [" "], content: ["\u{2581}"])])
        #expect(llama.apply(Array("a b".unicodeScalars)) == Array("\u{2581}a\u{2581}b".unicodeScalars))
        #expect(llama.apply([]) == [])
        #expect(Normalizer.nfc.apply(Array("e\u{301}".unicodeScalars)) == ["\u{E9}"])
    }

    @Test func concurrentEncodesAgreeWithSequential() async throws {
        let tokenizer = try TokenizerFixtures.tokenizer("smollm2")
        let corpus = try TokenizerFixtures.corpus()
        let expected = try tokenizer.encode(corpus)
        try await withThrowingTaskGroup(of: [Int32].self) { group in
            for _ in 0..<2 { group.addTask { try tokenizer.encode(corpus) } }
            for try await ids in group { #expect(ids == expected) }
        }
    }

    @Test func smolLM2PublicSurface() throws {
        let tokenizer = try TokenizerFixtures.tokenizer("smollm2")
        #expect(tokenizer.vocabularySize == 49_152)
        #expect(tokenizer.id(forToken: "<|im_start|>") == 1)
        #expect(tokenizer.token(forID: 1) == "<|im_start|>")
        #expect(try tokenizer.decode([1, 9690], skipSpecialTokens: true) == tokenizer.decode([9690]))
    }
}
