// SPDX-License-Identifier: Apache-2.0
// JSONText: JSON string literals for the hand-written, canonical JSON encoders (headers, recipe hashes).

/// Helpers for code that writes JSON text itself, byte for byte (canonical encodings whose exact bytes
/// matter: the recipe hash, safetensors headers written by the sparse format).
public enum JSONText {
    /// `string` as a JSON string literal: quotes and backslashes escaped, `\n`, `\r`, `\t` in short
    /// form, other control characters as `\u00XX`; everything else verbatim (UTF-8).
    public static func quoted(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// `value` as a JSON number in Swift's shortest round-trip spelling, which always keeps a
    /// fraction or an exponent (`30.0`, `1e-06`, `0.5`), so a reader still sees a float; `nil` for
    /// NaN and infinities, which JSON cannot express.
    public static func number(_ value: Double) -> String? {
        value.isFinite ? value.description : nil
    }
}
