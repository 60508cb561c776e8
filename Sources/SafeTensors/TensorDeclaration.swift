// SPDX-License-Identifier: Apache-2.0
// TensorDeclaration: a tensor a writer will write (name, dtype, shape), before its bytes exist.

/// A tensor that a writer is told about up front, so it can lay out the header before any data.
///
/// ```swift
/// let declaration = TensorDeclaration(name: "model.norm.weight", dtype: .bf16, shape: [4096])
/// ```
public struct TensorDeclaration: Sendable, Hashable {
    /// The tensor's name; unique within a file, never `__metadata__`.
    public var name: String
    /// Element type.
    public var dtype: DType
    /// Dimensions, outermost first; empty for a scalar.
    public var shape: [Int]

    /// Creates a declaration.
    public init(name: String, dtype: DType, shape: [Int]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }

    /// The declaration of an existing tensor (same name, dtype and shape).
    public init(_ info: TensorInfo) {
        self.init(name: info.name, dtype: info.dtype, shape: info.shape)
    }
}
