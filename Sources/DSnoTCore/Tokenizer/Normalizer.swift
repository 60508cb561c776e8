// SPDX-License-Identifier: Apache-2.0
// Normalizers: rewrite each text segment (between added tokens) before pre-tokenization.

import Foundation

/// The supported `normalizer` components of tokenizer.json.
indirect enum Normalizer: Sendable {
    case sequence([Normalizer])
    /// Prepends `prefix` to a non-empty segment (LLaMA-2 / Mistral's `▁`).
    case prepend([Unicode.Scalar])
    /// Replaces every occurrence of a literal string.
    case replace(pattern: [Unicode.Scalar], content: [Unicode.Scalar])
    /// Unicode canonical composition.
    case nfc

    func apply(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(scalars) { current, step in step.apply(current) }
        case .prepend(let prefix):
            return scalars.isEmpty ? scalars : prefix + scalars
        case .replace(let pattern, let content):
            return Normalizer.replace(scalars, pattern: pattern, content: content)
        case .nfc:
            var string = String.UnicodeScalarView()
            string.append(contentsOf: scalars)
            return Array(String(string).precomposedStringWithCanonicalMapping.unicodeScalars)
        }
    }

    /// Left-to-right, non-overlapping literal replacement.
    static func replace(
        _ scalars: [Unicode.Scalar],
        pattern: [Unicode.Scalar],
        content: [Unicode.Scalar]
    ) -> [Unicode.Scalar] {
        guard let first = pattern.first else { return scalars }
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(scalars.count + scalars.count / 4)
        var index = 0
        while index < scalars.count {
            if scalars[index] == first, index + pattern.count <= scalars.count,
                scalars[index..<(index + pattern.count)].elementsEqual(pattern)
            {
                result.append(contentsOf: content)
                index += pattern.count
            } else {
                result.append(scalars[index])
                index += 1
            }
        }
        return result
    }
}
