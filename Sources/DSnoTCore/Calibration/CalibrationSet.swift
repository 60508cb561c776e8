// SPDX-License-Identifier: Apache-2.0
// CalibrationSet: the N × L token windows the statistics are collected on (ALGORITHM.md D2).

import SafeTensors

/// Calibration sequences: `count` windows of `length` token ids each.
///
/// Two sources (D2):
/// - **Text**, tokenized by the caller as one stream with no special tokens; window starts are
///   drawn uniformly from `[0, tokens.count − length − 1]` with `SplitMix64(seed:)`, one
///   `uniform(through:)` draw per window in order, so a seed gives the same windows everywhere.
/// - **Pre-tokenized** safetensors with `input_ids` `[N, L]` (I32 or I64), used verbatim.
///
/// ```swift
/// let tokens = try tokenizer.encode(text)
/// let calibration = try CalibrationSet(tokens: tokens, count: 128, length: 2048, seed: 0)
/// ```
public struct CalibrationSet: Sendable, Equatable {
    /// The windows, each `length` tokens.
    public let sequences: [[Int32]]
    /// Tokens per window (L).
    public let length: Int

    /// Number of windows (N).
    public var count: Int { sequences.count }

    /// Draws `count` windows of `length` tokens from a token stream.
    /// - Parameter skipping: draws (and drops) this many windows first: `skipping: N` gives the windows
    ///   that follow the N windows of the same seed (DSnoT's loss check takes its windows so).
    /// - Throws: `CalibrationError.textTooShort` when the stream has fewer than `length + 1` tokens;
    ///   `.invalidParameter` for a non-positive count or length, or a negative `skipping`.
    public init(tokens: [Int32], count: Int, length: Int, seed: UInt64, skipping: Int = 0) throws {
        guard count > 0 else { throw CalibrationError.invalidParameter(name: "nsamples", value: count) }
        guard skipping >= 0 else { throw CalibrationError.invalidParameter(name: "skipped windows", value: skipping) }
        guard length > 0 else { throw CalibrationError.invalidParameter(name: "seqlen", value: length) }
        guard tokens.count >= length + 1 else {
            throw CalibrationError.textTooShort(tokens: tokens.count, needed: length + 1)
        }
        var rng = SplitMix64(seed: seed)
        let lastStart = UInt64(tokens.count - length - 1)
        for _ in 0..<skipping { _ = rng.uniform(through: lastStart) }
        sequences = (0..<count).map { _ in
            let start = Int(rng.uniform(through: lastStart))
            return Array(tokens[start..<(start + length)])
        }
        self.length = length
    }

    /// Uses pre-tokenized windows verbatim.
    /// - Throws: `CalibrationError.invalidParameter` for an empty set or windows of unequal length.
    public init(sequences: [[Int32]]) throws {
        guard let first = sequences.first, !first.isEmpty else {
            throw CalibrationError.invalidParameter(name: "input_ids", value: 0)
        }
        for (i, sequence) in sequences.enumerated() where sequence.count != first.count {
            throw CalibrationError.raggedWindows(index: i, expected: first.count, found: sequence.count)
        }
        self.sequences = sequences
        length = first.count
    }

    /// Loads `input_ids` `[N, L]` (I32 or I64) from a safetensors file.
    /// - Parameters:
    ///   - path: the file.
    ///   - vocabularySize: when given, every id must be in `0..<vocabularySize`.
    /// - Throws: `SafeTensorsError` for an invalid file, `CalibrationError` for a bad tensor.
    public static func load(tokenFile path: String, vocabularySize: Int? = nil) throws -> CalibrationSet {
        let file = try SafeTensorsFile(path: path)
        let info = try file.info(named: "input_ids")
        guard info.dtype == .i32 || info.dtype == .i64 else {
            throw CalibrationError.badTokenFile(
                path: path,
                reason: "input_ids has dtype \(info.dtype.rawValue), expected I32 or I64"
            )
        }
        guard info.shape.count == 2, info.shape[0] > 0, info.shape[1] > 0 else {
            throw CalibrationError.badTokenFile(
                path: path,
                reason: "input_ids has shape \(info.shape), expected [N, L] with N, L > 0"
            )
        }
        let ids = try file.integers(named: "input_ids")
        let (n, l) = (info.shape[0], info.shape[1])
        var sequences: [[Int32]] = []
        sequences.reserveCapacity(n)
        for row in 0..<n {
            var window = [Int32]()
            window.reserveCapacity(l)
            for column in 0..<l {
                let id = ids[row * l + column]
                guard id >= 0, id <= Int(Int32.max), vocabularySize.map({ id < $0 }) ?? true else {
                    throw CalibrationError.badTokenFile(
                        path: path,
                        reason:
                            "input_ids[\(row), \(column)] = \(id) is outside the vocabulary 0..<\(vocabularySize ?? Int(Int32.max))"
                    )
                }
                window.append(Int32(id))
            }
            sequences.append(window)
        }
        return try CalibrationSet(sequences: sequences)
    }
}

/// Why calibration data was rejected.
public enum CalibrationError: Error, Equatable, Sendable, CustomStringConvertible {
    case textTooShort(tokens: Int, needed: Int)
    case invalidParameter(name: String, value: Int)
    case raggedWindows(index: Int, expected: Int, found: Int)
    case badTokenFile(path: String, reason: String)

    public var description: String {
        switch self {
        case .textTooShort(let tokens, let needed):
            "calibration text has \(tokens) tokens, needs at least \(needed) (seqlen + 1)"
        case .invalidParameter(let name, let value):
            "calibration \(name) must be positive, got \(value)"
        case .raggedWindows(let index, let expected, let found):
            "calibration window \(index) has \(found) tokens, expected \(expected) like window 0"
        case .badTokenFile(let path, let reason):
            "\(path): \(reason)"
        }
    }
}
