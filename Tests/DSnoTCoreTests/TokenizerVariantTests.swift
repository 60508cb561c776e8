// SPDX-License-Identifier: Apache-2.0
// LLaMA-3, Qwen2 (with NFC), GPT-2 and Metaspace layouts and lstrip/rstrip added tokens vs `tokenizers`.

import DSnoTCore
import Foundation
import Testing

/// Each variant is a committed base tokenizer.json with a patch (from variants.json) applied exactly as
/// scripts/make-tokenizer-fixtures.py applied it before asking `tokenizers` for the reference ids.
@Suite struct TokenizerVariantTests {
    static func variants() throws -> [[String: Any]] {
        let data = try Data(contentsOf: TokenizerFixtures.directory().appendingPathComponent("variants.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
    }

    static let names = [
        "llama3-pretokenizer", "qwen2-pretokenizer-nfc", "gpt2-prefix-space", "metaspace-always-nosplit",
        "digits-contiguous", "unk-fused-no-byte-fallback", "unk-unfused-no-byte-fallback", "strip-added-token",
        "normalized-added-tokens",
    ]

    /// Recursive merge: patch values replace base values, nested objects merge.
    static func merge(_ base: [String: Any], _ patch: [String: Any]) -> [String: Any] {
        var result = base
        for (key, value) in patch {
            if let inner = value as? [String: Any], let baseInner = base[key] as? [String: Any] {
                result[key] = merge(baseInner, inner)
            } else {
                result[key] = value
            }
        }
        return result
    }

    static func tokenizer(for variant: [String: Any]) throws -> Tokenizer {
        let base = try #require(variant["base"] as? String)
        var patch = try #require(variant["patch"] as? [String: Any])
        let extra = patch.removeValue(forKey: "append_added_tokens") as? [[String: Any]] ?? []
        var spec = merge(try TokenizerFixtures.json("\(base)/tokenizer.json"), patch)
        let model = try #require(spec["model"] as? [String: Any])
        let vocabulary = try #require(model["vocab"] as? [String: Int])
        var added = try #require(spec["added_tokens"] as? [[String: Any]])
        var size = try #require(vocabulary.values.max()) + 1
        for token in added { size = max(size, try #require(token["id"] as? Int) + 1) }
        // Ids as `tokenizers` assigns them: the vocabulary id of a content that is already a token, else the next.
        for token in extra {
            let content = try #require(token["content"] as? String)
            if let id = vocabulary[content] {
                added.append(merge(token, ["id": id]))
            } else {
                added.append(merge(token, ["id": size]))
                size += 1
            }
        }
        spec["added_tokens"] = added
        return try Tokenizer(data: JSONSerialization.data(withJSONObject: spec))
    }

    @Test(arguments: names)
    func variantMatchesReference(name: String) throws {
        let variant = try #require(try Self.variants().first { $0["name"] as? String == name })
        let tokenizer = try Self.tokenizer(for: variant)
        let corpus = try TokenizerFixtures.corpus()
        let expected = try TokenizerFixtures.ids(variant["corpus_ids"])
        let got = try tokenizer.encode(corpus)
        #expect(got.count > 40_000)
        #expect(got == expected, "\(name): \(TokenizerFixtures.firstDifference(got, expected))")
        let lossless = try #require(variant["corpus_decoded_equals_corpus"] as? Bool)
        #expect((try tokenizer.decode(got) == corpus) == lossless)

        let cases = try #require(variant["cases"] as? [[String: Any]])
        try #require(cases.count >= 10)
        for entry in cases {
            let text = try #require(entry["text"] as? String)
            let ids = try TokenizerFixtures.ids(entry["ids"])
            #expect(try tokenizer.encode(text) == ids, "\(name): \(text.debugDescription)")
            #expect(
                try tokenizer.encode(text, addSpecialTokens: true) == TokenizerFixtures.ids(entry["ids_with_special"]),
                "\(name) with special tokens: \(text.debugDescription)"
            )
            #expect(
                try tokenizer.decode(ids) == entry["decoded"] as? String,
                "\(name) decode: \(text.debugDescription)"
            )
        }
    }

    @Test func everyCommittedVariantIsTested() throws {
        let committed = try Self.variants().compactMap { $0["name"] as? String }
        #expect(committed == Self.names)
    }
}
