// SPDX-License-Identifier: Apache-2.0
// Errors in dsnotd.toml (or a checkpoint's dsnot.toml): which key, which line, expected, got.

/// A configuration problem. The description names the file, the line, the key, what was expected and what
/// was found: `dsnotd.toml:12: watch[0].recipe.sparsity: expected a number in (0, 1), got 1.5`.
public enum ConfigurationError: Error, Equatable, CustomStringConvertible {
    /// The file could not be read.
    case unreadable(path: String, reason: String)
    /// The TOML itself does not parse.
    case syntax(file: String, line: Int, column: Int, reason: String)
    /// A key that dsnot does not know (a typo, usually).
    case unknownKey(file: String, line: Int?, key: String)
    /// A key whose value has the wrong type or range.
    case invalidValue(file: String, line: Int?, key: String, expected: String, got: String)
    /// A required key is absent.
    case missingKey(file: String, key: String)
    /// Several keys conflict (two watches with one name, `sparsity` and `pattern` together, …).
    case conflict(file: String, line: Int?, key: String, reason: String)

    /// The dotted key path the error is about, if any.
    public var key: String? {
        switch self {
        case .unreadable, .syntax: return nil
        case .unknownKey(_, _, let key), .invalidValue(_, _, let key, _, _), .missingKey(_, let key),
            .conflict(_, _, let key, _):
            return key
        }
    }

    /// The 1-based line the error is about, if known.
    public var line: Int? {
        switch self {
        case .unreadable, .missingKey: return nil
        case .syntax(_, let line, _, _): return line
        case .unknownKey(_, let line, _), .invalidValue(_, let line, _, _, _), .conflict(_, let line, _, _): return line
        }
    }

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): return "\(path): cannot read: \(reason)"
        case .syntax(let file, let line, let column, let reason): return "\(file):\(line):\(column): \(reason)"
        case .unknownKey(let file, let line, let key):
            return "\(Self.place(file, line)): unknown key '\(key)'"
        case .invalidValue(let file, let line, let key, let expected, let got):
            return "\(Self.place(file, line)): \(key): expected \(expected), got \(got)"
        case .missingKey(let file, let key): return "\(file): missing required key '\(key)'"
        case .conflict(let file, let line, let key, let reason): return "\(Self.place(file, line)): \(key): \(reason)"
        }
    }

    private static func place(_ file: String, _ line: Int?) -> String {
        line.map { "\(file):\($0)" } ?? file
    }
}
