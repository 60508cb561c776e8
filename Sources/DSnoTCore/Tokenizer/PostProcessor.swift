// SPDX-License-Identifier: Apache-2.0
// Post-processors: the special tokens added around an encoding when `addSpecialTokens` is set.

/// The supported `post_processor` components, reduced to what they do to the ids of a single sequence.
struct PostProcessor: Sendable {
    /// Ids before and after the sequence (`TemplateProcessing`'s `single` template, e.g. `<s> $A`).
    var prefix: [Int32] = []
    var suffix: [Int32] = []

    func apply(_ ids: [Int32]) -> [Int32] {
        prefix.isEmpty && suffix.isEmpty ? ids : prefix + ids + suffix
    }

    static let supported = ["TemplateProcessing", "ByteLevel", "Sequence"]

    /// Parses a `post_processor` object (nil: none).
    static func load(_ object: JSONObject?) throws(TokenizerError) -> PostProcessor {
        guard let object else { return PostProcessor() }
        let type = try object.string("type")
        switch type {
        case "ByteLevel":
            // Only adjusts offsets in `tokenizers`; the ids are unchanged.
            return PostProcessor()
        case "Sequence":
            var combined = PostProcessor()
            for step in try object.objects("processors") {
                let inner = try load(step)
                combined.prefix = inner.prefix + combined.prefix
                combined.suffix += inner.suffix
            }
            return combined
        case "TemplateProcessing":
            return try template(object)
        default:
            throw .unsupportedComponent(path: object.path, type: type, supported: supported)
        }
    }

    /// `single`: special tokens before and after exactly one `Sequence` item `A`.
    private static func template(_ object: JSONObject) throws(TokenizerError) -> PostProcessor {
        let specials = try object.object("special_tokens")
        var result = PostProcessor()
        var seenSequence = false
        for item in try object.objects("single") {
            if let sequence = try item.optionalObject("Sequence") {
                let id = try sequence.string("id")
                guard id == "A", !seenSequence else {
                    throw .unsupportedOption(
                        path: sequence.path,
                        option: "id",
                        got: id,
                        supported: "a single sequence A"
                    )
                }
                seenSequence = true
            } else if let special = try item.optionalObject("SpecialToken") {
                let name = try special.string("id")
                guard let entry = try specials.optionalObject(name) else {
                    throw .unknownToken(path: specials.path, token: name)
                }
                var ids: [Int32] = []
                for (index, value) in try entry.array("ids").enumerated() {
                    let id = try JSONObject.integer(value, path: "\(entry.fieldPath("ids"))[\(index)]")
                    guard let narrow = Int32(exactly: id), narrow >= 0 else {
                        throw .invalidField(path: entry.fieldPath("ids"), expected: "ids in Int32", got: "\(id)")
                    }
                    ids.append(narrow)
                }
                if seenSequence { result.suffix += ids } else { result.prefix += ids }
            } else {
                throw .invalidField(
                    path: item.path,
                    expected: "a Sequence or SpecialToken item",
                    got: "\(item.fields.keys.sorted())"
                )
            }
        }
        return result
    }
}
