// SPDX-License-Identifier: Apache-2.0
// Corrupt and unsupported tokenizer.json files are rejected with errors naming what, where and the options.

import DSnoTCore
import Foundation
import Testing

/// A tiny valid byte-level tokenizer.json as a mutable dictionary.
enum TinyTokenizer {
    static func spec() -> [String: Any] {
        let vocabulary: [String: Int] = ["a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5, "Ġ": 6, "<unk>": 7]
        return [
            "version": "1.0",
            "added_tokens": [
                [
                    "id": 8, "content": "<eos>", "single_word": false, "lstrip": false, "rstrip": false,
                    "normalized": false, "special": true,
                ] as [String: Any]
            ],
            "normalizer": NSNull(),
            "pre_tokenizer": ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true] as [String: Any],
            "post_processor": NSNull(),
            "decoder": ["type": "ByteLevel"],
            "model": [
                "type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "fuse_unk": false, "byte_fallback": false,
                "vocab": vocabulary, "merges": ["b c", "a b", "a bc"],
            ] as [String: Any],
        ]
    }

    static func data(_ spec: [String: Any]) throws -> Data {
        try JSONSerialization.data(withJSONObject: spec)
    }

    /// `spec()` with `model[key] = value`.
    static func withModel(_ key: String, _ value: Any) -> [String: Any] {
        var result = spec()
        var model = result["model"] as? [String: Any] ?? [:]
        model[key] = value
        result["model"] = model
        return result
    }

    static func with(_ key: String, _ value: Any) -> [String: Any] {
        var result = spec()
        result[key] = value
        return result
    }
}

