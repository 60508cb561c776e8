// SPDX-License-Identifier: Apache-2.0
// Wanda (Sun et al., arXiv:2306.11695; ALGORITHM.md D5, B§4.2); reference locuslab/wanda lib/prune.py prune_wanda.
// Score S = |W| ⊙ sqrt(scaler_row) broadcast over rows; W (out, in), scaler_row (in).

/// Wanda: prune by `|W_ij| · sqrt(scaler_row_j)`, per output row.
///
/// ```swift
/// let mask = try Wanda.mask(weights: w, scalerRow: stats.scalerRow, pattern: .unstructured(0.5))
/// ```
public enum Wanda {
    /// The Wanda score `|W| · sqrt(scalerRow)` in fp32, `(out, in)`.
    public static func scores(weights: Matrix, scalerRow: [Float]) -> Matrix {
        precondition(scalerRow.count == weights.columns, "Wanda.scores: scaler_row length differs from C_in")
        let root = scalerRow.map { $0.squareRoot() }
        var s = Matrix(rows: weights.rows, columns: weights.columns)
        let c = weights.columns
        weights.storage.withUnsafeBufferPointer { w in
            s.storage.withUnsafeMutableBufferPointer { out in
                for r in 0..<weights.rows {
                    for j in 0..<c { out[r * c + j] = abs(w[r * c + j]) * root[j] }
                }
            }
        }
        return s
    }

    /// Wanda mask: unstructured prunes exactly `floor(C_in·s)` per row (stable ascending score);
    /// N:M prunes the N smallest scores of each aligned group.
    /// - Throws: `PruningError` for an invalid pattern or a statistic of the wrong length.
    public static func mask(weights: Matrix, scalerRow: [Float], pattern: SparsityPattern, layer: String = "") throws
        -> PruneMask
    {
        try pattern.validate(columns: weights.columns, layer: layer)
        guard scalerRow.count == weights.columns else {
            throw PruningError.statisticShapeMismatch(
                layer: layer,
                statistic: "scaler_row",
                expected: weights.columns,
                got: scalerRow.count
            )
        }
        return maskFromScores(scores(weights: weights, scalerRow: scalerRow), pattern: pattern)
    }

    /// Per-row selection shared by Wanda and the per-row base masks of DSnoT.
    static func maskFromScores(_ scores: Matrix, pattern: SparsityPattern) -> PruneMask {
        if let g = pattern.group { return RowSelection.smallestPerGroup(scores: scores, n: g.n, m: g.m) }
        return RowSelection.smallestPerRow(scores: scores, count: pattern.prunedPerRow(columns: scores.columns))
    }
}
