// SPDX-License-Identifier: Apache-2.0
// SparsityPattern: unstructured ratio or N:M (2:4, 4:8 at ratio 0.5), with validation.

/// Which weights may be pruned together.
///
/// ```swift
/// let p = SparsityPattern.unstructured(0.6)
/// let q = SparsityPattern.nOfM(2, 4)          // ratio 0.5
/// try q.validate(columns: 4096, layer: "mlp.up_proj")
/// ```
public enum SparsityPattern: Sendable, Equatable, Hashable {
    /// Prune the fraction `ratio` of the weights (per row or per layer, depending on the method).
    case unstructured(Double)
    /// In every aligned group of `m` input columns of a row, prune `n`. Only 2:4 and 4:8.
    case nOfM(Int, Int)

    /// The overall sparsity ratio this pattern targets (0.5 for N:M, which the reference asserts).
    public var ratio: Double {
        switch self {
        case .unstructured(let r): return r
        case .nOfM(let n, let m): return Double(n) / Double(m)
        }
    }

    /// The N:M group parameters, or `nil` for unstructured.
    public var group: (n: Int, m: Int)? {
        if case .nOfM(let n, let m) = self { return (n, m) }
        return nil
    }

    /// Checks the pattern on its own: ratio in (0, 1), N:M one of 2:4 and 4:8.
    /// - Throws: `PruningError.sparsityOutOfRange` or `.unsupportedPattern`.
    public func validate() throws {
        switch self {
        case .unstructured(let r):
            guard r > 0, r < 1, r.isFinite else { throw PruningError.sparsityOutOfRange(ratio: r) }
        case .nOfM(let n, let m):
            guard (n, m) == (2, 4) || (n, m) == (4, 8) else { throw PruningError.unsupportedPattern(n: n, m: m) }
        }
    }

    /// Checks the pattern against a layer: N:M needs `columns` to be a multiple of M.
    /// - Throws: as `validate()`, plus `PruningError.columnsNotMultipleOfGroup`.
    public func validate(columns: Int, layer: String) throws {
        try validate()
        if case .nOfM(_, let m) = self, columns % m != 0 {
            throw PruningError.columnsNotMultipleOfGroup(layer: layer, columns: columns, m: m)
        }
    }

    /// Number of weights pruned per row by the per-row methods: `floor(columns · ratio)` as the
    /// reference computes it (`int(C_in * s)` on a double).
    public func prunedPerRow(columns: Int) -> Int {
        Int((Double(columns) * ratio).rounded(.down))
    }
}