@Suite struct TokenizerErrorTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let json: @Sendable () throws -> Data
        let matches: @Sendable (TokenizerError) -> Bool
        /// Text the description must contain.
        let mentions: String
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "truncated JSON",
            json: { Data("{\"model\": {\"type\": \"BPE\"".utf8) },
            matches: {
                if case .invalidJSON = $0 { true } else { false }
            },
            mentions: "not a valid JSON object"
        ),
        Case(
            name: "root is an array",
            json: { Data("[1, 2]".utf8) },
            matches: {
                if case .invalidJSON = $0 { true } else { false }
            },
            mentions: "expected an object"
        ),
        Case(
            name: "no model",
            json: { try TinyTokenizer.data(TinyTokenizer.with("model", NSNull())) },
            matches: {
                $0 == .missingField(path: "model", expected: "an object")
            },
            mentions: "model"
        ),
        Case(
            name: "WordPiece model",
            json: { try TinyTokenizer.data(TinyTokenizer.withModel("type", "WordPiece")) },
            matches: {
                $0 == .unsupportedComponent(path: "model", type: "WordPiece", supported: ["BPE"])
            },
            mentions: "supported: BPE"
        ),
        Case(
            name: "Lowercase normalizer",
            json: {
                try TinyTokenizer.data(TinyTokenizer.with("normalizer", ["type": "Lowercase"]))
            },
            matches: {
                $0
                    == .unsupportedComponent(
                        path: "normalizer",
                        type: "Lowercase",
                        supported: ["Sequence", "Prepend", "Replace", "NFC"]
                    )
            },
            mentions: "Prepend"
        ),
        Case(
            name: "nested unsupported pre-tokenizer",
            json: {
                try TinyTokenizer.data(
                    TinyTokenizer.with(
                        "pre_tokenizer",
                        ["type": "Sequence", "pretokenizers": [["type": "Whitespace"]]] as [String: Any]
                    )
                )
            },
            matches: {
                if case .unsupportedComponent(let path, let type, _) = $0 {
                    path == "pre_tokenizer.pretokenizers[0]" && type == "Whitespace"
                } else {
                    false
                }
            },
            mentions: "Metaspace"
        ),
        Case(
            name: "unknown Split regex",
            json: {
                try TinyTokenizer.data(
                    TinyTokenizer.with(
                        "pre_tokenizer",
                        ["type": "Split", "pattern": ["Regex": "\\w+"], "behavior": "Isolated", "invert": false]
                            as [String: Any]
                    )
                )
            },
            matches: {
                if case .unsupportedRegex(_, let pattern, let supported) = $0 {
                    pattern == "\\w+" && supported.count == 3
                } else {
                    false
                }
            },
            mentions: "llama3"
        ),
        Case(
            name: "Split behavior Removed",
            json: {
                try TinyTokenizer.data(
                    TinyTokenizer.with(
                        "pre_tokenizer",
                        [
                            "type": "Split",
                            "pattern": [
                                "Regex": #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
                            ],
                            "behavior": "Removed", "invert": false,
                        ] as [String: Any]
                    )
                )
            },
            matches: {
                $0
                    == .unsupportedOption(
                        path: "pre_tokenizer",
                        option: "behavior",
                        got: "Removed",
                        supported: "Isolated"
                    )
            },
            mentions: "Isolated"
        ),
        Case(
            name: "WordPiece decoder",
            json: {
                try TinyTokenizer.data(TinyTokenizer.with("decoder", ["type": "WordPiece"]))
            },
            matches: {
                if case .unsupportedComponent(let path, let type, _) = $0 {
                    path == "decoder" && type == "WordPiece"
                } else {
                    false
                }
            },
            mentions: "ByteFallback"
        ),
        Case(
            name: "Roberta post-processor",
            json: {
                try TinyTokenizer.data(TinyTokenizer.with("post_processor", ["type": "RobertaProcessing"]))
            },
            matches: {
                if case .unsupportedComponent(_, let type, _) = $0 { type == "RobertaProcessing" } else { false }
            },
            mentions: "TemplateProcessing"
        ),
        Case(
            name: "merge of an unknown token",
            json: {
                try TinyTokenizer.data(TinyTokenizer.withModel("merges", ["a b", "x y"]))
            },
            matches: {
                if case .invalidMerge(let index, _, _) = $0 { index == 1 } else { false }
            },
            mentions: "model.merges[1]"
        ),
        Case(
            name: "merge with three parts",
            json: {
                try TinyTokenizer.data(TinyTokenizer.withModel("merges", ["a b c"]))
            },
            matches: {
                if case .invalidMerge(0, "a b c", _) = $0 { true } else { false }
            },
            mentions: "two tokens"
        ),
        Case(
            name: "merged token missing",
            json: {
                try TinyTokenizer.data(TinyTokenizer.withModel("merges", [["c", "a"]]))
            },
            matches: {
                if case .invalidMerge(0, "c a", _) = $0 { true } else { false }
            },
            mentions: "merged token"
        ),
        Case(
            name: "vocabulary id is a string",
            json: {
                try TinyTokenizer.data(TinyTokenizer.withModel("vocab", ["a": "0"]))
            },
            matches: {
                if case .invalidField(let path, "an integer", _) = $0 { path == "model.vocab.a" } else { false }
            },
            mentions: "expected an integer"
        ),
        Case(
            name: "duplicate vocabulary id",
            json: {
                try TinyTokenizer.data(TinyTokenizer.withModel("vocab", ["a": 0, "b": 0]))
            },
            matches: {
                if case .invalidField(_, "a unique id", _) = $0 { true } else { false }
            },
            mentions: "duplicate id 0"
        ),
        Case(
            name: "unk_token not in vocabulary",
            json: {
                try TinyTokenizer.data(TinyTokenizer.withModel("unk_token", "<missing>"))
            },
            matches: {
                $0 == .unknownToken(path: "model.unk_token", token: "<missing>")
            },
            mentions: "<missing>"
        ),
        Case(
            name: "continuing_subword_prefix",
            json: {
                try TinyTokenizer.data(TinyTokenizer.withModel("continuing_subword_prefix", "##"))
            },
            matches: {
                if case .unsupportedOption(_, "continuing_subword_prefix", _, _) = $0 { true } else { false }
            },
            mentions: "null"
        ),
        Case(
            name: "BPE dropout",
            json: {
                try TinyTokenizer.data(TinyTokenizer.withModel("dropout", 0.1))
            },
            matches: {
                if case .unsupportedOption(_, "dropout", _, _) = $0 { true } else { false }
            },
            mentions: "dropout"
        ),
        Case(
            name: "single_word added token",
            json: {
                var spec = TinyTokenizer.spec()
                spec["added_tokens"] = [
                    ["id": 8, "content": "<eos>", "single_word": true, "special": true] as [String: Any]
                ]
                return try TinyTokenizer.data(spec)
            },
            matches: {
                $0
                    == .unsupportedOption(
                        path: "added_tokens[0]",
                        option: "single_word",
                        got: "true",
                        supported: "false"
                    )
            },
            mentions: "single_word"
        ),
        Case(
            name: "Replace normalizer with a regex",
            json: {
                try TinyTokenizer.data(
                    TinyTokenizer.with(
                        "normalizer",
                        ["type": "Replace", "pattern": ["Regex": " +"], "content": " "] as [String: Any]
                    )
                )
            },
            matches: {
                if case .unsupportedRegex(let path, " +", _) = $0 { path == "normalizer.pattern" } else { false }
            },
            mentions: "String"
        ),
        Case(
            name: "boolean given as a number",
            json: {
                try TinyTokenizer.data(TinyTokenizer.withModel("byte_fallback", 1))
            },
            matches: {
                $0 == .invalidField(path: "model.byte_fallback", expected: "a boolean", got: "number 1")
            },
            mentions: "expected a boolean"
        ),
    ]

    @Test(arguments: cases)
    func rejected(_ testCase: Case) throws {
        let data = try testCase.json()
        let error = #expect(throws: TokenizerError.self) { try Tokenizer(data: data) }
        let unwrapped = try #require(error)
        #expect(testCase.matches(unwrapped), "got \(unwrapped)")
        #expect(unwrapped.description.contains(testCase.mentions), "\(unwrapped.description)")
    }

    @Test func missingFileIsUnreadable() {
        #expect {
            try Tokenizer(contentsOf: "/nonexistent/tokenizer.json")
        } throws: { error in
            guard case .unreadable(let path, _) = error as? TokenizerError else { return false }
            return path == "/nonexistent/tokenizer.json"
        }
    }

    @Test func characterWithoutTokenIsAnErrorNotADrop() throws {
        var spec = TinyTokenizer.spec()
        spec["pre_tokenizer"] = NSNull()  // no byte-level mapping: "z" has no token
        let tokenizer = try Tokenizer(data: TinyTokenizer.data(spec))
        #expect(throws: TokenizerError.unencodableCharacter(scalar: 0x7A, offset: 3)) {
            try tokenizer.encode("abcz")
        }
    }

    @Test func decodeRejectsIDsOutsideTheVocabulary() throws {
        let tokenizer = try Tokenizer(data: TinyTokenizer.data(TinyTokenizer.spec()))
        #expect(tokenizer.vocabularySize == 9)
        #expect(throws: TokenizerError.idOutOfRange(id: 9, position: 1, vocabularySize: 9)) {
            try tokenizer.decode([0, 9])
        }
        #expect(throws: TokenizerError.idOutOfRange(id: -1, position: 0, vocabularySize: 9)) {
            try tokenizer.decode([-1])
        }
    }
}
