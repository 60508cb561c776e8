// SPDX-License-Identifier: Apache-2.0
// LlamaBlock: one LLaMA decoder layer in fp32 (RMSNorm, GQA attention with RoPE, SwiGLU MLP).

/// One LLaMA-family decoder block, HF `LlamaDecoderLayer`:
/// `h += o_proj(attn(rope(q_proj(n₁)), rope(k_proj(n₁)), v_proj(n₁)))`, `n₁ = rmsnorm(h)`;
/// `h += down_proj(silu(gate_proj(n₂)) ⊙ up_proj(n₂))`, `n₂ = rmsnorm(h)`. Qwen3 normalises every
/// query and key head (`q_norm`, `k_norm`) between the projection and RoPE.
public struct LlamaBlock: DecoderBlock, LinearSlots {
    public let index: Int
    /// The attention half (shared with the MoE families, `MoEBlock`).
    var attentionPath: LlamaAttentionPath
    var postAttentionNorm: RMSNorm
    /// In `linearLayerNames` order: q, k, v, o, gate, up, down.
    var linears: [Linear]

    static let names: [LinearLayerName] =
        LlamaAttentionPath.names + [
            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
        ]

    public var linearLayerNames: [LinearLayerName] { Self.names }

    public func forward(_ hidden: Matrix, tap: ((LinearLayerName, Matrix) -> Void)?) -> Matrix {
        run(hidden, tap: tap, complete: true)!
    }

    public func tapLinearInputs(_ hidden: Matrix, tap: (LinearLayerName, Matrix) -> Void) {
        _ = withoutActuallyEscaping(tap) { run(hidden, tap: $0, complete: false) }
    }

    /// The forward pass; without `complete`, it returns `nil` right after tapping `down_proj`'s input.
    private func run(_ hidden: Matrix, tap: ((LinearLayerName, Matrix) -> Void)?, complete: Bool) -> Matrix? {
        var h = attentionPath.residual(hidden, linears: linears, tap: tap)
        // MLP: n (L, hidden) → (L, intermediate) → (L, hidden).
        let n = postAttentionNorm(h)
        tap?(Self.names[4], n)
        tap?(Self.names[5], n)
        let product = Activation.swiGLU(gate: linears[4](n), up: linears[5](n))
        tap?(Self.names[6], product)
        guard complete else { return nil }
        Activation.add(&h, linears[6](product))
        return h
    }
}

/// The attention half of a LLaMA-family block, `h + o_proj(attn(rope(q_proj(n₁)), rope(k_proj(n₁)),
/// v_proj(n₁)))` with `n₁ = input_layernorm(h)`: the one implementation `LlamaBlock` and `MoEBlock`
/// (Mixtral, Qwen2-MoE, Qwen3-MoE) run.
struct LlamaAttentionPath: Sendable {
    /// The attention projections, the first four linear layers of every block that uses this path.
    static let names: [LinearLayerName] = [
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    ]

    var inputNorm: RMSNorm
    /// Qwen3's per-head norms (`nil` for the other members of the family).
    var queryNorm: RMSNorm?
    var keyNorm: RMSNorm?
    let attention: CausalAttention
    let rotary: RotaryEmbedding

    /// `hidden` plus the attention output; taps the inputs of q, k, v and o.
    /// - Parameters:
    ///   - hidden: `(L, hidden)`.
    ///   - linears: the block's linear layers; `linears[0..<4]` are q, k, v, o (`names`).
    /// - Returns: `(L, hidden)`, the residual stream after attention.
    func residual(_ hidden: Matrix, linears: [Linear], tap: ((LinearLayerName, Matrix) -> Void)?) -> Matrix {
        let length = hidden.rows
        // Attention: x (L, hidden) → q (L, H·d), k/v (L, KV·d).
        let x = inputNorm(hidden)
        for i in 0..<3 { tap?(Self.names[i], x) }
        var q = linears[0](x)
        var k = linears[1](x)
        let v = linears[2](x)
        if let queryNorm, let keyNorm {
            q = queryNorm.perHead(q)
            k = keyNorm.perHead(k)
        }
        let tables = rotary.tables(length: length)
        rotary.apply(to: &q, heads: attention.heads, tables: tables)
        rotary.apply(to: &k, heads: attention.kvHeads, tables: tables)
        let context = attention(q: q, k: k, v: v, compute: linears[0].compute)  // (L, H·d)
        tap?(Self.names[3], context)
        var h = hidden
        Activation.add(&h, linears[3](context))
        return h
    }
}
