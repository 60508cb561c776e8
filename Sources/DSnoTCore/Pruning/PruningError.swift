// SPDX-License-Identifier: Apache-2.0
// PruningError: every way a pruning request or a layer's numerics can be rejected.

/// Errors of the pruning algorithms and of recipe validation. Each description says what went
/// wrong, where (the layer or setting), what was expected and what was found.
public enum PruningError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A sparsity ratio outside the open interval (0, 1).
    case sparsityOutOfRange(ratio: Double)
    /// An N:M pattern other than 2:4 and 4:8.
    case unsupportedPattern(n: Int, m: Int)
    /// N:M requested with a ratio other than 0.5.
    case patternRatioMismatch(n: Int, m: Int, ratio: Double)
    /// The layer's input width is not a multiple of M.
    case columnsNotMultipleOfGroup(layer: String, columns: Int, m: Int)
    /// A statistic's length does not match the layer's input width.
    case statisticShapeMismatch(layer: String, statistic: String, expected: Int, got: Int)
    /// A statistic the method needs was not accumulated.
    case missingStatistic(layer: String, statistic: String, method: String)
    /// The Cholesky factorisation failed even after all dampening retries.
    case choleskyFailed(layer: String, attempts: Int, lastDampening: Float, info: Int)
    /// A setting has a value outside its allowed range.
    case invalidSetting(name: String, expected: String, got: String)
    /// A combination of settings that dsnot does not support.
    case unsupportedCombination(reason: String)
    /// An empty layer (no rows or no columns).
    case emptyLayer(layer: String, rows: Int, columns: Int)
    /// NaN or infinite values in a layer's weights or statistics.
    case nonFiniteValues(layer: String, tensor: String, count: Int)

    public var description: String {
        switch self {
        case .sparsityOutOfRange(let ratio):
            return "sparsity ratio: expected a value in (0, 1), got \(ratio)"
        case .unsupportedPattern(let n, let m):
            return "sparsity pattern: expected 2:4 or 4:8, got \(n):\(m)"
        case .patternRatioMismatch(let n, let m, let ratio):
            return "sparsity pattern \(n):\(m): expected sparsity ratio 0.5, got \(ratio)"
        case .columnsNotMultipleOfGroup(let layer, let columns, let m):
            return "layer '\(layer)': N:M needs C_in to be a multiple of \(m), got C_in = \(columns)"
        case .statisticShapeMismatch(let layer, let statistic, let expected, let got):
            return "layer '\(layer)': statistic '\(statistic)' expected \(expected) entries, got \(got)"
        case .missingStatistic(let layer, let statistic, let method):
            return "layer '\(layer)': method \(method) needs statistic '\(statistic)', which was not accumulated"
        case .choleskyFailed(let layer, let attempts, let lastDampening, let info):
            return
                "layer '\(layer)': Cholesky factorisation of the dampened Hessian failed after \(attempts) attempts "
                + "(last dampening \(lastDampening), LAPACK info \(info)); expected a positive-definite matrix"
        case .invalidSetting(let name, let expected, let got):
            return "setting '\(name)': expected \(expected), got \(got)"
        case .unsupportedCombination(let reason):
            return "unsupported combination: \(reason)"
        case .nonFiniteValues(let layer, let tensor, let count):
            return "layer '\(layer)': \(tensor) expected finite values, got \(count) NaN or infinite entries"
        case .emptyLayer(let layer, let rows, let columns):
            return "layer '\(layer)': expected a non-empty weight matrix, got shape [\(rows), \(columns)]"
        }
    }
}
