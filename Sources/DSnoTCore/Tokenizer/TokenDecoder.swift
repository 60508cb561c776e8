// SPDX-License-Identifier: Apache-2.0
// Decoders: turn the token strings of an id sequence back into text.

/// The supported `decoder` components of tokenizer.json, each a step over the list of token strings as in
/// the `tokenizers` package's `decode_chain`.
indirect enum TokenDecoder: Sendable {
    case sequence([TokenDecoder])
    /// Byte-level: table scalars back to bytes, then lossy UTF-8.
    case byteLevel
    /// Literal replacement inside every token.
    case replace(pattern: String, content: String)
    /// `<0xAB>` tokens back to bytes; a run of them that is not valid UTF-8 becomes one U+FFFD per byte.
    case byteFallback
    /// All tokens joined into one.
    case fuse
    /// Removes up to `start` leading and `stop` trailing `content` characters from every token.
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    /// `replacement` back to spaces; in the first token dropped when a prefix was prepended.
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme)

    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(tokens) { current, step in step.decodeChain(current) }
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens { bytes.append(contentsOf: ByteLevel.decode(token) ?? Array(token.utf8)) }
            return [String(decoding: bytes, as: UTF8.self)]
        case .replace(let pattern, let content):
            return tokens.map { $0.replacing(pattern, with: content) }
        case .byteFallback:
            return TokenDecoder.byteFallback(tokens)
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { TokenDecoder.strip($0, content: content, start: start, stop: stop) }
        case .metaspace(let replacement, let scheme):
            return tokens.enumerated().map { index, token in
                var result = String.UnicodeScalarView()
                for scalar in token.unicodeScalars {
                    if scalar == replacement {
                        if index == 0 && scheme != .never { continue }
                        result.append(" ")
                    } else {
                        result.append(scalar)
                    }
                }
                return String(result)
            }
        }
    }

    /// The byte of a `<0xAB>` token, or nil.
    static func fallbackByte(_ token: String) -> UInt8? {
        let utf8 = Array(token.utf8)
        guard utf8.count == 6, utf8[0] == UInt8(ascii: "<"), utf8[1] == UInt8(ascii: "0"),
            utf8[2] == UInt8(ascii: "x"), utf8[5] == UInt8(ascii: ">")
        else { return nil }
        return UInt8(String(decoding: utf8[3..<5], as: UTF8.self), radix: 16)
    }

    static func byteFallback(_ tokens: [String]) -> [String] {
        var result: [String] = []
        var pending: [UInt8] = []
        func flush() {
            guard !pending.isEmpty else { return }
            if let string = String(validating: pending, as: UTF8.self) {
                result.append(string)
            } else {
                result.append(contentsOf: repeatElement("\u{FFFD}", count: pending.count))
            }
            pending.removeAll(keepingCapacity: true)
        }
        for token in tokens {
            if let byte = fallbackByte(token) {
                pending.append(byte)
            } else {
                flush()
                result.append(token)
            }
        }
        flush()
        return result
    }

    static func strip(_ token: String, content: Unicode.Scalar, start: Int, stop: Int) -> String {
        let characters = Array(token.unicodeScalars)
        var lower = 0
        while lower < min(start, characters.count), characters[lower] == content { lower += 1 }
        var upper = characters.count
        var removed = 0
        while removed < stop, upper > lower, characters[upper - 1] == content {
            upper -= 1
            removed += 1
        }
        var result = String.UnicodeScalarView()
        result.append(contentsOf: characters[lower..<upper])
        return String(result)
    }
}
