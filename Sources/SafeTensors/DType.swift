// SPDX-License-Identifier: Apache-2.0
// DType: the element types a safetensors file may declare, with their byte widths.

/// An element type of a safetensors tensor, spelled as in the file header (`"BF16"`, `"F32"`, …).
///
/// ```swift
/// let dtype = DType(rawValue: "BF16")  // .bf16; unknown names give nil (the reader reports them)
/// dtype?.byteWidth                    // 2
/// ```
public enum DType: String, Sendable, CaseIterable, Codable {
    case f64 = "F64"
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i64 = "I64"
    case i32 = "I32"
    case i16 = "I16"
    case i8 = "I8"
    case u8 = "U8"
    case bool = "BOOL"

    /// Bytes per element.
    public var byteWidth: Int {
        switch self {
        case .f64, .i64: 8
        case .f32, .i32: 4
        case .f16, .bf16, .i16: 2
        case .i8, .u8, .bool: 1
        }
    }

    /// Whether values of this type convert to `Float` (F64, F32, F16, BF16).
    public var isFloatingPoint: Bool {
        switch self {
        case .f64, .f32, .f16, .bf16: true
        default: false
        }
    }

    /// The name written in a safetensors header.
    public var headerName: String { rawValue }
}

/// A Swift type whose in-memory representation is the little-endian storage of some dtypes, so a
/// tensor of those dtypes can be viewed as a buffer of it (`SafeTensorsFile.withElements`).
///
/// `Bool` is deliberately absent: a hostile BOOL tensor may hold bytes other than 0 and 1, which are
/// not valid `Bool`s; view BOOL as `UInt8`.
public protocol SafeTensorsElement: BitwiseCopyable {
    /// The dtypes whose elements are bit-for-bit values of this type.
    static var dtypes: Set<DType> { get }
}

extension Double: SafeTensorsElement {
    /// F64.
    public static var dtypes: Set<DType> { [.f64] }
}
extension Float: SafeTensorsElement {
    /// F32.
    public static var dtypes: Set<DType> { [.f32] }
}
extension UInt16: SafeTensorsElement {
    /// BF16 and F16 (raw bit patterns; convert with `FloatConversion`).
    public static var dtypes: Set<DType> { [.bf16, .f16] }
}
extension Int64: SafeTensorsElement {
    /// I64.
    public static var dtypes: Set<DType> { [.i64] }
}
extension Int32: SafeTensorsElement {
    /// I32.
    public static var dtypes: Set<DType> { [.i32] }
}
extension Int16: SafeTensorsElement {
    /// I16.
    public static var dtypes: Set<DType> { [.i16] }
}
extension Int8: SafeTensorsElement {
    /// I8.
    public static var dtypes: Set<DType> { [.i8] }
}
extension UInt8: SafeTensorsElement {
    /// U8 and BOOL (BOOL bytes are not checked to be 0 or 1).
    public static var dtypes: Set<DType> { [.u8, .bool] }
}
