// SPDX-License-Identifier: Apache-2.0
// Reads the components of a tokenizer.json into the tokenizer's internal types, rejecting the unsupported.

/// Everything a ``Tokenizer`` is built from.
struct LoadedTokenizer {
    var model: BPEModel
    var normalizer: Normalizer?
    var preTokenizer: PreTokenizer?
    var decoder: TokenDecoder?
    var postProcessor: PostProcessor
    var addedTokens: [AddedToken]
    var vocabularySize: Int
}

enum TokenizerLoader {
    static func load(_ root: JSONObject) throws(TokenizerError) -> LoadedTokenizer {
        let model = try BPEModel.load(try root.object("model"))
        let normalizer = try loadNormalizer(root.optionalObject("normalizer"))
        let addedTokens = try loadAddedTokens(root)
        // `tokenizers` gives an added token whose content is in the vocabulary that vocabulary id, whatever the
        // file says; a file that disagrees would encode differently here, so it is refused.
        for token in addedTokens {
            let content = String(String.UnicodeScalarView(token.content))
            if let id = model.vocabulary[content], id != token.id {
                throw .invalidField(
                    path: "added_tokens",
                    expected: "\(content.debugDescription) with its vocabulary id \(id)",
                    got: "id \(token.id)"
                )
            }
        }
        var size = (model.vocabulary.values.max() ?? -1) + 1
        for token in addedTokens { size = max(size, token.id + 1) }
        // The id → token table has `size` entries: refuse sparse ids that would make a tiny file allocate gigabytes.
        let entries = model.vocabulary.count + addedTokens.count
        guard Int(size) <= 2 * entries + 1024 else {
            throw .invalidField(
                path: "model.vocab",
                expected: "ids below \(2 * entries + 1024) for \(entries) tokens",
                got: "largest id \(size - 1)"
            )
        }
        return LoadedTokenizer(
            model: model,
            normalizer: normalizer,
            preTokenizer: try loadPreTokenizer(root.optionalObject("pre_tokenizer")),
            decoder: try loadDecoder(root.optionalObject("decoder")),
            postProcessor: try PostProcessor.load(root.optionalObject("post_processor")),
            addedTokens: addedTokens,
            vocabularySize: Int(size)
        )
    }

    static func scalars(_ string: String) -> [Unicode.Scalar] { Array(string.unicodeScalars) }

    /// A string that must be exactly one Unicode scalar (Metaspace replacement, Strip content).
    static func singleScalar(_ object: JSONObject, _ key: String) throws(TokenizerError) -> Unicode.Scalar {
        let string = try object.string(key)
        let all = scalars(string)
        guard all.count == 1 else {
            throw .invalidField(
                path: object.fieldPath(key),
                expected: "a single character",
                got: string.debugDescription
            )
        }
        return all[0]
    }

    /// A `Replace` pattern: only `{"String": …}` is supported, regexes are rejected.
    static func literalPattern(_ object: JSONObject) throws(TokenizerError) -> String {
        let pattern = try object.object("pattern")
        if let regex = try pattern.optionalString("Regex") {
            throw .unsupportedRegex(path: pattern.path, pattern: regex, supported: ["literal {\"String\": …} patterns"])
        }
        return try pattern.string("String")
    }

    static let supportedNormalizers = ["Sequence", "Prepend", "Replace", "NFC"]

    static func loadNormalizer(_ object: JSONObject?) throws(TokenizerError) -> Normalizer? {
        guard let object else { return nil }
        let type = try object.string("type")
        switch type {
        case "Sequence":
            var steps: [Normalizer] = []
            for step in try object.objects("normalizers") {
                if let normalizer = try loadNormalizer(step) { steps.append(normalizer) }
            }
            return .sequence(steps)
        case "Prepend":
            return .prepend(scalars(try object.string("prepend")))
        case "Replace":
            return .replace(
                pattern: scalars(try literalPattern(object)),
                content: scalars(try object.string("content"))
            )
        case "NFC":
            return .nfc
        default:
            throw .unsupportedComponent(path: object.path, type: type, supported: supportedNormalizers)
        }
    }

    static let supportedPreTokenizers = ["Sequence", "ByteLevel", "Split", "Digits", "Metaspace"]

    static func loadPreTokenizer(_ object: JSONObject?) throws(TokenizerError) -> PreTokenizer? {
        guard let object else { return nil }
        let type = try object.string("type")
        switch type {
        case "Sequence":
            var steps: [PreTokenizer] = []
            for step in try object.objects("pretokenizers") {
                if let preTokenizer = try loadPreTokenizer(step) { steps.append(preTokenizer) }
            }
            return .sequence(steps)
        case "ByteLevel":
            return .byteLevel(
                addPrefixSpace: try object.bool("add_prefix_space", default: true),
                useRegex: try object.bool("use_regex", default: true)
            )
        case "Digits":
            return .digits(individualDigits: try object.bool("individual_digits", default: false))
        case "Metaspace":
            return .metaspace(
                replacement: try singleScalar(object, "replacement"),
                prependScheme: try prependScheme(object),
                split: try object.bool("split", default: true)
            )
        case "Split":
            return try loadSplit(object)
        default:
            throw .unsupportedComponent(path: object.path, type: type, supported: supportedPreTokenizers)
        }
    }

