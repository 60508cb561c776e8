// SPDX-License-Identifier: Apache-2.0
// FloatConversion tests: exhaustive over every F16/BF16 bit pattern against first-principles references.

import Foundation
import SafeTensors
import Testing

/// References computed from the definition of each format in Double arithmetic (exact for every
/// value involved), independent of the bit tricks in the kernels.
enum Reference {
    /// The value of a binary16 pattern, or nil for NaN.
    static func f16Value(_ bits: UInt16) -> Double? {
        let sign: Double = bits & 0x8000 != 0 ? -1 : 1
        let exponent = Int(bits >> 10) & 0x1F
        let mantissa = Double(bits & 0x3FF)
        switch exponent {
        case 31: return mantissa == 0 ? sign * .infinity : nil
        case 0: return sign * mantissa * 0x1p-24
        default: return sign * (1 + mantissa / 1024) * Double(sign: .plus, exponent: exponent - 15, significand: 1)
        }
    }

    /// The value of a bfloat16 pattern (the top half of a binary32), or nil for NaN.
    static func bf16Value(_ bits: UInt16) -> Double? {
        let sign: Double = bits & 0x8000 != 0 ? -1 : 1
        let exponent = Int(bits >> 7) & 0xFF
        let mantissa = Double(bits & 0x7F)
        switch exponent {
        case 255: return mantissa == 0 ? sign * .infinity : nil
        case 0: return sign * mantissa * 0x1p-133
        default: return sign * (1 + mantissa / 128) * Double(sign: .plus, exponent: exponent - 127, significand: 1)
        }
    }

    /// Rounds `x` to a grid with `precision` significand bits, minimum exponent `minExponent` and
    /// overflow threshold `overflow` (the value at which rounding gives infinity), ties to even.
    static func round(_ x: Double, precision: Int, minExponent: Int, overflow: Double) -> Double {
        guard x.isFinite, x != 0 else { return x }
        let exponent = max(Int(x.exponent), minExponent)
        let quantum = Double(sign: .plus, exponent: exponent - (precision - 1), significand: 1)
        let rounded = (x / quantum).rounded(.toNearestOrEven) * quantum
        return abs(rounded) >= overflow ? (x < 0 ? -.infinity : .infinity) : rounded
    }
}

@Suite struct FloatConversionTests {
    static let allPatterns = (0...UInt16.max).map { $0 }

