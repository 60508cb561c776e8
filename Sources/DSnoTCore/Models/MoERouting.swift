// SPDX-License-Identifier: Apache-2.0
// MoERouting: top-k softmax routing of a sparse mixture-of-experts block, and the per-expert token lists.
// Shapes: router logits (L, E) → k experts and weights per token → for each expert, its tokens and weights.

/// Which experts each token of a sequence uses, as transformers 5 routes (`MixtralTopKRouter`,
/// `Qwen2MoeTopKRouter`, `Qwen3MoeTopKRouter`): `p = softmax(logits)` in fp32 over the `E` experts,
/// the `k` largest `p`, divided by their sum when `normalize` (`norm_topk_prob`; Mixtral always,
/// which equals its former softmax over the selected logits).
///
/// Ties: of exactly equal probabilities the lower expert index wins. `torch.topk` documents no order
/// for ties, so on an exact tie transformers may pick the other expert; random weights never tie, a
/// router with two identical rows does.
///
/// ```swift
/// let routing = MoERouting(logits: router(x), topK: 2, normalize: true)   // x (L, hidden)
/// for e in 0..<routing.expertCount { let (tokens, weights) = routing.assignments[e] … }
/// ```
public struct MoERouting: Sendable, Equatable {
    /// Number of experts `E`.
    public let expertCount: Int
    /// Experts per token `k`.
    public let topK: Int
    /// Per token, its `k` experts by decreasing probability (ties: lower index first), `(L·k)`.
    public let selected: [Int]
    /// The matching routing weights, `(L·k)`.
    public let weights: [Float]
    /// Per expert, the tokens routed to it in increasing order and their weights.
    public let assignments: [(tokens: [Int], weights: [Float])]

    /// - Parameters:
    ///   - logits: `(L, E)` router outputs.
    ///   - topK: `1 ≤ k ≤ E` (the configuration checked it).
    ///   - normalize: divide the `k` probabilities by their sum.
    public init(logits: Matrix, topK: Int, normalize: Bool) {
        precondition((1...max(1, logits.columns)).contains(topK), "MoERouting: k must be in 1...E")
        let e = logits.columns
        let length = logits.rows
        expertCount = e
        self.topK = topK
        var selected = [Int](repeating: 0, count: length * topK)
        var weights = [Float](repeating: 0, count: length * topK)
        var probabilities = [Float](repeating: 0, count: e)
        var lists = [(tokens: [Int], weights: [Float])](repeating: ([], []), count: e)
        for t in 0..<length {
            probabilities.withUnsafeMutableBufferPointer { p in
                for j in 0..<e { p[j] = logits[t, j] }
                VectorMath.softmax(p.baseAddress!, count: e)
            }
            let picks = Self.topK(probabilities, k: topK)
            var total: Float = 0
            for i in 0..<topK { total += probabilities[picks[i]] }
            for i in 0..<topK {
                let p = probabilities[picks[i]]
                selected[t * topK + i] = picks[i]
                weights[t * topK + i] = normalize ? p / total : p
            }
        }
        // Tokens in increasing order per expert (the order a gather over the sequence meets them).
        for t in 0..<length {
            for i in 0..<topK {
                let x = selected[t * topK + i]
                lists[x].tokens.append(t)
                lists[x].weights.append(weights[t * topK + i])
            }
        }
        self.selected = selected
        self.weights = weights
        assignments = lists
    }

    /// The indices of the `k` largest values, by decreasing value; equal values by increasing index.
    static func topK(_ values: [Float], k: Int) -> [Int] {
        var best: [Int] = []
        best.reserveCapacity(k + 1)
        for j in values.indices {
            // Insert j after every kept index whose value is ≥ its own: earlier (lower) indices win ties.
            var position = best.count
            while position > 0, values[best[position - 1]] < values[j] { position -= 1 }
            if position < k {
                best.insert(j, at: position)
                if best.count > k { best.removeLast() }
            }
        }
        return best
    }

    /// Tokens routed to each expert.
    public var tokenCounts: [Int] { assignments.map(\.tokens.count) }

    public static func == (lhs: MoERouting, rhs: MoERouting) -> Bool {
        lhs.expertCount == rhs.expertCount && lhs.topK == rhs.topK && lhs.selected == rhs.selected
            && lhs.weights == rhs.weights
    }
}
