// SPDX-License-Identifier: Apache-2.0
// FloatConversion+Kernels: the SIMD bit-manipulation kernels behind FloatConversion (16 lanes).

extension FloatConversion {
    /// Branch-free kernels over raw, possibly unaligned buffers of `count` elements. Each has a
    /// 16-lane SIMD body and a scalar tail applying the same formula.
    /// F16 formulas after F. Giesen, "half_to_float_fast5" and "float_to_half_fast3_rtne".
    enum Kernels {
        typealias Lanes = SIMD16<UInt32>
        static let width = 16

        // Lane selection with integer masks: `SIMDMask` comparisons and `replacing(with:where:)`
        // compile to per-lane branches here (50x slower); subtraction and an arithmetic shift do not.

        /// All ones in the lanes where `x > limit`, zero elsewhere. Requires `x, limit < 2³¹`.
        @inline(__always)
        static func greater(_ x: Lanes, _ limit: UInt32) -> Lanes {
            let difference = SIMD16<Int32>(repeating: Int32(bitPattern: limit)) &- SIMD16<Int32>(truncatingIfNeeded: x)
            return Lanes(truncatingIfNeeded: difference &>> 31)
        }

        /// `a` where `mask` is all ones, `b` where it is zero.
        @inline(__always)
        static func select(_ mask: Lanes, _ a: Lanes, _ b: Lanes) -> Lanes { (a & mask) | (b & ~mask) }

        // MARK: BF16 → F32: the BF16 bits are the top half of the F32 bits.

        static func bf16ToF32(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, count n: Int) {
            var i = 0
            while i + width <= n {
                let h = src.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt16>.self)
                dst.storeBytes(of: Lanes(truncatingIfNeeded: h) &<< 16, toByteOffset: 4 * i, as: Lanes.self)
                i += width
            }
            while i < n {
                let h = src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                dst.storeBytes(of: UInt32(h) << 16, toByteOffset: 4 * i, as: UInt32.self)
                i += 1
            }
        }

        // MARK: F16 → F32

        // h = s eeeee mmmmmmmmmm. Move e|m to F32's position, rebias the exponent (+112); infinities
        // and NaNs (e = 31) get another +112 (F32 e = 255); zeros and subnormals (e = 0) are
        // renormalised exactly by a float subtraction: (1 + m/1024)·2⁻¹⁴ − 2⁻¹⁴ = m·2⁻²⁴.
        static let shiftedExponent: UInt32 = 0x7C00 << 13
        static let rebias: UInt32 = 112 << 23
        static let subnormalMagic: UInt32 = 113 << 23

        static func f16ToF32(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, count n: Int) {
            var i = 0
            let magic = SIMD16<Float>(repeating: Float(bitPattern: subnormalMagic))
            while i + width <= n {
                let h = Lanes(truncatingIfNeeded: src.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt16>.self))
                let magnitude = (h & 0x7FFF) &<< 13
                let exponent = magnitude & shiftedExponent
                var o = magnitude &+ rebias
                o &+= greater(exponent, shiftedExponent - 1) & rebias  // infinities and NaNs
                let renormalised = unsafeBitCast(o &+ (1 << 23), to: SIMD16<Float>.self) - magic
                o = select(greater(exponent, 0), o, unsafeBitCast(renormalised, to: Lanes.self))
                o |= (h & 0x8000) &<< 16
                dst.storeBytes(of: o, toByteOffset: 4 * i, as: Lanes.self)
                i += width
            }
            while i < n {
                let bits = f16ToF32Scalar(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                dst.storeBytes(of: bits, toByteOffset: 4 * i, as: UInt32.self)
                i += 1
            }
        }

        static func f16ToF32Scalar(_ half: UInt16) -> UInt32 {
            let h = UInt32(half)
            let magnitude = (h & 0x7FFF) << 13
            let exponent = magnitude & shiftedExponent
            var o = magnitude &+ rebias
            if exponent == shiftedExponent {
                o &+= rebias
            } else if exponent == 0 {
                o = (Float(bitPattern: o &+ (1 << 23)) - Float(bitPattern: subnormalMagic)).bitPattern
            }
            return o | (h & 0x8000) << 16
        }

