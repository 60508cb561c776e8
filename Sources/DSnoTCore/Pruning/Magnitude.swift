// SPDX-License-Identifier: Apache-2.0
// Magnitude pruning (ALGORITHM.md D4, B§4.1); reference locuslab/wanda lib/prune.py prune_magnitude.
// Shapes: W (out, in); the mask has W's shape, 1 = pruned.

/// Magnitude pruning: prune the smallest `|W|`.
///
/// ```swift
/// let mask = try Magnitude.mask(weights: w, pattern: .unstructured(0.5), scope: .layer)
/// ```
public enum Magnitude {
    /// Which weights compete for pruning in unstructured mode.
    public enum Scope: String, Sendable, Codable, CaseIterable {
        /// One ranking over the whole matrix (the reference baseline).
        case layer
        /// Each output row on its own (`floor(C_in·s)` per row; DSnoT's magnitude base).
        case row
    }

    /// dsnot's rule: exactly `floor(numel·s)` (layer) or `floor(C_in·s)` per row (row) weights with
    /// the smallest `|W|`, ties by index; N:M prunes the N smallest `|W|` of each aligned group.
    /// - Throws: `PruningError` for an invalid pattern or a width that is not a multiple of M.
    public static func mask(weights: Matrix, pattern: SparsityPattern, scope: Scope, layer: String = "") throws
        -> PruneMask
    {
        try pattern.validate(columns: weights.columns, layer: layer)
        let scores = Matrix(rows: weights.rows, columns: weights.columns, storage: weights.storage.map { abs($0) })
        if let g = pattern.group { return RowSelection.smallestPerGroup(scores: scores, n: g.n, m: g.m) }
        switch scope {
        case .row:
            return RowSelection.smallestPerRow(scores: scores, count: pattern.prunedPerRow(columns: weights.columns))
        case .layer:
            let count = Int((Double(weights.count) * pattern.ratio).rounded(.down))
            var mask = PruneMask(rows: weights.rows, columns: weights.columns)
            scores.storage.withUnsafeBufferPointer { s in
                mask.bytes.withUnsafeMutableBufferPointer { RadixSelect.markSmallest(s, count: count, into: $0) }
            }
            return mask
        }
    }

    /// The reference baseline's rule, kept for golden comparison: `thr` = the value at sorted index
    /// `floor(numel·s)` of all `|W|`; prune every weight with `|W| ≤ thr` (at least one extra weight,
    /// more with ties). N:M is the same as `mask(…)`.
    /// - Throws: `PruningError` for an invalid pattern.
    public static func referenceMask(weights: Matrix, pattern: SparsityPattern, layer: String = "") throws -> PruneMask
    {
        try pattern.validate(columns: weights.columns, layer: layer)
        if pattern.group != nil { return try mask(weights: weights, pattern: pattern, scope: .layer, layer: layer) }
        let magnitudes = weights.storage.map { abs($0) }
        let index = Int((Double(weights.count) * pattern.ratio).rounded(.down))
        var mask = PruneMask(rows: weights.rows, columns: weights.columns)
        magnitudes.withUnsafeBufferPointer { m in
            mask.bytes.withUnsafeMutableBufferPointer { RadixSelect.markAtMostSortedIndex(m, index: index, into: $0) }
        }
        return mask
    }
}
