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
        precondition(row >= 0 && row < rows, "PruneMask: row \(row) of \(rows)")
        return bytes.withUnsafeBufferPointer {
            Self.sum(UnsafeBufferPointer(rebasing: $0[(row * columns)..<((row + 1) * columns)]))
        }
    }

    /// Pruned weights in the whole matrix.
    public var prunedCount: Int { bytes.withUnsafeBufferPointer { Self.sum($0) } }

    /// The sum of 0/1 bytes without a branch per byte (a random mask mispredicts half of them), in
    /// 32-bit lanes the compiler vectorises; chunks keep every lane far from overflow.
    private static func sum(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var total = 0
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + (1 << 24))
            var chunk: UInt32 = 0
            for i in start..<end { chunk &+= UInt32(bytes[i]) }
            total += Int(chunk)
            start = end
        }
        return total
    }

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
        // A select per weight, written once into new storage: no copy then zeroing, no branch per weight.
        return weights.storage.withUnsafeBufferPointer { w in
            bytes.withUnsafeBufferPointer { m in
                Matrix(rows: rows, columns: columns) { out in
                    for i in 0..<out.count { out[i] = m[i] == 0 ? w[i] : 0 }
                }
            }
        }
    }
}
