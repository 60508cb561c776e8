// SPDX-License-Identifier: Apache-2.0
// MoEBlock: one Mixtral / Qwen2-MoE / Qwen3-MoE decoder layer in fp32 (LLaMA attention, sparse MoE or dense MLP).

/// One mixture-of-experts decoder block, HF `MixtralDecoderLayer` / `Qwen2MoeDecoderLayer` /
/// `Qwen3MoeDecoderLayer`: the LLaMA attention half (`LlamaAttentionPath`), then with `n = rmsnorm(h)`
/// `h += Σ_{e ∈ topk(n_t)} w_{t,e} · down_e(silu(gate_e(n_t)) ⊙ up_e(n_t))` per token `t`
/// (`MoERouting`), plus, for Qwen2-MoE, `sigmoid(shared_expert_gate(n_t)) · shared_expert(n_t)`.
/// A dense layer (`mlp_only_layers`, `decoder_sparse_step`) runs LLaMA's SwiGLU MLP instead.
///
/// Only routed tokens are computed: each expert gathers its tokens' rows, runs its three GEMMs on
/// them and adds its weighted outputs back into their rows; an expert with no token costs nothing.
/// The tap sees each expert's layers with the gathered rows `(tokens routed, in)` (an empty matrix
/// when none were), so statistics of an expert are those of its tokens.
public struct MoEBlock: DecoderBlock, LinearSlots {
    public let index: Int
    var attentionPath: LlamaAttentionPath
    var postAttentionNorm: RMSNorm
    /// Attention (4), then per expert gate, up, down, then the shared expert's gate, up, down; a dense
    /// layer has the MLP's gate, up, down after the attention.
    public let linearLayerNames: [LinearLayerName]
    var linears: [Linear]
    /// The router `(E, hidden)`; `nil` in a dense layer. Never pruned.
    let router: Linear?
    let expertsPerToken: Int
    let normalizeTopK: Bool
    /// Qwen2-MoE's `shared_expert_gate` `(1, hidden)`, present with a shared expert. Never pruned.
    let sharedExpertGate: Linear?

    /// Routed experts (0 in a dense layer).
    public var expertCount: Int { router?.outFeatures ?? 0 }

    public func forward(_ hidden: Matrix, tap: ((LinearLayerName, Matrix) -> Void)?) -> Matrix {
        var h = attentionPath.residual(hidden, linears: linears, tap: tap)
        let n = postAttentionNorm(h)
        guard let router else {
            tap?(linearLayerNames[4], n)
            tap?(linearLayerNames[5], n)
            let product = Activation.swiGLU(gate: linears[4](n), up: linears[5](n))
            tap?(linearLayerNames[6], product)
            Activation.add(&h, linears[6](product))
            return h
        }
        let routing = MoERouting(logits: router(n), topK: expertsPerToken, normalize: normalizeTopK)
        var out = Matrix(rows: n.rows, columns: n.columns)
        for e in 0..<routing.expertCount {
            let slot = 4 + 3 * e
            let (tokens, weights) = routing.assignments[e]
            let x = Self.gather(n, rows: tokens)  // (tokens routed, hidden)
            tap?(linearLayerNames[slot], x)
            tap?(linearLayerNames[slot + 1], x)
            guard !tokens.isEmpty else {
                tap?(linearLayerNames[slot + 2], Matrix(rows: 0, columns: linears[slot + 2].inFeatures))
                continue
            }
            let product = Activation.swiGLU(gate: linears[slot](x), up: linears[slot + 1](x))
            tap?(linearLayerNames[slot + 2], product)
            Self.scatterAdd(linears[slot + 2](product), weights: weights, rows: tokens, into: &out)
        }
        if let sharedExpertGate {
            let slot = 4 + 3 * routing.expertCount
            tap?(linearLayerNames[slot], n)
            tap?(linearLayerNames[slot + 1], n)
            let product = Activation.swiGLU(gate: linears[slot](n), up: linears[slot + 1](n))
            tap?(linearLayerNames[slot + 2], product)
            let shared = linears[slot + 2](product)
            let gate = sharedExpertGate(n)  // (L, 1)
            for t in 0..<n.rows {
                let g = 1 / (1 + VectorMath.exp(-gate.storage[t]))
                Self.addScaled(shared, row: t, scale: g, into: &out, row: t)
            }
        }
        Activation.add(&h, out)
        return h
    }

    /// Rows `rows` of `x`, in that order: `(rows.count, x.columns)`.
    static func gather(_ x: Matrix, rows: [Int]) -> Matrix {
        let c = x.columns
        return Matrix(rows: rows.count, columns: c) { out in
            x.storage.withUnsafeBufferPointer { px in
                for (i, r) in rows.enumerated() {
                    (out.baseAddress! + i * c).update(from: px.baseAddress! + r * c, count: c)
                }
            }
        }
    }

    /// `out[rows[i]] += weights[i] · y[i]` for every `i`.
    static func scatterAdd(_ y: Matrix, weights: [Float], rows: [Int], into out: inout Matrix) {
        for (i, r) in rows.enumerated() { addScaled(y, row: i, scale: weights[i], into: &out, row: r) }
    }

    /// `out[target] += scale · y[source]`.
    @inline(__always)
    static func addScaled(_ y: Matrix, row source: Int, scale: Float, into out: inout Matrix, row target: Int) {
        let c = y.columns
        y.storage.withUnsafeBufferPointer { py in
            out.storage.withUnsafeMutableBufferPointer { po in
                let s = py.baseAddress! + source * c
                let d = po.baseAddress! + target * c
                for j in 0..<c { d[j] += scale * s[j] }
            }
        }
    }
}
