// SPDX-License-Identifier: Apache-2.0
// PruneJobOptions: everything one pruning job needs besides its input: recipe, output format, evaluation.

public import DSnoTCore
public import SparseFormat

/// How a pruning job writes its output.
public enum OutputFormat: Sendable, Equatable {
    /// Sparse-bitmask (or 2:4) tensors in LZ4 frames (ARCHITECTURE.md, Output format).
    case sparse(level: LZ4Level, bytePlanes: Bool)
    /// A plain checkpoint: the input's layout with zeros in place.
    case dense

    /// Parses `--format sparse|dense` and `--compression fast|hc|hc-N|none`.
    /// - Throws: `PruneJobError.invalidOption` for unknown words, or `none` with the sparse format
    ///   (the sparse layout is only written LZ4-compressed; `--format dense` writes uncompressed files).
    public static func parse(format: String, compression: String, bytePlanes: Bool = false) throws -> OutputFormat {
        switch format {
        case "dense": return .dense
        case "sparse":
            switch compression {
            case "fast": return .sparse(level: .fast, bytePlanes: bytePlanes)
            case "hc": return .sparse(level: .hc(9), bytePlanes: bytePlanes)
            case "none":
                throw PruneJobError.invalidOption(
                    name: "compression",
                    value: compression,
                    expected: "fast or hc[-N] for --format sparse (use --format dense for uncompressed output)"
                )
            default:
                if compression.hasPrefix("hc-"), let n = Int(compression.dropFirst(3)), (3...12).contains(n) {
                    return .sparse(level: .hc(n), bytePlanes: bytePlanes)
                }
                throw PruneJobError.invalidOption(
                    name: "compression",
                    value: compression,
                    expected: "fast, hc, hc-N (N in 3...12) or none"
                )
            }
        default:
            throw PruneJobError.invalidOption(name: "format", value: format, expected: "sparse or dense")
        }
    }
}

/// Perplexity before and after pruning (ALGORITHM.md D10), and the quality gate.
public struct EvaluationOptions: Sendable, Equatable {
    /// The evaluation text (tokenized with the checkpoint's tokenizer).
    public var textPath: String
    /// Window length `L` (capped at the model's positions).
    public var sequenceLength: Int
    /// Evaluate only the first this many windows.
    public var maxWindows: Int?
    /// Fail the job, publishing nothing, when perplexity rises by more than this many percent.
    public var maxIncreasePercent: Double?

    public init(textPath: String, sequenceLength: Int = 2048, maxWindows: Int? = nil, maxIncreasePercent: Double? = nil)
    {
        self.textPath = textPath
        self.sequenceLength = sequenceLength
        self.maxWindows = maxWindows
        self.maxIncreasePercent = maxIncreasePercent
    }
}

/// One job's settings.
public struct PruneJobOptions: Sendable, Equatable {
    /// The recipe, including its calibration source (`recipe.calibration`).
    public var recipe: Recipe
    public var format: OutputFormat
    public var evaluation: EvaluationOptions?
    /// Calibration sequences whose inputs feed the per-layer reconstruction-error metric.
    public var errorSequences: Int

    public init(
        recipe: Recipe,
        format: OutputFormat = .sparse(level: .fast, bytePlanes: false),
        evaluation: EvaluationOptions? = nil,
        errorSequences: Int = 8
    ) {
        self.recipe = recipe
        self.format = format
        self.evaluation = evaluation
        self.errorSequences = errorSequences
    }
}
