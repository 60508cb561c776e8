// SPDX-License-Identifier: Apache-2.0
// OPTBlock: one OPT decoder layer in fp32 (LayerNorm before or after, MHA with biases, ReLU MLP).

/// One OPT decoder block, HF `OPTDecoderLayer`. Pre-LN:
/// `h += out_proj(attn(ln₁(h)))`, `h += fc2(relu(fc1(ln₂(h))))`; post-LN applies `ln₁`/`ln₂` after each residual add.
public struct OPTBlock: DecoderBlock, LinearSlots {
    public let index: Int
    let layerNormBefore: Bool
    var attentionNorm: LayerNorm
    var mlpNorm: LayerNorm
    /// In `linearLayerNames` order: q, k, v, out, fc1, fc2.
    var linears: [Linear]
    let attention: CausalAttention

    static let names: [LinearLayerName] = [
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "fc1", "fc2",
    ]

    public var linearLayerNames: [LinearLayerName] { Self.names }

    public func forward(_ hidden: Matrix, tap: ((LinearLayerName, Matrix) -> Void)?) -> Matrix {
        run(hidden, tap: tap, complete: true)!
    }

    public func tapLinearInputs(_ hidden: Matrix, tap: (LinearLayerName, Matrix) -> Void) {
        _ = withoutActuallyEscaping(tap) { run(hidden, tap: $0, complete: false) }
    }

    /// The forward pass; without `complete`, it returns `nil` right after tapping `fc2`'s input.
    private func run(_ hidden: Matrix, tap: ((LinearLayerName, Matrix) -> Void)?, complete: Bool) -> Matrix? {
        // Attention: x (L, hidden) → q/k/v (L, hidden) → context (L, hidden).
        let x = layerNormBefore ? attentionNorm(hidden) : hidden
        for i in 0..<3 { tap?(Self.names[i], x) }
        let context = attention(
            q: linears[0](x),
            k: linears[1](x),
            v: linears[2](x),
            compute: linears[0].compute
        )
        tap?(Self.names[3], context)
        var h = hidden
        Activation.add(&h, linears[3](context))
        if !layerNormBefore { h = attentionNorm(h) }
        // MLP: n (L, hidden) → (L, ffn) → (L, hidden).
        let n = layerNormBefore ? mlpNorm(h) : h
        tap?(Self.names[4], n)
        var inner = linears[4](n)
        Activation.relu(&inner)
        tap?(Self.names[5], inner)
        guard complete else { return nil }
        Activation.add(&h, linears[5](inner))
        if !layerNormBefore { h = mlpNorm(h) }
        return h
    }
}
