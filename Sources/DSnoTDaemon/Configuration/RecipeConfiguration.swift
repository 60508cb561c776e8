// SPDX-License-Identifier: Apache-2.0
// The pruning recipe as configured for a watch: a plain Codable mirror of DSnoTCore's Recipe fields.

import DSnoTSupport
import Foundation

/// A pruning recipe as written in `[watch.recipe]`, a checkpoint's `dsnot.toml` or `dsnotctl submit --set`.
///
/// The integrator maps it onto DSnoTCore's `Recipe`. Defaults follow the reference implementations
/// (ALGORITHM.md D8): 128 samples of 2048 tokens, seed 0, DSnoT with 50 cycles, threshold 0.1.
public struct RecipeConfiguration: Codable, Sendable, Equatable, Hashable {
    /// The base pruner.
    public enum Method: String, Codable, Sendable, CaseIterable { case magnitude, wanda, sparsegpt }
    /// How DSnoT accepts a refined row.
    public enum Accept: String, Codable, Sendable, CaseIterable {
        case none
        case trueError = "true-error"
    }
    /// Output tensor layout.
    public enum Format: String, Codable, Sendable, CaseIterable { case sparse, dense }

    public var method: Method = .wanda
    /// Unstructured sparsity in (0, 1); nil when `pattern` is set.
    public var sparsity: Double? = 0.5
    /// N:M pattern (`"2:4"`, `"4:8"`); nil when `sparsity` is set.
    public var pattern: String?
    /// Whether DSnoT refines the base mask.
    public var dsnot = true
    /// DSnoT cycles per row; nil means `"scaled"` (50 · C_in / 4096).
    public var maxCycles: Int? = 50
    public var updateThreshold = 0.1
    public var variancePower = 1.0
    public var sameSign = false
    /// Layer-name substrings DSnoT leaves alone (the reference skips `mlp`).
    public var skip = ["mlp"]
    /// DSnoT's row acceptance; nil = the method's default (`true-error` after SparseGPT, ALGORITHM.md
    /// D9; `none` otherwise, the reference behaviour).
    public var accept: Accept?
    /// Calibration text file (tokenized with the checkpoint's tokenizer), absolute path.
    public var calibrationText: String?
    /// Pre-tokenized calibration file, absolute path.
    public var calibrationTokens: String?
    public var nsamples = 128
    public var seqlen = 2048
    public var seed = 0
    /// `"fast"`, `"hc"`, `"hc-N"` (N in 1...12) or `"none"`.
    public var compression = "fast"
    public var format: Format = .sparse
    /// Text for the perplexity evaluation, absolute path.
    public var evalText: String?
    /// Evaluation window length (capped at the model's context); nil = 2048.
    public var evalSeqlen: Int?
    /// Evaluate only the first this many windows; nil = all.
    public var evalWindows: Int?
    /// Quality gate: fail the job if perplexity rises by more than this many percent.
    public var maxPerplexityIncreasePercent: Double?

    /// The defaults.
    public init() {}

    enum CodingKeys: String, CodingKey {
        case method, sparsity, pattern, dsnot, skip, accept, nsamples, seqlen, seed, compression, format
        case maxCycles = "max_cycles"
        case updateThreshold = "update_threshold"
        case variancePower = "variance_power"
        case sameSign = "same_sign"
        case calibrationText = "calibration_text"
        case calibrationTokens = "calibration_tokens"
        case evalText = "eval_text"
        case evalSeqlen = "eval_seqlen"
        case evalWindows = "eval_windows"
        case maxPerplexityIncreasePercent = "max_ppl_increase_percent"
    }

    /// A short label (`"wanda-u50-dsnot"`, `"sparsegpt-2of4"`), used in output names and listings.
    public var label: String {
        let shape: String
        if let pattern {
            shape = pattern.replacingOccurrences(of: ":", with: "of")
        } else {
            shape = "u\(Int(((sparsity ?? 0) * 100).rounded()))"
        }
        return "\(method.rawValue)-\(shape)\(dsnot ? "-dsnot" : "")"
    }

    /// A stable hash of every field (hex SHA-256 of the sorted-key JSON encoding), part of the job key.
    public var hash: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(self)) ?? Data(label.utf8)
        return SHA256.hex(Array(data))
    }
}
