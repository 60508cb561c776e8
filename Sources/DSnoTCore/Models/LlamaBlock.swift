// SPDX-License-Identifier: Apache-2.0
// LlamaBlock: one LLaMA decoder layer in fp32 (RMSNorm, GQA attention with RoPE, SwiGLU MLP).

/// One LLaMA-family decoder block, HF `LlamaDecoderLayer`:
/// `h += o_proj(attn(rope(q_proj(n₁)), rope(k_proj(n₁)), v_proj(n₁)))`, `n₁ = rmsnorm(h)`;
/// `h += down_proj(silu(gate_proj(n₂)) ⊙ up_proj(n₂))`, `n₂ = rmsnorm(h)`. Qwen3 normalises every
/// query and key head (`q_norm`, `k_norm`) between the projection and RoPE.
public struct LlamaBlock: DecoderBlock, LinearSlots {
    public let index: Int
    var inputNorm: RMSNorm
    var postAttentionNorm: RMSNorm
    /// Qwen3's per-head norms (`nil` for the other members of the family).
    var queryNorm: RMSNorm?
    var keyNorm: RMSNorm?
    /// In `linearLayerNames` order: q, k, v, o, gate, up, down.
    var linears: [Linear]
    let attention: CausalAttention
    let rotary: RotaryEmbedding

    static let names: [LinearLayerName] = [
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
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
        let context = attention(q: q, k: k, v: v)  // (L, H·d)
        tap?(Self.names[3], context)
        var h = hidden
        Activation.add(&h, linears[3](context))
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
