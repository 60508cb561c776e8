// SPDX-License-Identifier: Apache-2.0
// RotaryEmbedding: RoPE in the Hugging Face convention (rotate_half over the two halves of a head).

import DSnoTSupport
import Foundation

/// How the rotary inverse frequencies are derived (`rope_scaling` / `rope_parameters`).
public enum RopeScaling: Sendable, Equatable {
    /// Plain RoPE.
    case none
    /// Positions divided by `factor` (HF `linear`).
    case linear(factor: Float)
    /// LLaMA 3.1 frequency-dependent scaling (HF `llama3`).
    case llama3(factor: Float, lowFrequencyFactor: Float, highFrequencyFactor: Float, originalContext: Int)
    /// Phi-3 LongRoPE (HF `longrope`): inverse frequencies divided by `short` per pair, or by `long` for
    /// a sequence longer than `originalContext`; cos and sin multiplied by `attentionFactor`.
    case longrope(short: [Float], long: [Float], originalContext: Int, attentionFactor: Float)
}

/// Rotary position embedding of one head width, as Hugging Face `LlamaRotaryEmbedding` +
/// `apply_rotary_pos_emb`: for `i < d/2`, the pair `(x[i], x[i + d/2])` is rotated by `pos · invFreq[i]`.
public struct RotaryEmbedding: Sendable, Equatable {
    /// Head width `d` (even).
    public let headDim: Int
    /// `[d/2]` inverse frequencies after scaling, fp32 as transformers computes them.
    public let inverseFrequencies: [Float]
    /// LongRoPE: the frequencies of sequences longer than `longContext` (otherwise `nil`).
    let longInverseFrequencies: [Float]?
    let longContext: Int
    /// Multiplies cos and sin (LongRoPE's attention factor; 1 otherwise).
    let attentionFactor: Float
    /// `(cos, sin)` for positions `0..<cachedPositions`, computed once (shared by every block).
    private var cachedCos: [Float] = []
    private var cachedSin: [Float] = []
    private var cachedPositions = 0

    /// - Parameter cachedPositions: positions whose tables are precomputed (the rest on demand).
    /// - Precondition: `headDim` is even and positive (the config loader validates it).
    public init(headDim: Int, theta: Float, scaling: RopeScaling, cachedPositions: Int = 0) {
        precondition(headDim > 0 && headDim % 2 == 0, "RotaryEmbedding: head dim must be even")
        self.headDim = headDim
        // inv_freq = 1 / theta^(arange(0, d, 2) / d), in float32.
        let powers = (0..<(headDim / 2)).map { i in Foundation.pow(theta, Float(2 * i) / Float(headDim)) }
        let base = powers.map { 1 / $0 }
        var long: [Float]? = nil
        var longContext = Int.max
        var attentionFactor: Float = 1
        switch scaling {
        case .none:
            inverseFrequencies = base
        case .linear(let factor):
            inverseFrequencies = base.map { $0 / factor }
        case .llama3(let factor, let low, let high, let originalContext):
            inverseFrequencies = Self.llama3(
                base,
                factor: factor,
                low: low,
                high: high,
                context: Float(originalContext)
            )
        case .longrope(let shortFactors, let longFactors, let originalContext, let factor):
            precondition(
                shortFactors.count == base.count && longFactors.count == base.count,
                "RotaryEmbedding: longrope needs one factor per rotated pair"
            )
            // inv_freq = 1 / (ext_factors · theta^(2i/d)).
            inverseFrequencies = zip(shortFactors, powers).map { 1 / ($0 * $1) }
            long = zip(longFactors, powers).map { 1 / ($0 * $1) }
            longContext = originalContext
            attentionFactor = factor
        }
        longInverseFrequencies = long
        self.longContext = longContext
        self.attentionFactor = attentionFactor
        if cachedPositions > 0 {
            (cachedCos, cachedSin) = computeTables(
                length: longInverseFrequencies == nil ? cachedPositions : min(cachedPositions, longContext),
                frequencies: inverseFrequencies
            )
            self.cachedPositions = cachedCos.count / (headDim / 2)
        }
    }

    /// transformers `_compute_llama3_parameters`: long wavelengths are divided by `factor`, short ones
    /// kept, the band between interpolated smoothly.
    static func llama3(_ invFreq: [Float], factor: Float, low: Float, high: Float, context: Float) -> [Float] {
        let lowWavelength = context / low
        let highWavelength = context / high
        return invFreq.map { f in
            let wavelength = 2 * Float.pi / f
            let scaled = wavelength > lowWavelength ? f / factor : f
            let isMedium = !(wavelength < highWavelength) && !(wavelength > lowWavelength)
            guard isMedium else { return scaled }
            let smooth = (context / wavelength - low) / (high - low)
            return (1 - smooth) * scaled / factor + smooth * scaled
        }
    }

    /// `(cos, sin)` tables `(L, d/2)` for positions `0..<length`.
    func tables(length: Int) -> (cos: [Float], sin: [Float]) {
        if let long = longInverseFrequencies, length > longContext {
            // transformers switches the whole sequence to the long factors once it passes the original context.
            return computeTables(length: length, frequencies: long)
        }
        guard length > cachedPositions else {
            let count = length * headDim / 2
            return (Array(cachedCos[0..<count]), Array(cachedSin[0..<count]))
        }
        return computeTables(length: length, frequencies: inverseFrequencies)
    }

    private func computeTables(length: Int, frequencies: [Float]) -> (cos: [Float], sin: [Float]) {
        let half = headDim / 2
        var cosTable = [Float](repeating: 0, count: length * half)
        var sinTable = [Float](repeating: 0, count: length * half)
        for p in 0..<length {
            for i in 0..<half {
                let angle = Float(p) * frequencies[i]
                cosTable[p * half + i] = Foundation.cos(angle) * attentionFactor
                sinTable[p * half + i] = Foundation.sin(angle) * attentionFactor
            }
        }
        return (cosTable, sinTable)
    }

    /// Rotates every head of `x` in place.
    /// - Parameters:
    ///   - x: `(L, heads · w)`, head `h` in columns `h·w ..< (h+1)·w`; its first `headDim` columns are
    ///     rotated (all of them unless `headWidth` is larger: Phi-3's `partial_rotary_factor`).
    ///   - headWidth: `w`, by default `headDim`.
    ///   - tables: from `tables(length: L)`.
    func apply(to x: inout Matrix, heads: Int, headWidth: Int? = nil, tables: (cos: [Float], sin: [Float])) {
        let d = headWidth ?? headDim
        let half = headDim / 2
        precondition(d >= headDim, "RoPE: head width \(d) is narrower than the rotary width \(headDim)")
        precondition(x.columns == heads * d, "RoPE: width \(x.columns) is not \(heads) heads × \(d)")
        precondition(tables.cos.count == x.rows * half, "RoPE: tables are for another length")
        let width = x.columns
        x.storage.withUnsafeMutableBufferPointer { px in
            tables.cos.withUnsafeBufferPointer { pc in
                tables.sin.withUnsafeBufferPointer { ps in
                    Parallel.forEachChunk(0..<x.rows, units: 3 * px.count) { positions in
                        for p in positions {
                            for h in 0..<heads {
                                let o = p * width + h * d
                                for i in 0..<half {
                                    let c = pc[p * half + i]
                                    let s = ps[p * half + i]
                                    let x1 = px[o + i]
                                    let x2 = px[o + i + half]
                                    px[o + i] = x1 * c - x2 * s
                                    px[o + i + half] = x2 * c + x1 * s
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
