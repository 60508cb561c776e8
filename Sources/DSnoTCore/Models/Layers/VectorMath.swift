// SPDX-License-Identifier: Apache-2.0
// VectorMath: SIMD exp, softmax, SiLU, GeLU-tanh and soft-cap kernels for the element-wise parts of the forward pass.

import DSnoTSupport

/// 8-wide kernels. `exp` is the Cephes `expf` polynomial (range reduction by ln 2 split in two
/// constants, degree-6 polynomial, exponent by bit construction): relative error about 2 ulp on
/// `[-87, 88]`, which the forward tests bound against `Foundation.exp`.
enum VectorMath {
    typealias Vector = SIMD8<Float>

    /// Elements per vector. The kernels over a range run the vector path from its start and a
    /// scalar tail that rounds differently, so a split range stays bit-identical to one call only
    /// when it is split on multiples of `lanes` (`Parallel.forEachChunk(alignment:)`).
    static let lanes = Vector.scalarCount

    /// `e^x` lane-wise; inputs are clamped to `[-87.3, 88.3]` (below: about 1e-38 instead of 0).
    @inline(__always)
    static func exp(_ input: Vector) -> Vector {
        let low = Vector(repeating: -87.3)
        let high = Vector(repeating: 88.3)
        var x = input.replacing(with: low, where: input .< low).replacing(with: high, where: input .> high)
        // n = round(x / ln 2) by the 1.5·2²³ shifter (the integer lands in the low mantissa bits of t).
        let shifter = Vector(repeating: 12_582_912)
        let t = x * 1.442_695_04 + shifter
        let n = t - shifter
        x -= n * 0.693_359_375
        x -= n * -2.121_944_4e-4
        var y = Vector(repeating: 1.987_569_15e-4)
        y = y * x + 1.398_199_95e-3
        y = y * x + 8.333_451_9e-3
        y = y * x + 4.166_579_59e-2
        y = y * x + 0.166_666_655
        y = y * x + 0.500_000_012
        y = y * x * x + x + 1
        // 2ⁿ from the exponent bits: n + 127 shifted into place.
        let exponent = (unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return y * unsafeBitCast(exponent, to: Vector.self)
    }

    /// `e^x` for one value through the vector kernel (tails and tests).
    static func exp(_ x: Float) -> Float { exp(Vector(repeating: x))[0] }

    /// `Σ (p[i] − shift)²` for `i < count`, summed in 16 fp32 lanes (two vectors) and then across them:
    /// a serial sum waits on each addition's latency, the lanes do not. (The order differs from a
    /// serial sum's by fp32 rounding, as PyTorch's vectorised `pow(2).mean(-1)` does.)
    static func sumOfSquares(_ p: UnsafePointer<Float>, count: Int, shift: Float = 0) -> Float {
        let vectorEnd = count & ~15
        var (a, b) = (Vector.zero, Vector.zero)
        var j = 0
        while j < vectorEnd {
            let x = UnsafeRawPointer(p + j).loadUnaligned(as: Vector.self) - shift
            let y = UnsafeRawPointer(p + j + 8).loadUnaligned(as: Vector.self) - shift
            a += x * x
            b += y * y
            j += 16
        }
        var total = (a + b).sum()
        for t in vectorEnd..<count { total += (p[t] - shift) * (p[t] - shift) }
        return total
    }

    /// `Σ p[i]` for `i < count`, in 16 fp32 lanes as `sumOfSquares`.
    static func sum(_ p: UnsafePointer<Float>, count: Int) -> Float {
        let vectorEnd = count & ~15
        var (a, b) = (Vector.zero, Vector.zero)
        var j = 0
        while j < vectorEnd {
            a += UnsafeRawPointer(p + j).loadUnaligned(as: Vector.self)
            b += UnsafeRawPointer(p + j + 8).loadUnaligned(as: Vector.self)
            j += 16
        }
        var total = (a + b).sum()
        for t in vectorEnd..<count { total += p[t] }
        return total
    }

    /// In-place numerically stable softmax of `p[0..<count]`.
    /// - Precondition: `count > 0`.
    static func softmax(_ p: UnsafeMutablePointer<Float>, count: Int) {
        let vectorEnd = count & ~7
        // The maximum is exact in any order, so the lanes may split it.
        var maxima = Vector(repeating: -.infinity)
        var j = 0
        while j < vectorEnd {
            let v = UnsafeRawPointer(p + j).loadUnaligned(as: Vector.self)
            maxima.replace(with: v, where: v .> maxima)  // a compare and a blend (pointwiseMax is not inlined)
            j += 8
        }
        var maximum = maxima.max()
        for t in vectorEnd..<count where p[t] > maximum { maximum = p[t] }
        j = 0
        var sums = Vector.zero
        while j < vectorEnd {
            let e = exp(UnsafeRawPointer(p + j).loadUnaligned(as: Vector.self) - maximum)
            UnsafeMutableRawPointer(p + j).storeBytes(of: e, as: Vector.self)
            sums += e
            j += 8
        }
        var sum = sums.sum()
        for t in vectorEnd..<count {
            p[t] = exp(p[t] - maximum)
            sum += p[t]
        }
        let inverse = 1 / sum
        for t in 0..<count { p[t] *= inverse }
    }

    /// `up[i] ← silu(gate[i]) · up[i]` for `i` in `range`.
    static func siluMultiply(gate: UnsafePointer<Float>, up: UnsafeMutablePointer<Float>, range: Range<Int>) {
        var i = range.lowerBound
        while i + 8 <= range.upperBound {
            let g = UnsafeRawPointer(gate + i).loadUnaligned(as: Vector.self)
            let u = UnsafeRawPointer(up + i).loadUnaligned(as: Vector.self)
            UnsafeMutableRawPointer(up + i).storeBytes(of: u * g / (1 + exp(-g)), as: Vector.self)
            i += 8
        }
        while i < range.upperBound {
            up[i] *= gate[i] / (1 + exp(-gate[i]))
            i += 1
        }
    }

    /// `p[i] ← cap · tanh(p[i] / cap)` for `i < count` (Gemma 2 soft-capping; transformers divides, takes
    /// `tanh` and multiplies). `tanh y = sign(y) (1 − t) / (1 + t)` with `t = e^{−2|y|}` from the vector
    /// `exp`: the absolute error is a few ulp of 1, i.e. of `cap`, against the scores' range `(−cap, cap)`.
    static func softCap(_ p: UnsafeMutablePointer<Float>, count: Int, cap: Float) {
        let inverse = 1 / cap
        var i = 0
        while i + 8 <= count {
            let x = UnsafeRawPointer(p + i).loadUnaligned(as: Vector.self)
            let y = x * inverse
            let t = exp(-2 * y.replacing(with: -y, where: y .< 0))
            let magnitude = cap * (1 - t) / (1 + t)
            UnsafeMutableRawPointer(p + i).storeBytes(
                of: magnitude.replacing(with: -magnitude, where: y .< 0),
                as: Vector.self
            )
            i += 8
        }
        while i < count {
            let y = p[i] * inverse
            let t = exp(-2 * Swift.abs(y))
            let magnitude = cap * (1 - t) / (1 + t)
            p[i] = y < 0 ? -magnitude : magnitude
            i += 1
        }
    }

    /// `up[i] ← gelu_tanh(gate[i]) · up[i]` for `i` in `range`: the GeGLU product with transformers'
    /// `gelu_pytorch_tanh`, `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`, computed as the equal
    /// `x / (1 + e^{−2u})`, `u = √(2/π) (x + 0.044715 x³)` (SiLU's form, with the vector `exp`).
    static func geluTanhMultiply(gate: UnsafePointer<Float>, up: UnsafeMutablePointer<Float>, range: Range<Int>) {
        let k: Float = 0.797_884_56  // √(2/π)
        var i = range.lowerBound
        while i + 8 <= range.upperBound {
            let x = UnsafeRawPointer(gate + i).loadUnaligned(as: Vector.self)
            let u = UnsafeRawPointer(up + i).loadUnaligned(as: Vector.self)
            let inner = k * (x + 0.044_715 * x * x * x)
            UnsafeMutableRawPointer(up + i).storeBytes(of: u * x / (1 + exp(-2 * inner)), as: Vector.self)
            i += 8
        }
        while i < range.upperBound {
            let x = gate[i]
            up[i] *= x / (1 + exp(-2 * k * (x + 0.044_715 * x * x * x)))
            i += 1
        }
    }
}
