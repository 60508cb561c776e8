// SPDX-License-Identifier: Apache-2.0
// FloatConversion: F64/F32/F16/BF16 ⇄ F32 over buffers, vectorized, round-to-nearest-even, NaN-preserving.

/// Conversions between the floating-point storage types of safetensors and `Float`.
///
/// Widening (BF16/F16 → F32) is exact and keeps NaN payloads bit for bit (numpy's and
/// ml_dtypes' behaviour). Narrowing (F32 → BF16/F16) rounds to nearest, ties to even, overflows to
/// ±infinity, flushes nothing (F16 subnormals are produced exactly), and turns a NaN into a quiet
/// NaN with the same sign and the top payload bits. The buffer kernels are branch-free SIMD over
/// 16 lanes (integer bit manipulation, plus one float add for F16 subnormals), with a scalar tail
/// computing the same formulas; they run at memory speed without F16C. Data is little-endian
/// (safetensors' byte order, and every platform dsnot targets).
///
/// ```swift
/// let bits: [UInt16] = …                         // BF16 weights
/// var values = [Float](repeating: 0, count: bits.count)
/// bits.withUnsafeBufferPointer { src in
///     values.withUnsafeMutableBufferPointer { FloatConversion.bf16ToF32(src, into: $0) }
/// }
/// ```
public enum FloatConversion {
    /// Widens BF16 bit patterns to `Float` (exact).
    /// - Precondition: `source.count == destination.count`.
    public static func bf16ToF32(
        _ source: UnsafeBufferPointer<UInt16>,
        into destination: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(source.count == destination.count, "bf16ToF32: buffer sizes disagree")
        guard let src = source.baseAddress, let dst = destination.baseAddress else { return }
        Kernels.bf16ToF32(UnsafeRawPointer(src), UnsafeMutableRawPointer(dst), count: source.count)
    }

    /// Widens F16 bit patterns to `Float` (exact; subnormals, infinities and NaN payloads kept).
    /// - Precondition: `source.count == destination.count`.
    public static func f16ToF32(
        _ source: UnsafeBufferPointer<UInt16>,
        into destination: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(source.count == destination.count, "f16ToF32: buffer sizes disagree")
        guard let src = source.baseAddress, let dst = destination.baseAddress else { return }
        Kernels.f16ToF32(UnsafeRawPointer(src), UnsafeMutableRawPointer(dst), count: source.count)
    }

    /// Rounds `Float`s to BF16 bit patterns (nearest, ties to even; NaN → quiet NaN, sign kept).
    /// - Precondition: `source.count == destination.count`.
    public static func f32ToBF16(
        _ source: UnsafeBufferPointer<Float>,
        into destination: UnsafeMutableBufferPointer<UInt16>
    ) {
        precondition(source.count == destination.count, "f32ToBF16: buffer sizes disagree")
        guard let src = source.baseAddress, let dst = destination.baseAddress else { return }
        Kernels.f32ToBF16(UnsafeRawPointer(src), UnsafeMutableRawPointer(dst), count: source.count)
    }

    /// Rounds `Float`s to F16 bit patterns (nearest, ties to even; overflow → ±inf; NaN → quiet NaN).
    /// - Precondition: `source.count == destination.count`.
    public static func f32ToF16(
        _ source: UnsafeBufferPointer<Float>,
        into destination: UnsafeMutableBufferPointer<UInt16>
    ) {
        precondition(source.count == destination.count, "f32ToF16: buffer sizes disagree")
        guard let src = source.baseAddress, let dst = destination.baseAddress else { return }
        Kernels.f32ToF16(UnsafeRawPointer(src), UnsafeMutableRawPointer(dst), count: source.count)
    }

    /// Converts `source` (little-endian elements of a float `dtype`, any alignment) to `Float`.
    /// - Precondition: `destination.count * dtype.byteWidth == source.count` and `dtype.isFloatingPoint`.
    public static func convert(
        _ source: UnsafeRawBufferPointer,
        dtype: DType,
        into destination: UnsafeMutableBufferPointer<Float>
    ) {
        let n = destination.count
        precondition(n * dtype.byteWidth == source.count, "convert: buffer sizes disagree")
        guard n > 0, let src = source.baseAddress, let dst = destination.baseAddress else { return }
        let out = UnsafeMutableRawPointer(dst)
        switch dtype {
        case .f32: out.copyMemory(from: src, byteCount: 4 * n)
        case .bf16: Kernels.bf16ToF32(src, out, count: n)
        case .f16: Kernels.f16ToF32(src, out, count: n)
        case .f64:
            for i in 0..<n {
                dst[i] = Float(
                    Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)))
                )
            }
        case .i64, .i32, .i16, .i8, .u8, .bool:
            preconditionFailure("convert: \(dtype) is not a floating-point type")
        }
    }

    /// Encodes `Float`s as little-endian bytes of a float `dtype` (rounding as documented above;
    /// F64 is exact).
    /// - Precondition: `dtype.isFloatingPoint`.
    public static func encode(_ values: UnsafeBufferPointer<Float>, as dtype: DType) -> [UInt8] {
        let n = values.count
        return [UInt8](unsafeUninitializedCapacity: n * dtype.byteWidth) { buffer, count in
            count = n * dtype.byteWidth
            guard n > 0, let src = values.baseAddress, let dst = buffer.baseAddress else { return }
            let out = UnsafeMutableRawPointer(dst)
            switch dtype {
            case .f32: out.copyMemory(from: src, byteCount: 4 * n)
            case .bf16: Kernels.f32ToBF16(UnsafeRawPointer(src), out, count: n)
            case .f16: Kernels.f32ToF16(UnsafeRawPointer(src), out, count: n)
            case .f64:
                for i in 0..<n {
                    out.storeBytes(of: Double(src[i]).bitPattern.littleEndian, toByteOffset: 8 * i, as: UInt64.self)
                }
            case .i64, .i32, .i16, .i8, .u8, .bool:
                preconditionFailure("encode: \(dtype) is not a floating-point type")
            }
        }
    }

    /// Encodes `Float`s as little-endian bytes of a float `dtype`.
    /// - Precondition: `dtype.isFloatingPoint`.
    public static func encode(_ values: [Float], as dtype: DType) -> [UInt8] {
        values.withUnsafeBufferPointer { encode($0, as: dtype) }
    }

    /// Rounds one `Float` to BF16 bits (nearest, ties to even; NaN stays a quiet NaN).
    @inlinable
    public static func bf16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounding = 0x7FFF + ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    /// Rounds one `Float` to F16 bits (nearest, ties to even; overflow to ±inf; NaN stays NaN).
    public static func f16Bits(_ value: Float) -> UInt16 { Kernels.f32ToF16Scalar(value.bitPattern) }

    /// Widens one BF16 bit pattern to `Float` (exact).
    @inlinable
    public static func f32(bf16Bits bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// Widens one F16 bit pattern to `Float` (exact).
    public static func f32(f16Bits bits: UInt16) -> Float { Float(bitPattern: Kernels.f16ToF32Scalar(bits)) }
}
