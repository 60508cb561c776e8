// SPDX-License-Identifier: Apache-2.0
// Matrix: a dense, row-major Float matrix, the numeric core's basic value type.

/// A dense row-major matrix of `Float`.
///
/// Row `r` occupies `storage[r * columns ..< (r + 1) * columns]`. Linear layers use the Hugging
/// Face layout: `W` is `(out, in)`, activations `X` are `(tokens, in)`, so `Y = X · Wᵀ`.
///
/// ```swift
/// var m = Matrix(rows: 2, columns: 3)
/// m[1, 2] = 4
/// let t = Linalg.matmul(m, m, transposeB: true)   // (2, 2)
/// ```
public struct Matrix: Sendable, Equatable {
    public let rows: Int
    public let columns: Int
    public var storage: [Float]

    /// A zero matrix.
    public init(rows: Int, columns: Int) {
        precondition(rows >= 0 && columns >= 0, "Matrix: negative dimension")
        self.rows = rows
        self.columns = columns
        storage = [Float](repeating: 0, count: rows * columns)
    }

    /// A matrix whose every element `fill` writes, without zeroing the storage first.
    /// - Parameter fill: must initialize all `rows · columns` elements of the buffer it receives.
    init(rows: Int, columns: Int, filling fill: (UnsafeMutableBufferPointer<Float>) -> Void) {
        precondition(rows >= 0 && columns >= 0, "Matrix: negative dimension")
        self.rows = rows
        self.columns = columns
        storage = [Float](unsafeUninitializedCapacity: rows * columns) { buffer, count in
            fill(buffer)
            count = rows * columns
        }
    }

    /// A matrix over existing row-major storage.
    /// - Precondition: `storage.count == rows * columns`.
    public init(rows: Int, columns: Int, storage: [Float]) {
        precondition(
            storage.count == rows * columns,
            "Matrix: storage has \(storage.count) elements, shape needs \(rows * columns)"
        )
        self.rows = rows
        self.columns = columns
        self.storage = storage
    }

    /// Number of elements.
    public var count: Int { storage.count }

    @inlinable
    public subscript(row: Int, column: Int) -> Float {
        get { storage[row * columns + column] }
        set { storage[row * columns + column] = newValue }
    }

    /// The transpose, as a new matrix.
    public func transposed() -> Matrix {
        var result = Matrix(rows: columns, columns: rows)
        storage.withUnsafeBufferPointer { src in
            result.storage.withUnsafeMutableBufferPointer { dst in
                for r in 0..<rows {
                    for c in 0..<columns { dst[c * rows + r] = src[r * columns + c] }
                }
            }
        }
        return result
    }

    /// Largest absolute element (0 for an empty matrix).
    public var maxAbs: Float { storage.reduce(0) { max($0, abs($1)) } }

    /// Normalised mean squared error `‖self − reference‖² / ‖reference‖²` (0 when both are zero),
    /// the llama.cpp `test-backend-ops` measure.
    public func normalizedMeanSquaredError(to reference: Matrix) -> Double {
        precondition(rows == reference.rows && columns == reference.columns, "NMSE: shapes differ")
        var num = 0.0
        var den = 0.0
        for i in 0..<count {
            let d = Double(storage[i]) - Double(reference.storage[i])
            num += d * d
            den += Double(reference.storage[i]) * Double(reference.storage[i])
        }
        return den == 0 ? num : num / den
    }
}
