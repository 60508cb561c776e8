// SPDX-License-Identifier: Apache-2.0
// Unicode classes of the pre-tokenizer regexes (\p{L}, \p{N}, \s) with an ASCII fast path.

/// The class of a scalar as the GPT-2 / LLaMA-3 / Qwen2 pre-tokenizer regexes see it.
///
/// `letter` is `\p{L}` (Lu, Ll, Lt, Lm, Lo), `number` is `\p{N}` (Nd, Nl, No), `whitespace` is Oniguruma's
/// Unicode `\s` (the White_Space property), `other` is everything else (`[^\s\p{L}\p{N}]`).
enum ScalarClass: UInt8, Sendable {
    case letter
    case number
    case whitespace
    case other

    /// Classes of the 128 ASCII scalars.
    private static let ascii: [ScalarClass] = (0..<128).map { value in
        classifySlow(Unicode.Scalar(UInt8(value)))
    }

    @inline(__always)
    static func of(_ scalar: Unicode.Scalar) -> ScalarClass {
        if scalar.value < 128 { return ascii[Int(scalar.value)] }
        return classifySlow(scalar)
    }

    static func classifySlow(_ scalar: Unicode.Scalar) -> ScalarClass {
        let properties = scalar.properties
        if properties.isWhitespace { return .whitespace }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }
}

extension Unicode.Scalar {
    /// `\r` or `\n`, the two scalars the LLaMA-3 pattern treats apart from other whitespace.
    @inline(__always)
    var isCarriageReturnOrLineFeed: Bool { value == 0x0A || value == 0x0D }
}
