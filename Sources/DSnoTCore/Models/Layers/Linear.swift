// SPDX-License-Identifier: Apache-2.0
// Linear: a fp32 `nn.Linear` (weight `(out, in)`, optional bias) applied with one GEMM (sgemm, or bf16).

import DSnoTSupport

/// A linear layer `y = x Wᵀ + b` in the Hugging Face layout.
///
/// In `.bf16` compute (`setCompute`) the layer keeps a bfloat16 copy of its weight, made again
/// whenever the weight is replaced, and multiplies with `BF16GEMM` (fp32 accumulation); the bias is
/// added in fp32. Should oneDNN fail a call (out of memory), that call falls back to sgemm.
public struct Linear: Sendable, Equatable {
    /// `(out, in)`.
    public var weight: Matrix {
        didSet { if packed != nil { packed = BF16GEMM.Weights(weight) } }
    }
    /// `[out]`, or `nil` for a bias-free layer.
    public var bias: [Float]?
    /// The GEMM input format of `callAsFunction`: bf16 exactly when the layer holds a bfloat16 copy.
    public var compute: ComputeFormat { packed == nil ? .fp32 : .bf16 }
    /// `weight` in bfloat16 while `compute` is `.bf16`.
    private var packed: BF16GEMM.Weights?

    /// - Precondition: `bias` (when given) has `weight.rows` elements.
    public init(weight: Matrix, bias: [Float]? = nil) {
        precondition(bias == nil || bias?.count == weight.rows, "Linear: bias length must equal the output size")
        self.weight = weight
        self.bias = bias
    }

    /// Switches the GEMM input format (converting the weight once for `.bf16`).
    public mutating func setCompute(_ format: ComputeFormat) {
        guard format != compute else { return }
        packed = format == .bf16 ? BF16GEMM.Weights(weight) : nil
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
        // As many threads as BLAS has: one on a pipeline worker (`Parallel.forEach` runs sequences one per
        // core with single-threaded BLAS), every core for a lone sequence.
        if let packed, var y = try? BF16GEMM.multiply(x, packed, threads: Parallel.isInline ? 1 : Linalg.blasThreads) {
            if let bias {
                y.storage.withUnsafeMutableBufferPointer { py in
                    for r in 0..<rows { for c in 0..<out { py[r * out + c] += bias[c] } }
                }
            }
            return y
        }
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
