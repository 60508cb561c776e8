// SPDX-License-Identifier: Apache-2.0
// Added tokens: split out of the text before normalization and pre-tokenization.

/// One `added_tokens` entry.
struct AddedToken: Sendable {
    var id: Int32
    var content: [Unicode.Scalar]
    var special: Bool
    var leftStrip: Bool
    var rightStrip: Bool
    var normalized: Bool
}

/// A part of the input: text still to be tokenized, or an added token already resolved.
enum Segment {
    case text(ArraySlice<Unicode.Scalar>)
    case token(Int32)
}

/// Leftmost-longest matching of added tokens, like the `tokenizers` package's Aho-Corasick split.
struct AddedTokenMatcher: Sendable {
    /// Candidate tokens by first scalar, longest first.
    private let byFirstScalar: [Unicode.Scalar: [AddedToken]]
    /// Fast reject for ASCII first scalars.
    private let asciiFirst: [Bool]

    init(_ tokens: [AddedToken]) {
        var table: [Unicode.Scalar: [AddedToken]] = [:]
        for token in tokens {
            guard let first = token.content.first else { continue }
            table[first, default: []].append(token)
        }
        for key in table.keys { table[key]?.sort { $0.content.count > $1.content.count } }
        byFirstScalar = table
        asciiFirst = (0..<128).map { value in table[Unicode.Scalar(UInt8(value))] != nil }
    }

    var isEmpty: Bool { byFirstScalar.isEmpty }

    /// Splits `scalars` into text and token segments; `lstrip`/`rstrip` tokens swallow adjacent whitespace.
    func split(_ scalars: ArraySlice<Unicode.Scalar>) -> [Segment] {
        guard !isEmpty else { return [.text(scalars)] }
        var segments: [Segment] = []
        var textStart = scalars.startIndex
        var index = scalars.startIndex
        while index < scalars.endIndex {
            let scalar = scalars[index]
            if scalar.value < 128 ? !asciiFirst[Int(scalar.value)] : byFirstScalar[scalar] == nil {
                index += 1
                continue
            }
            guard let token = longestMatch(in: scalars, at: index) else {
                index += 1
                continue
            }
            var start = index
            var end = index + token.content.count
            if token.leftStrip {
                while start > textStart, scalars[start - 1].properties.isWhitespace { start -= 1 }
            }
            if token.rightStrip {
                while end < scalars.endIndex, scalars[end].properties.isWhitespace { end += 1 }
            }
            if start > textStart { segments.append(.text(scalars[textStart..<start])) }
            segments.append(.token(token.id))
            textStart = end
            index = end
        }
        if textStart < scalars.endIndex { segments.append(.text(scalars[textStart..<scalars.endIndex])) }
        return segments
    }

    private func longestMatch(in scalars: ArraySlice<Unicode.Scalar>, at index: Int) -> AddedToken? {
        guard let candidates = byFirstScalar[scalars[index]] else { return nil }
        for token in candidates where index + token.content.count <= scalars.endIndex {
            if scalars[index..<(index + token.content.count)].elementsEqual(token.content) { return token }
        }
        return nil
    }
}
