// SPDX-License-Identifier: Apache-2.0
// TensorInfo: one validated entry of a safetensors header.

/// One tensor of a safetensors file, as declared by its (validated) header.
///
/// Offsets are relative to the start of the data section, which begins right after the
/// 8-byte length prefix and the JSON header (`Header.dataStart`).
public struct TensorInfo: Sendable, Equatable, Hashable {
    /// The tensor's name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    public let name: String
    /// Element type.
    public let dtype: DType
    /// Dimensions, outermost first. An empty shape is a scalar.
    public let shape: [Int]
    /// Byte range inside the data section.
    public let dataOffsets: Range<Int>

    /// Creates a tensor description. Callers that build one from untrusted input must validate it
    /// (the reader does, with `Header.parse`).
    public init(name: String, dtype: DType, shape: [Int], dataOffsets: Range<Int>) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataOffsets = dataOffsets
    }

    /// Number of elements (the product of `shape`; 1 for a scalar). Valid shapes never overflow.
    public var elementCount: Int { shape.reduce(1, *) }

    /// Number of bytes of data.
    public var byteCount: Int { dataOffsets.count }

    /// The byte size of `shape` × `dtype`, or `nil` when a dimension is negative or the element
    /// count or the byte size overflows `Int`. Shapes come from untrusted files, so every
    /// multiplication is checked, in the same order as `elementCount` (so a validated shape never
    /// traps there), and then the byte size, like the reference.
    public static func checkedByteCount(shape: [Int], dtype: DType) -> Int? {
        guard let elements = checkedElementCount(shape: shape) else { return nil }
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.byteWidth)
        return overflow ? nil : bytes
    }

    /// The product of `shape` (1 for a scalar), or `nil` when a dimension is negative or the
    /// product overflows `Int`.
    public static func checkedElementCount(shape: [Int]) -> Int? {
        var count = 1
        for dim in shape {
            guard dim >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard !overflow else { return nil }
            count = product
        }
        return count
    }
}
