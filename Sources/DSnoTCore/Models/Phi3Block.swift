// SPDX-License-Identifier: Apache-2.0
// Phi3Block: one Phi-3 decoder layer in fp32 (fused qkv_proj and gate_up_proj, partial RoPE, SwiGLU).

/// One Phi-3 decoder block, HF `Phi3DecoderLayer`: LLaMA's block with `q`, `k`, `v` computed by one
/// fused `qkv_proj` (rows: the `H·d` query rows, then `KV·d` key rows, then `KV·d` value rows) and
/// `gate`, `up` by one `gate_up_proj` (the first `I` rows are the gate). RoPE rotates the first
/// `rotary.headDim` dimensions of each head.
public struct Phi3Block: DecoderBlock, LinearSlots {
    public let index: Int
    var inputNorm: RMSNorm
    var postAttentionNorm: RMSNorm
    /// In `linearLayerNames` order: qkv, o, gate_up, down.
    var linears: [Linear]
    let attention: CausalAttention
    let rotary: RotaryEmbedding

    static let names: [LinearLayerName] = [
        "self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj",
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
        let d = attention.headDim
        let x = inputNorm(hidden)
        tap?(Self.names[0], x)
        let qkv = linears[0](x)
        let queryWidth = attention.heads * d
        let keyWidth = attention.kvHeads * d
        var q = qkv.columnSlice(0..<queryWidth)
        var k = qkv.columnSlice(queryWidth..<(queryWidth + keyWidth))
        let v = qkv.columnSlice((queryWidth + keyWidth)..<qkv.columns)
        let tables = rotary.tables(length: hidden.rows)
        rotary.apply(to: &q, heads: attention.heads, headWidth: d, tables: tables)
        rotary.apply(to: &k, heads: attention.kvHeads, headWidth: d, tables: tables)
        let context = attention(q: q, k: k, v: v, compute: linears[0].compute)
        tap?(Self.names[1], context)
        var h = hidden
        Activation.add(&h, linears[1](context))
        let n = postAttentionNorm(h)
        tap?(Self.names[2], n)
        let gateUp = linears[2](n)
        let half = gateUp.columns / 2
        let product = Activation.swiGLU(
            gate: gateUp.columnSlice(0..<half),
            up: gateUp.columnSlice(half..<gateUp.columns)
        )
        tap?(Self.names[3], product)
        guard complete else { return nil }
        Activation.add(&h, linears[3](product))
        return h
    }
}

extension Matrix {
    /// Columns `range` of every row, as a new `(rows, range.count)` matrix (the parts of a fused projection).
    func columnSlice(_ range: Range<Int>) -> Matrix {
        precondition(
            range.lowerBound >= 0 && range.upperBound <= columns,
            "columnSlice: \(range) out of 0..<\(columns)"
        )
        let width = range.count
        var out = [Float](repeating: 0, count: rows * width)
        guard width > 0 else { return Matrix(rows: rows, columns: 0, storage: out) }
        storage.withUnsafeBufferPointer { p in
            out.withUnsafeMutableBufferPointer { o in
                for r in 0..<rows {
                    (o.baseAddress! + r * width).update(
                        from: p.baseAddress! + r * columns + range.lowerBound,
                        count: width
                    )
                }
            }
        }
        return Matrix(rows: rows, columns: width, storage: out)
    }
}
