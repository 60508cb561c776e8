// SPDX-License-Identifier: Apache-2.0
// SplitMix64: the documented, seeded PRNG behind calibration sampling and synthetic data.

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny PRNG whose output is fully specified, so a seed
/// gives the same calibration windows on every machine and in every language.
///
/// Each call: `state += 0x9E3779B97F4A7C15; z = state; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
/// z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31)`.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform integer in `0...upperBound` (inclusive), unbiased (Lemire's rejection method).
    public mutating func uniform(through upperBound: UInt64) -> UInt64 {
        if upperBound == UInt64.max { return next() }
        let range = upperBound + 1
        var product = next().multipliedFullWidth(by: range)
        if product.low < range {
            let threshold = (0 &- range) % range
            while product.low < threshold { product = next().multipliedFullWidth(by: range) }
        }
        return product.high
    }

    /// A uniform `Float` in `[0, 1)` from the top 24 bits.
    public mutating func unitFloat() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// A standard normal sample (Box–Muller; uses two draws).
    public mutating func normal() -> Float {
        let u1 = max(Double(next() >> 11) * 0x1p-53, 0x1p-60)
        let u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }
}

#if canImport(Glibc)
    import Glibc
    @inline(__always) private func _log(_ x: Double) -> Double { Glibc.log(x) }
    @inline(__always) private func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#elseif canImport(Musl)
    import Musl
    @inline(__always) private func _log(_ x: Double) -> Double { Musl.log(x) }
    @inline(__always) private func _cos(_ x: Double) -> Double { Musl.cos(x) }
#endif
