// SPDX-License-Identifier: Apache-2.0
// Errors of tokenizer.json loading, encoding and decoding: what, where, expected, got.

/// Everything that can go wrong when loading a `tokenizer.json` or encoding/decoding with it.
///
/// Loading is strict: a component type or option this implementation does not support is an error naming
/// the supported alternatives, never a silently different encoding.
public enum TokenizerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be read.
    case unreadable(path: String, reason: String)
    /// The bytes are not a JSON object.
    case invalidJSON(reason: String)
    /// A required field is absent.
    case missingField(path: String, expected: String)
    /// A field has the wrong JSON type or an invalid value.
    case invalidField(path: String, expected: String, got: String)
    /// A component `type` (normalizer, pre-tokenizer, model, decoder, post-processor) is not implemented.
    case unsupportedComponent(path: String, type: String, supported: [String])
    /// A component is known but one of its options has a value this implementation does not handle.
    case unsupportedOption(path: String, option: String, got: String, supported: String)
    /// A `Split` pre-tokenizer regex that is not one of the patterns implemented by hand.
    case unsupportedRegex(path: String, pattern: String, supported: [String])
    /// A merge rule names a token that is not in the vocabulary, or is malformed.
    case invalidMerge(index: Int, merge: String, reason: String)
    /// A token referenced by name (unk token, post-processor special token) is not in the vocabulary.
    case unknownToken(path: String, token: String)
    /// Encoding met a character with no vocabulary entry, no byte fallback and no unknown token.
    case unencodableCharacter(scalar: UInt32, offset: Int)
    /// Decoding met an id outside the vocabulary.
    case idOutOfRange(id: Int32, position: Int, vocabularySize: Int)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason):
            return "tokenizer file '\(path)': cannot read: \(reason)"
        case .invalidJSON(let reason):
            return "tokenizer.json: not a valid JSON object: \(reason)"
        case .missingField(let path, let expected):
            return "tokenizer.json \(path): missing, expected \(expected)"
        case .invalidField(let path, let expected, let got):
            return "tokenizer.json \(path): expected \(expected), got \(got)"
        case .unsupportedComponent(let path, let type, let supported):
            return "tokenizer.json \(path): unsupported type '\(type)', supported: \(supported.joined(separator: ", "))"
        case .unsupportedOption(let path, let option, let got, let supported):
            return "tokenizer.json \(path).\(option): unsupported value \(got), supported: \(supported)"
        case .unsupportedRegex(let path, let pattern, let supported):
            return "tokenizer.json \(path): unsupported regex \(pattern.debugDescription), "
                + "supported (exact strings): \(supported.joined(separator: ", "))"
        case .invalidMerge(let index, let merge, let reason):
            return "tokenizer.json model.merges[\(index)] \(merge.debugDescription): \(reason)"
        case .unknownToken(let path, let token):
            return "tokenizer.json \(path): token \(token.debugDescription) is not in the vocabulary"
        case .unencodableCharacter(let scalar, let offset):
            let hex = String(scalar, radix: 16, uppercase: true)
            return "encode: character U+\(hex) at scalar offset \(offset) has no token, "
                + "and the tokenizer has neither byte fallback nor an unknown token"
        case .idOutOfRange(let id, let position, let vocabularySize):
            return "decode: id \(id) at position \(position) is outside the vocabulary [0, \(vocabularySize))"
        }
    }
}
