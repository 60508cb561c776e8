// SPDX-License-Identifier: Apache-2.0
// PruneJobError: job-level failures (options, inputs, the quality gate), and which ones a retry may fix.

/// Why a pruning job failed before or after the pipeline ran.
public enum PruneJobError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidOption(name: String, value: String, expected: String)
    /// The checkpoint has no `tokenizer.json` but text calibration or evaluation needs one.
    case missingTokenizer(directory: String)
    case unreadableText(path: String, reason: String)
    /// Perplexity rose more than the configured gate; nothing was published.
    case qualityGate(dense: Double, pruned: Double, limitPercent: Double)
    /// The output directory is not empty.
    case outputNotEmpty(path: String)

    public var description: String {
        switch self {
        case .invalidOption(let name, let value, let expected):
            "invalid \(name) '\(value)': expected \(expected)"
        case .missingTokenizer(let directory):
            "\(directory): no tokenizer.json, needed to tokenize calibration or evaluation text"
        case .unreadableText(let path, let reason):
            "\(path): cannot read text: \(reason)"
        case .qualityGate(let dense, let pruned, let limit):
            "quality gate: perplexity rose from \(Self.format(dense)) to \(Self.format(pruned)) "
                + "(+\(Self.format(100 * (pruned / dense - 1))) %), the limit is +\(Self.format(limit)) %"
        case .outputNotEmpty(let path):
            "\(path): output directory is not empty"
        }
    }

    static func format(_ value: Double) -> String {
        let scaled = (value * 100).rounded() / 100
        return "\(scaled)"
    }
}