    static func widen(
        _ bits: [UInt16],
        _ kernel: (UnsafeBufferPointer<UInt16>, UnsafeMutableBufferPointer<Float>) -> Void
    ) -> [Float] {
        var out = [Float](repeating: 0, count: bits.count)
        bits.withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { kernel(src, $0) } }
        return out
    }

    static func narrow(
        _ values: [Float],
        _ kernel: (UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<UInt16>) -> Void
    ) -> [UInt16] {
        var out = [UInt16](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { src in out.withUnsafeMutableBufferPointer { kernel(src, $0) } }
        return out
    }

    // Every one of the 65,536 patterns, exact (NaNs: NaN with the same sign and payload).
    @Test func f16ToF32IsExactForAllPatterns() {
        let out = Self.widen(Self.allPatterns, FloatConversion.f16ToF32)
        for (bits, value) in zip(Self.allPatterns, out) {
            if let expected = Reference.f16Value(bits) {
                #expect(Double(value) == expected && value.sign == expected.sign, "f16 0x\(String(bits, radix: 16))")
            } else {
                #expect(
                    value.isNaN
                        && value.bitPattern == (UInt32(bits & 0x8000) << 16 | 0x7F80_0000 | UInt32(bits & 0x3FF) << 13)
                )
            }
            #expect(FloatConversion.f32(f16Bits: bits).bitPattern == value.bitPattern)
        }
    }

    @Test func bf16ToF32IsExactForAllPatterns() {
        let out = Self.widen(Self.allPatterns, FloatConversion.bf16ToF32)
        for (bits, value) in zip(Self.allPatterns, out) {
            if let expected = Reference.bf16Value(bits) {
                #expect(Double(value) == expected && value.sign == expected.sign, "bf16 0x\(String(bits, radix: 16))")
            } else {
                #expect(value.isNaN && value.bitPattern == UInt32(bits) << 16)
            }
        }
    }

    // Narrowing every widened pattern gives the pattern back (NaNs: a quiet NaN, same sign).
    @Test func narrowingInvertsWideningForAllPatterns() {
        for (widen, narrow, quietBit) in [
            (FloatConversion.f16ToF32, FloatConversion.f32ToF16, UInt16(0x0200)),
            (FloatConversion.bf16ToF32, FloatConversion.f32ToBF16, UInt16(0x0040)),
        ] {
            let back = Self.narrow(Self.widen(Self.allPatterns, widen), narrow)
            for (bits, result) in zip(Self.allPatterns, back) {
                let isNaN = quietBit == 0x0200 ? Reference.f16Value(bits) == nil : Reference.bf16Value(bits) == nil
                if isNaN {
                    #expect(
                        result == bits | quietBit,
                        "NaN 0x\(String(bits, radix: 16)) → 0x\(String(result, radix: 16))"
                    )
                } else {
                    #expect(result == bits)
                }
            }
        }
    }

    /// Midpoints between consecutive representable values round to the even neighbour, and one
    /// F32 ulp either side rounds to the nearer one: the cases where truncation or round-half-up
    /// would differ from round-to-nearest-even.
    @Test(arguments: [DType.f16, .bf16])
    func tiesRoundToEvenAndNeighboursToNearest(dtype: DType) {
        let isF16 = dtype == .f16
        let value: (UInt16) -> Double? = { isF16 ? Reference.f16Value($0) : Reference.bf16Value($0) }
        let narrow: (UnsafeBufferPointer<Float>, UnsafeMutableBufferPointer<UInt16>) -> Void = {
            isF16 ? FloatConversion.f32ToF16($0, into: $1) : FloatConversion.f32ToBF16($0, into: $1)
        }
        let upper: UInt16 = isF16 ? 0x7C00 : 0x7F80  // the positive infinities
        var inputs: [Float] = []
        var expected: [UInt16] = []
        for low in UInt16(0)..<upper {
            guard let a = value(low), let b = value(low + 1), b.isFinite else { continue }
            let mid = Float((a + b) / 2)
            let even = low & 1 == 0 ? low : low + 1
            inputs += [mid, mid.nextDown, mid.nextUp, -mid]
            expected += [even, low, low + 1, even | 0x8000]
        }
        let out = Self.narrow(inputs, narrow)
        var failures = 0
        for i in inputs.indices where out[i] != expected[i] {
            failures += 1
            if failures < 5 {
                Issue.record(
                    "\(dtype) \(inputs[i]) → 0x\(String(out[i], radix: 16)), want 0x\(String(expected[i], radix: 16))"
                )
            }
        }
        #expect(failures == 0)
        #expect(inputs.count > 100_000)
    }

    @Test func edgeCasesRoundAsNumpyAndTorch() {
        struct Case {
            var value: Float
            var f16: UInt16
            var bf16: UInt16
            init(_ value: Float, _ f16: UInt16, _ bf16: UInt16) {
                self.value = value
                self.f16 = f16
                self.bf16 = bf16
            }
        }
        let cases: [Case] = [
            Case(0, 0x0000, 0x0000), Case(-0.0, 0x8000, 0x8000), Case(1, 0x3C00, 0x3F80), Case(-2, 0xC000, 0xC000),
            Case(65504, 0x7BFF, 0x4780), Case(65519.99, 0x7BFF, 0x4780), Case(65520, 0x7C00, 0x4780),
            Case(1e6, 0x7C00, 0x4974), Case(.infinity, 0x7C00, 0x7F80), Case(-.infinity, 0xFC00, 0xFF80),
            Case(0x1p-24, 0x0001, 0x3380), Case(0x1p-25, 0x0000, 0x3300), Case(0x1.8p-25, 0x0001, 0x3340),
            Case(0x1p-14, 0x0400, 0x3880), Case(.greatestFiniteMagnitude, 0x7C00, 0x7F80),
            Case(.leastNonzeroMagnitude, 0x0000, 0x0000), Case(Float(bitPattern: 0x3F80_8000), 0x3C04, 0x3F80),
            Case(Float(bitPattern: 0x3F81_8000), 0x3C0C, 0x3F82),
        ]
        let values = cases.map(\.value)
        #expect(Self.narrow(values, FloatConversion.f32ToF16) == cases.map(\.f16))
        #expect(Self.narrow(values, FloatConversion.f32ToBF16) == cases.map(\.bf16))
        #expect(values.map(FloatConversion.f16Bits) == cases.map(\.f16))
        #expect(values.map(FloatConversion.bf16Bits) == cases.map(\.bf16))
        // NaNs: quiet, sign kept, top payload kept.
        let nans: [UInt32] = [0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0xFF80_2000, 0x7FA0_0000]
        let nanValues = nans.map { Float(bitPattern: $0) }
        #expect(Self.narrow(nanValues, FloatConversion.f32ToF16) == [0x7E00, 0xFE00, 0x7E00, 0xFE01, 0x7F00])
        #expect(Self.narrow(nanValues, FloatConversion.f32ToBF16) == [0x7FC0, 0xFFC0, 0x7FC0, 0xFFC0, 0x7FE0])
    }

    /// 2²⁰ random bit patterns (every class: NaN, inf, subnormal, huge) against the Double
    /// reference (F16: also Swift's `Float16(_:)`), vector body and scalar tail alike (odd count).
    @Test func randomSampleMatchesReference() {
        var state: UInt64 = 0x5EED
        let values: [Float] = (0..<(1 << 20) + 7).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(bitPattern: UInt32(truncatingIfNeeded: state >> 32))
        }
        let f16 = Self.narrow(values, FloatConversion.f32ToF16)
        let bf16 = Self.narrow(values, FloatConversion.f32ToBF16)
        var mismatches = 0
        for (i, x) in values.enumerated() {
            if x.isNaN {
                if !(Reference.f16Value(f16[i]) == nil && Reference.bf16Value(bf16[i]) == nil) { mismatches += 1 }
                continue
            }
            let expectedF16 = Reference.round(Double(x), precision: 11, minExponent: -14, overflow: 65536)
            let expectedBF16 = Reference.round(Double(x), precision: 8, minExponent: -126, overflow: 0x1p128)
            let gotF16 = Reference.f16Value(f16[i]) ?? .nan
            let gotBF16 = Reference.bf16Value(bf16[i]) ?? .nan
            if gotF16 != expectedF16 || gotF16.sign != x.sign || f16[i] != Float16(x).bitPattern { mismatches += 1 }
            if gotBF16 != expectedBF16 || gotBF16.sign != x.sign { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    @Test(arguments: [DType.f64, .f32, .f16, .bf16])
    func encodeThenConvertRoundTripsRepresentableValues(dtype: DType) {
        let values: [Float] = [0, 1, -1.5, 0.25, 1024, -65504, 3.0e-5]
        let bytes = FloatConversion.encode(values, as: dtype)
        #expect(bytes.count == values.count * dtype.byteWidth)
        var back = [Float](repeating: .nan, count: values.count)
        bytes.withUnsafeBytes { raw in
            back.withUnsafeMutableBufferPointer { FloatConversion.convert(raw, dtype: dtype, into: $0) }
        }
        let tolerance: Float = dtype == .bf16 ? 1.0 / 128 : (dtype == .f16 ? 1.0 / 1024 : 0)  // relative
        for (a, b) in zip(values, back) { #expect(abs(a - b) <= tolerance * abs(a), "\(dtype): \(a) → \(b)") }
    }
}
