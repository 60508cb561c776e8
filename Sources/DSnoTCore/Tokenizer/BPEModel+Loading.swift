// SPDX-License-Identifier: Apache-2.0
// Reads and validates the `model` section of a tokenizer.json (type BPE).

extension BPEModel {
    static let supportedModels = ["BPE"]

    static func load(_ object: JSONObject) throws(TokenizerError) -> BPEModel {
        // Files from early `tokenizers` versions have no model `type`; like `tokenizers`, infer BPE from `merges`.
        let type = object.isNull("type") && !object.isNull("merges") ? "BPE" : try object.string("type")
        guard type == "BPE" else {
            throw .unsupportedComponent(path: object.path, type: type, supported: supportedModels)
        }
        for option in ["continuing_subword_prefix", "end_of_word_suffix"] where !object.isNull(option) {
            let value = try object.string(option)
            if !value.isEmpty {
                throw .unsupportedOption(
                    path: object.path,
                    option: option,
                    got: value.debugDescription,
                    supported: "null"
                )
            }
        }
        if !object.isNull("dropout") {
            let dropout = try object.value("dropout", expected: "a number")
            if (dropout as? Double) != 0 {
                throw .unsupportedOption(
                    path: object.path,
                    option: "dropout",
                    got: JSONObject.kind(of: dropout),
                    supported: "null or 0"
                )
            }
        }
        let vocabulary = try loadVocabulary(object.object("vocab"))
        var scalarIDs: [Unicode.Scalar: Int32] = [:]
        for (token, id) in vocabulary {
            var scalars = token.unicodeScalars.makeIterator()
            if let first = scalars.next(), scalars.next() == nil { scalarIDs[first] = id }
        }
        let merges = try loadMerges(object.array("merges"), vocabulary: vocabulary)
        var unknownID: Int32? = nil
        if let unknown = try object.optionalString("unk_token") {
            guard let id = vocabulary[unknown] else {
                throw .unknownToken(path: object.fieldPath("unk_token"), token: unknown)
            }
            unknownID = id
        }
        var byteIDs: [Int32?]? = nil
        if try object.bool("byte_fallback", default: false) {
            byteIDs = (0..<256).map { byte in
                let hex = String(byte, radix: 16, uppercase: true)
                return vocabulary["<0x\(hex.count == 1 ? "0" + hex : hex)>"]
            }
        }
        let ignoreMerges = try object.bool("ignore_merges", default: false)
        return BPEModel(
            vocabulary: vocabulary,
            scalarIDs: scalarIDs,
            merges: merges,
            byteIDs: byteIDs,
            unknownID: unknownID,
            fuseUnknown: try object.bool("fuse_unk", default: false),
            ignoreMerges: ignoreMerges,
            wordBoundary: ignoreMerges ? nil : safeWordBoundary(vocabulary, scalarIDs: scalarIDs)
        )
    }

    /// `▁` if no token has it after another scalar (see ``BPEModel/wordBoundary``), else nil.
    static func safeWordBoundary(_ vocabulary: [String: Int32], scalarIDs: [Unicode.Scalar: Int32]) -> Unicode.Scalar? {
        let boundary: Unicode.Scalar = "\u{2581}"
        guard scalarIDs[boundary] != nil else { return nil }
        for token in vocabulary.keys {
            var previous: Unicode.Scalar? = nil
            for scalar in token.unicodeScalars {
                if scalar == boundary, let previous, previous != boundary { return nil }
                previous = scalar
            }
        }
        return boundary
    }

    static func loadVocabulary(_ object: JSONObject) throws(TokenizerError) -> [String: Int32] {
        var vocabulary: [String: Int32] = [:]
        vocabulary.reserveCapacity(object.fields.count)
        var seen = Set<Int32>()
        for (token, value) in object.fields {
            let id = try JSONObject.integer(value, path: object.fieldPath(token))
            guard let narrow = Int32(exactly: id), narrow >= 0, narrow < Int32.max else {
                throw .invalidField(path: object.fieldPath(token), expected: "an id in [0, 2^31 - 1)", got: "\(id)")
            }
            guard seen.insert(narrow).inserted else {
                throw .invalidField(path: object.fieldPath(token), expected: "a unique id", got: "duplicate id \(id)")
            }
            vocabulary[token] = narrow
        }
        return vocabulary
    }

    /// Merges as `"a b"` strings or `["a", "b"]` pairs; a later duplicate overrides the rank of an earlier one,
    /// as in `tokenizers`.
    static func loadMerges(_ list: [Any], vocabulary: [String: Int32]) throws(TokenizerError) -> [UInt64: Merge] {
        var merges: [UInt64: Merge] = [:]
        merges.reserveCapacity(list.count)
        for (index, entry) in list.enumerated() {
            let left: String
            let right: String
            if let string = entry as? String {
                let parts = string.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw .invalidMerge(
                        index: index,
                        merge: string,
                        reason: "expected two tokens separated by one space"
                    )
                }
                (left, right) = (String(parts[0]), String(parts[1]))
            } else if let pair = entry as? [Any], pair.count == 2, let first = pair[0] as? String,
                let second = pair[1] as? String
            {
                (left, right) = (first, second)
            } else {
                throw .invalidMerge(
                    index: index,
                    merge: JSONObject.kind(of: entry),
                    reason: "expected \"a b\" or [\"a\", \"b\"]"
                )
            }
            guard let leftID = vocabulary[left], let rightID = vocabulary[right] else {
                throw .invalidMerge(index: index, merge: "\(left) \(right)", reason: "a token is not in the vocabulary")
            }
            guard let mergedID = vocabulary[left + right] else {
                throw .invalidMerge(
                    index: index,
                    merge: "\(left) \(right)",
                    reason: "the merged token is not in the vocabulary"
                )
            }
            guard let rank = Int32(exactly: index) else {
                throw .invalidMerge(index: index, merge: "\(left) \(right)", reason: "too many merges")
            }
            merges[pairKey(leftID, rightID)] = Merge(rank: rank, id: mergedID)
        }
        return merges
    }
}