        // MARK: F32 → BF16: add 0x7FFF plus the lowest kept bit, truncate (ties to even).

        static func f32ToBF16(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, count n: Int) {
            var i = 0
            while i + width <= n {
                let u = src.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self)
                let rounded = (u &+ 0x7FFF &+ ((u &>> 16) & 1)) &>> 16
                let o = select(greater(u & 0x7FFF_FFFF, 0x7F80_0000), (u &>> 16) | 0x40, rounded)
                dst.storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: o), toByteOffset: 2 * i, as: SIMD16<UInt16>.self)
                i += width
            }
            while i < n {
                let value = Float(bitPattern: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                dst.storeBytes(of: bf16Bits(value), toByteOffset: 2 * i, as: UInt16.self)
                i += 1
            }
        }

        // MARK: F32 → F16

        // On |x| (sign put back at the end):
        //   |x| ≥ 2¹⁶ (bits ≥ f16Overflow): infinity, or a quiet NaN keeping the top payload bits;
        //   |x| < 2⁻¹⁴ (subnormal or zero in F16): add 0.5 in float — the sum's ulp is 2⁻²⁴, the F16
        //     subnormal step, so the FPU rounds to nearest-even — and read the count of steps;
        //   otherwise: rebias, add 0xFFF plus the lowest kept mantissa bit, truncate 13 bits
        //     (a carry into the exponent, up to infinity at 65520, is the correct rounding).
        static let f32Infinity: UInt32 = 0x7F80_0000
        static let f16Overflow: UInt32 = (127 + 16) << 23
        static let f16MinNormal: UInt32 = 113 << 23
        static let half: UInt32 = 126 << 23  // 0.5
        static let normalBias: UInt32 = 0xC800_0FFF  // (15 − 127) << 23 wrapping, + 0xFFF

        static func f32ToF16(_ src: UnsafeRawPointer, _ dst: UnsafeMutableRawPointer, count n: Int) {
            var i = 0
            let halfLanes = SIMD16<Float>(repeating: 0.5)
            while i + width <= n {
                let x = src.loadUnaligned(fromByteOffset: 4 * i, as: Lanes.self)
                let sign = x & 0x8000_0000
                let u = x ^ sign
                let normal = (u &+ normalBias &+ ((u &>> 13) & 1)) &>> 13
                let sum = unsafeBitCast(unsafeBitCast(u, to: SIMD16<Float>.self) + halfLanes, to: Lanes.self)
                var o = select(greater(u, f16MinNormal - 1), normal, sum &- half)
                let special = select(greater(u, f32Infinity), 0x7E00 | ((u &>> 13) & 0x1FF), Lanes(repeating: 0x7C00))
                o = select(greater(u, f16Overflow - 1), special, o)
                o |= sign &>> 16
                dst.storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: o), toByteOffset: 2 * i, as: SIMD16<UInt16>.self)
                i += width
            }
            while i < n {
                let bits = f32ToF16Scalar(src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                dst.storeBytes(of: bits, toByteOffset: 2 * i, as: UInt16.self)
                i += 1
            }
        }

        static func f32ToF16Scalar(_ x: UInt32) -> UInt16 {
            let sign = x & 0x8000_0000
            let u = x ^ sign
            let o: UInt32
            if u >= f16Overflow {
                o = u > f32Infinity ? 0x7E00 | ((u >> 13) & 0x1FF) : 0x7C00
            } else if u < f16MinNormal {
                o = (Float(bitPattern: u) + 0.5).bitPattern &- half
            } else {
                o = (u &+ normalBias &+ ((u >> 13) & 1)) >> 13
            }
            return UInt16(truncatingIfNeeded: o | sign >> 16)
        }
    }
}
