// SPDX-License-Identifier: Apache-2.0
// Tokenizer: encode text to token ids and back with a Hugging Face tokenizer.json (BPE models).

public import Foundation

/// A BPE tokenizer loaded from a Hugging Face `tokenizer.json`, producing the same ids as the `tokenizers`
/// package for the components real LLaMA-family checkpoints use: byte-level BPE (GPT-2, SmolLM2, LLaMA-3,
/// Qwen2 pre-tokenizers) and SentencePiece-style BPE (Metaspace or Prepend/Replace normalizers, byte
/// fallback). Anything else is rejected at load time with a ``TokenizerError``.
///
/// ```swift
/// let tokenizer = try Tokenizer(contentsOf: "/models/smollm2/tokenizer.json")
/// let ids = try tokenizer.encode("The capital of France is")
/// let text = try tokenizer.decode(ids)
/// ```
///
/// Immutable and `Sendable`; `encode` keeps its word cache per call, so concurrent calls do not contend.
public final class Tokenizer: Sendable {
    let model: BPEModel
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let decoder: TokenDecoder?
    let postProcessor: PostProcessor
    /// Added tokens matched on the raw text, then (after normalization) those marked `normalized`.
    let rawAddedTokens: AddedTokenMatcher
    let normalizedAddedTokens: AddedTokenMatcher
    /// Token string for every id (model vocabulary and added tokens).
    let tokens: [String?]
    let specialIDs: Set<Int32>
    let addedVocabulary: [String: Int32]

    /// Number of ids, added tokens included (one more than the largest id).
    public var vocabularySize: Int { tokens.count }

    /// Loads `tokenizer.json` from a file.
    public convenience init(contentsOf path: String) throws(TokenizerError) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadable(path: path, reason: "\(error.localizedDescription)")
        }
        try self.init(data: data)
    }

    /// Parses the contents of a `tokenizer.json`.
    public init(data: Data) throws(TokenizerError) {
        let root = try JSONObject.parse(data)
        let loaded = try TokenizerLoader.load(root)
        model = loaded.model
        normalizer = loaded.normalizer
        preTokenizer = loaded.preTokenizer
        decoder = loaded.decoder
        postProcessor = loaded.postProcessor
        rawAddedTokens = AddedTokenMatcher(loaded.addedTokens.filter { !$0.normalized })
        // As in `tokenizers`, a `normalized` token is looked for in normalized text as its normalized content.
        let normalizer = loaded.normalizer
        normalizedAddedTokens = AddedTokenMatcher(
            loaded.addedTokens.filter(\.normalized).map { token in
                var normalizedToken = token
                normalizedToken.content = normalizer?.apply(token.content) ?? token.content
                return normalizedToken
            }
        )
        var tokens = [String?](repeating: nil, count: loaded.vocabularySize)
        for (token, id) in loaded.model.vocabulary { tokens[Int(id)] = token }
        var addedVocabulary: [String: Int32] = [:]
        for token in loaded.addedTokens {
            let content = String(String.UnicodeScalarView(token.content))
            // tokenizers 0.23 decodes a `normalized` added token as its normalized content.
            let decoded = token.normalized ? normalizer.map { $0.apply(token.content) } ?? token.content : token.content
            tokens[Int(token.id)] = String(String.UnicodeScalarView(decoded))
            addedVocabulary[content] = token.id
        }
        self.tokens = tokens
        self.addedVocabulary = addedVocabulary
        specialIDs = Set(loaded.addedTokens.filter(\.special).map(\.id))
    }

    /// The id of a token string (added tokens first, then the model vocabulary), or nil.
    public func id(forToken token: String) -> Int32? {
        addedVocabulary[token] ?? model.vocabulary[token]
    }

    /// The token string of an id, or nil when the id is outside the vocabulary.
    public func token(forID id: Int32) -> String? {
        id >= 0 && Int(id) < tokens.count ? tokens[Int(id)] : nil
    }

    /// Encodes `text`. Added and special tokens written in the text are always recognised; the
    /// post-processor's template (e.g. a leading `<s>`) is applied only with `addSpecialTokens`.
    public func encode(_ text: String, addSpecialTokens: Bool = false) throws(TokenizerError) -> [Int32] {
        let scalars = Array(text.unicodeScalars)
        var ids: [Int32] = []
        ids.reserveCapacity(scalars.count / 3 + 8)
        var cache: [ArraySlice<Unicode.Scalar>: [Int32]] = [:]
        for segment in rawAddedTokens.split(scalars[...]) {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let slice):
                let atOrigin = slice.startIndex == 0
                let normalized = normalizer.map { $0.apply(Array(slice)) } ?? Array(slice)
                for inner in normalizedAddedTokens.split(normalized[...]) {
                    switch inner {
                    case .token(let id):
                        ids.append(id)
                    case .text(let part):
                        let piece = Piece(scalars: Array(part), atOrigin: atOrigin && part.startIndex == 0)
                        try encodeWords(preTokenizer?.apply([piece]) ?? [piece], into: &ids, cache: &cache)
                    }
                }
            }
        }
        return addSpecialTokens ? postProcessor.apply(ids) : ids
    }

    /// Longest words are encoded without caching, so that a pathological input cannot grow the cache.
    private static let maxCachedWordLength = 64

    /// Encodes pre-tokenized words; when the model has a ``BPEModel/wordBoundary``, long words are first cut
    /// where no merge can cross, so that SentencePiece-style segments (one word per line) hit the cache.
    private func encodeWords(
        _ words: [Piece],
        into ids: inout [Int32],
        cache: inout [ArraySlice<Unicode.Scalar>: [Int32]]
    ) throws(TokenizerError) {
        for word in words where !word.scalars.isEmpty {
            let scalars = word.scalars
            guard let boundary = model.wordBoundary else {
                try encodeWord(scalars[...], into: &ids, cache: &cache)
                continue
            }
            var start = 0
            for index in 1..<scalars.count where scalars[index] == boundary && scalars[index - 1] != boundary {
                try encodeWord(scalars[start..<index], into: &ids, cache: &cache)
                start = index
            }
            try encodeWord(scalars[start...], into: &ids, cache: &cache)
        }
    }

    private func encodeWord(
        _ word: ArraySlice<Unicode.Scalar>,
        into ids: inout [Int32],
        cache: inout [ArraySlice<Unicode.Scalar>: [Int32]]
    ) throws(TokenizerError) {
        if word.count > Tokenizer.maxCachedWordLength {
            try model.encode(word: Array(word), into: &ids)
        } else if let cached = cache[word] {
            ids.append(contentsOf: cached)
        } else {
            var wordIDs: [Int32] = []
            try model.encode(word: Array(word), into: &wordIDs)
            cache[word] = wordIDs
            ids.append(contentsOf: wordIDs)
        }
    }

    /// Decodes ids to text through the tokenizer's decoder (tokens joined by spaces when it has none).
    /// Special tokens are kept unless `skipSpecialTokens`.
    public func decode(_ ids: [Int32], skipSpecialTokens: Bool = false) throws(TokenizerError) -> String {
        var strings: [String] = []
        strings.reserveCapacity(ids.count)
        for (position, id) in ids.enumerated() {
            guard let token = token(forID: id) else {
                throw .idOutOfRange(id: id, position: position, vocabularySize: tokens.count)
            }
            if skipSpecialTokens && specialIDs.contains(id) { continue }
            strings.append(token)
        }
        guard let decoder else { return strings.joined(separator: " ") }
        return decoder.decodeChain(strings).joined()
    }
}
