// SPDX-License-Identifier: Apache-2.0
// FloatConversion: F64/F32/F16/BF16 ⇄ F32, round-to-nearest-even, NaN-preserving.

/// Conversions between the floating-point storage types of safetensors and `Float`.
///
/// Narrowing (F32 → BF16/F16) rounds to nearest, ties to even, and keeps NaNs NaN (quiet), the
/// semantics of numpy and torch. Widening is exact.
public enum FloatConversion {
    /// Converts `source` (little-endian elements of `dtype`) to `Float` into `destination`.
    /// - Precondition: `destination.count * dtype.byteWidth == source.count` and `dtype` is a float type.
    public static func convert(
        _ source: UnsafeRawBufferPointer, dtype: DType, into destination: UnsafeMutableBufferPointer<Float>
    ) {
        let n = destination.count
        precondition(n * dtype.byteWidth == source.count, "convert: buffer sizes disagree")
        switch dtype {
        case .f32:
            for i in 0..<n {
                destination[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        case .bf16:
            for i in 0..<n {
                let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                destination[i] = Float(bitPattern: UInt32(bits) << 16)
            }
        case .f16:
            for i in 0..<n {
                let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                destination[i] = Float(Float16(bitPattern: bits))
            }
        case .f64:
            for i in 0..<n {
                destination[i] = Float(Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
            }
        default:
            preconditionFailure("convert: \(dtype) is not a floating-point type")
        }
    }

    /// Rounds a `Float` to BF16 bits (nearest, ties to even; NaN stays a quiet NaN).
    @inlinable
    public static func bf16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// Rounds a `Float` to F16 bits (nearest, ties to even; overflow to ±inf; NaN stays NaN).
    @inlinable
    public static func f16Bits(_ value: Float) -> UInt16 {
        Float16(value).bitPattern
    }
}
