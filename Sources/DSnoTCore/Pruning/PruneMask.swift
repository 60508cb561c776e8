// SPDX-License-Identifier: Apache-2.0
// PruneMask: a byte matrix, 1 = pruned, in the layout of the weight it masks.

/// A pruning mask over a weight matrix `(out, in)`: `bytes[r * columns + c] == 1` means pruned.
///
/// ```swift
/// var mask = PruneMask(rows: 2, columns: 4)
/// mask[0, 3] = true
/// mask.prunedCount(row: 0)   // 1
/// ```
public struct PruneMask: Sendable, Equatable {
    public let rows: Int
    public let columns: Int
    /// Row-major, one byte per weight: 1 = pruned, 0 = kept.
    public var bytes: [UInt8]

    /// An all-kept mask.
    public init(rows: Int, columns: Int) {
        precondition(rows >= 0 && columns >= 0, "PruneMask: negative dimension")
        self.rows = rows
        self.columns = columns
        bytes = [UInt8](repeating: 0, count: rows * columns)
    }

    /// A mask over existing bytes (any non-zero byte counts as pruned and is normalised to 1).
    /// - Precondition: `bytes.count == rows * columns`.
    public init(rows: Int, columns: Int, bytes: [UInt8]) {
        precondition(bytes.count == rows * columns, "PruneMask: \(bytes.count) bytes for shape [\(rows), \(columns)]")
        self.rows = rows
        self.columns = columns
        self.bytes = bytes.map { $0 == 0 ? 0 : 1 }
    }

    @inlinable
    public subscript(row: Int, column: Int) -> Bool {
        get { bytes[row * columns + column] != 0 }
        set { bytes[row * columns + column] = newValue ? 1 : 0 }
    }

    /// Number of entries (`rows · columns`).
    public var count: Int { bytes.count }

    /// Pruned weights in one row.
    public func prunedCount(row: Int) -> Int {
        var n = 0
        for c in 0..<columns where bytes[row * columns + c] != 0 { n += 1 }
        return n
    }

    /// Pruned weights in the whole matrix.
    public var prunedCount: Int { bytes.reduce(0) { $0 + Int($1) } }

    /// Fraction of pruned weights (0 for an empty mask).
    public var sparsity: Double { bytes.isEmpty ? 0 : Double(prunedCount) / Double(bytes.count) }

    /// Number of entries where two masks of the same shape differ.
    public func mismatches(_ other: PruneMask) -> Int {
        precondition(rows == other.rows && columns == other.columns, "PruneMask: shapes differ")
        var n = 0
        for i in 0..<bytes.count where bytes[i] != other.bytes[i] { n += 1 }
        return n
    }

    /// `weights` with every pruned entry set to 0.
    public func applied(to weights: Matrix) -> Matrix {
        precondition(weights.rows == rows && weights.columns == columns, "PruneMask: weight shape differs")
        var out = weights
        out.storage.withUnsafeMutableBufferPointer { w in
            bytes.withUnsafeBufferPointer { m in
                for i in 0..<m.count where m[i] != 0 { w[i] = 0 }
            }
        }
        return out
    }
}