    /// `Split` with one of the hand-implemented regexes, behaviour `Isolated`, not inverted.
    static func loadSplit(_ object: JSONObject) throws(TokenizerError) -> PreTokenizer {
        let pattern = try object.object("pattern")
        guard let regex = try pattern.optionalString("Regex") else {
            let literal = (try? pattern.string("String")) ?? "?"
            throw .unsupportedOption(
                path: pattern.path,
                option: "String",
                got: literal.debugDescription,
                supported: "Regex patterns of GPT-2, LLaMA-3 or Qwen2"
            )
        }
        guard let splitter = RegexSplitter(rawValue: regex) else {
            throw .unsupportedRegex(
                path: pattern.path,
                pattern: regex,
                supported: RegexSplitter.allCases.map { "\($0) \($0.rawValue.debugDescription)" }
            )
        }
        let behavior = try object.string("behavior")
        guard behavior == "Isolated" else {
            throw .unsupportedOption(path: object.path, option: "behavior", got: behavior, supported: "Isolated")
        }
        guard try !object.bool("invert", default: false) else {
            throw .unsupportedOption(path: object.path, option: "invert", got: "true", supported: "false")
        }
        return .split(splitter)
    }

    /// `prepend_scheme` (newer files) or the boolean `add_prefix_space` (older files).
    static func prependScheme(_ object: JSONObject) throws(TokenizerError) -> PrependScheme {
        if let raw = try object.optionalString("prepend_scheme") {
            guard let scheme = PrependScheme(rawValue: raw) else {
                throw .unsupportedOption(
                    path: object.path,
                    option: "prepend_scheme",
                    got: raw,
                    supported: "always, first, never"
                )
            }
            return scheme
        }
        return try object.bool("add_prefix_space", default: true) ? .always : .never
    }

    static let supportedDecoders = ["Sequence", "ByteLevel", "Replace", "ByteFallback", "Fuse", "Strip", "Metaspace"]

    static func loadDecoder(_ object: JSONObject?) throws(TokenizerError) -> TokenDecoder? {
        guard let object else { return nil }
        let type = try object.string("type")
        switch type {
        case "Sequence":
            var steps: [TokenDecoder] = []
            for step in try object.objects("decoders") {
                if let decoder = try loadDecoder(step) { steps.append(decoder) }
            }
            return .sequence(steps)
        case "ByteLevel": return .byteLevel
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Replace":
            return .replace(pattern: try literalPattern(object), content: try object.string("content"))
        case "Strip":
            let start = try object.int("start")
            let stop = try object.int("stop")
            guard start >= 0, stop >= 0 else {
                throw .invalidField(path: object.path, expected: "start, stop >= 0", got: "\(start), \(stop)")
            }
            return .strip(content: try singleScalar(object, "content"), start: start, stop: stop)
        case "Metaspace":
            return .metaspace(
                replacement: try singleScalar(object, "replacement"),
                prependScheme: try prependScheme(object)
            )
        default:
            throw .unsupportedComponent(path: object.path, type: type, supported: supportedDecoders)
        }
    }

    static func loadAddedTokens(_ root: JSONObject) throws(TokenizerError) -> [AddedToken] {
        guard !root.isNull("added_tokens") else { return [] }
        var result: [AddedToken] = []
        for entry in try root.objects("added_tokens") {
            let id = try entry.int("id")
            guard let narrow = Int32(exactly: id), narrow >= 0, narrow < Int32.max else {
                throw .invalidField(path: entry.fieldPath("id"), expected: "an id in [0, 2^31 - 1)", got: "\(id)")
            }
            let content = try entry.string("content")
            guard !content.isEmpty else {
                throw .invalidField(path: entry.fieldPath("content"), expected: "a non-empty string", got: "\"\"")
            }
            if try entry.bool("single_word", default: false) {
                throw .unsupportedOption(path: entry.path, option: "single_word", got: "true", supported: "false")
            }
            let normalized = try entry.bool("normalized", default: false)
            result.append(
                AddedToken(
                    id: narrow,
                    content: scalars(content),
                    special: try entry.bool("special", default: false),
                    leftStrip: try entry.bool("lstrip", default: false),
                    rightStrip: try entry.bool("rstrip", default: false),
                    normalized: normalized
                )
            )
        }
        return result
    }
}
