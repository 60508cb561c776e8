// SPDX-License-Identifier: Apache-2.0
// GemmaBlock: one Gemma 2 / Gemma 3 decoder layer in fp32 (four norms, soft-capped or q/k-normed attention, GeGLU).

/// One Gemma 2 / Gemma 3 decoder block, HF `Gemma2DecoderLayer` / `Gemma3DecoderLayer`:
/// `h += post_attention_norm(o_proj(attn(rope(q_proj(n₁)), rope(k_proj(n₁)), v_proj(n₁))))`, `n₁ = input_norm(h)`;
/// `h += post_feedforward_norm(down_proj(gelu_tanh(gate_proj(n₂)) ⊙ up_proj(n₂)))`, `n₂ = pre_feedforward_norm(h)`.
/// Every norm is an RMSNorm whose weight already holds Gemma's `1 + w`. Gemma 3 normalises each query
/// and key head before RoPE; Gemma 2 soft-caps the attention scores (`CausalAttention.softCap`). Local
/// layers attend within a sliding window with their own RoPE.
public struct GemmaBlock: DecoderBlock, LinearSlots {
    public let index: Int
    var inputNorm: RMSNorm
    var postAttentionNorm: RMSNorm
    var preFeedForwardNorm: RMSNorm
    var postFeedForwardNorm: RMSNorm
    /// Gemma 3's per-head norms (`nil` for Gemma 2).
    var queryNorm: RMSNorm?
    var keyNorm: RMSNorm?
    /// In `linearLayerNames` order: q, k, v, o, gate, up, down.
    var linears: [Linear]
    let attention: CausalAttention
    let rotary: RotaryEmbedding

    static let names = LlamaBlock.names

    public var linearLayerNames: [LinearLayerName] { Self.names }

    public func forward(_ hidden: Matrix, tap: ((LinearLayerName, Matrix) -> Void)?) -> Matrix {
        run(hidden, tap: tap, complete: true)!
    }

    public func tapLinearInputs(_ hidden: Matrix, tap: (LinearLayerName, Matrix) -> Void) {
        _ = withoutActuallyEscaping(tap) { run(hidden, tap: $0, complete: false) }
    }

    /// The forward pass; without `complete`, it returns `nil` right after tapping `down_proj`'s input.
    private func run(_ hidden: Matrix, tap: ((LinearLayerName, Matrix) -> Void)?, complete: Bool) -> Matrix? {
        let x = inputNorm(hidden)
        for i in 0..<3 { tap?(Self.names[i], x) }
        var q = linears[0](x)
        var k = linears[1](x)
        let v = linears[2](x)
        if let queryNorm, let keyNorm {
            q = queryNorm.perHead(q)
            k = keyNorm.perHead(k)
        }
        let tables = rotary.tables(length: hidden.rows)
        rotary.apply(to: &q, heads: attention.heads, tables: tables)
        rotary.apply(to: &k, heads: attention.kvHeads, tables: tables)
        let context = attention(q: q, k: k, v: v, compute: linears[0].compute)
        tap?(Self.names[3], context)
        var h = hidden
        Activation.add(&h, postAttentionNorm(linears[3](context)))
        let n = preFeedForwardNorm(h)
        tap?(Self.names[4], n)
        tap?(Self.names[5], n)
        let product = Activation.gegluTanh(gate: linears[4](n), up: linears[5](n))
        tap?(Self.names[6], product)
        guard complete else { return nil }
        Activation.add(&h, postFeedForwardNorm(linears[6](product)))
        return h
    }
}
