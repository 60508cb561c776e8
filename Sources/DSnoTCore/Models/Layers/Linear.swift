// SPDX-License-Identifier: Apache-2.0
// Linear: a fp32 `nn.Linear` (weight `(out, in)`, optional bias) applied with one sgemm.

/// A linear layer `y = x Wᵀ + b` in the Hugging Face layout.
public struct Linear: Sendable, Equatable {
    /// `(out, in)`.
    public var weight: Matrix
    /// `[out]`, or `nil` for a bias-free layer.
    public var bias: [Float]?

    /// - Precondition: `bias` (when given) has `weight.rows` elements.
    public init(weight: Matrix, bias: [Float]? = nil) {
        precondition(bias == nil || bias?.count == weight.rows, "Linear: bias length must equal the output size")
        self.weight = weight
        self.bias = bias
    }

    /// Output features.
    public var outFeatures: Int { weight.rows }
    /// Input features.
    public var inFeatures: Int { weight.columns }

    /// Applies the layer to a batch of rows.
    /// - Parameter x: `(L, in)`.
    /// - Returns: `(L, out)`.
    public func callAsFunction(_ x: Matrix) -> Matrix {
        precondition(x.columns == inFeatures, "Linear: input has \(x.columns) features, layer expects \(inFeatures)")
        let out = outFeatures
        let rows = x.rows
        // Every element of C is written by the GEMM (beta = 0) or seeded with the bias first: no memset.
        let storage = [Float](unsafeUninitializedCapacity: rows * out) { py, count in
            if let bias {
                // Seed C with the bias in every row, then C = X Wᵀ + C.
                for r in 0..<rows { for c in 0..<out { py[r * out + c] = bias[c] } }
            }
            x.storage.withUnsafeBufferPointer { px in
                weight.storage.withUnsafeBufferPointer { pw in
                    Linalg.gemm(
                        m: rows,
                        n: out,
                        k: inFeatures,
                        a: px.baseAddress,
                        lda: inFeatures,
                        b: pw.baseAddress,
                        ldb: inFeatures,
                        transposeB: true,
                        beta: bias == nil ? 0 : 1,
                        c: py.baseAddress,
                        ldc: out
                    )
                }
            }
            count = rows * out
        }
        return Matrix(rows: rows, columns: out, storage: storage)
    }
}
