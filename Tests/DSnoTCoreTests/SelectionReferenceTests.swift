// SPDX-License-Identifier: Apache-2.0
// RadixSelect and StableArgsort against a naive reference: a stable sort of (key, index) pairs.

import Testing

@testable import DSnoTCore

/// The naive reference both fast kernels must reproduce: indices ordered by value (NaN last,
/// `-0.0` equal to `+0.0`), ties by index, as `torch.sort(stable=True)`.
private enum NaiveOrder {
    static func argsort(_ values: [Float]) -> [Int] {
        values.indices.sorted { a, b in
            let (x, y) = (values[a], values[b])
            if x.isNaN || y.isNaN {
                if x.isNaN != y.isNaN { return y.isNaN }
                return a < b
            }
            if x != y { return x < y }  // -0.0 == +0.0 here, as in the kernels
            return a < b
        }
    }

    /// The mask of the `k` first entries of the stable order.
    static func smallest(_ values: [Float], count k: Int) -> [UInt8] {
        var mask = [UInt8](repeating: 0, count: values.count)
        for i in argsort(values).prefix(k) { mask[i] = 1 }
        return mask
    }
}

/// Value sets chosen to stress the kernels: ties, signed zeros, NaN, infinities, subnormals, and
/// values sharing their high 16 bits (RadixSelect's second pass).
private enum SelectionCases {
    static func values(_ kind: Int, count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            let u = Float(rng.next() >> 40) / Float(1 << 24)
            switch kind {
            case 0: return u * 2 - 1  // distinct-ish uniform
            case 1: return Float(Int(u * 5)) - 2  // heavy ties in {-2…2}
            case 2:  // signed zeros, NaN, ±inf, subnormals
                let specials: [Float] = [0, -0.0, .nan, .infinity, -.infinity, .leastNonzeroMagnitude, -1e-40]
                return specials[Int(u * Float(specials.count)) % specials.count]
            default: return 1 + u * 1e-4  // one high-16-bit bin, many low bins
            }
        }
    }

    static let grid: [(kind: Int, count: Int)] = [
        (0, 1), (0, 7), (0, 1000), (1, 513), (2, 300), (3, 2048), (1, 4096),
    ]
}

@Suite struct SelectionReferenceTests {
    @Test(arguments: SelectionCases.grid)
    func stableArgsortMatchesTheNaiveStableSort(kind: Int, count: Int) {
        let values = SelectionCases.values(kind, count: count, seed: UInt64(31 * kind + count))
        #expect(StableArgsort.argsort(values).map(Int.init) == NaiveOrder.argsort(values))
    }

    @Test(arguments: SelectionCases.grid)
    func radixSelectMarksTheNaiveSmallestForEveryK(kind: Int, count: Int) {
        let values = SelectionCases.values(kind, count: count, seed: UInt64(17 * kind + count))
        // Every k for small inputs; a spread of k (edges included) for the larger ones.
        let ks = count <= 64 ? Array(0...count) : [0, 1, count / 3, count / 2, count - 1, count]
        for k in ks {
            var mask = [UInt8](repeating: 0, count: count)
            values.withUnsafeBufferPointer { v in
                mask.withUnsafeMutableBufferPointer { RadixSelect.markSmallest(v, count: k, into: $0) }
            }
            #expect(mask == NaiveOrder.smallest(values, count: k), "kind \(kind), count \(count), k \(k)")
        }
    }

    @Test(arguments: SelectionCases.grid)
    func kthSmallestKeyIsTheKeyAtRankK(kind: Int, count: Int) {
        let values = SelectionCases.values(kind, count: count, seed: UInt64(5 * kind + count))
        let order = NaiveOrder.argsort(values)
        for k in Set([0, count / 2, count - 1]) {
            let key = values.withUnsafeBufferPointer { RadixSelect.kthSmallestKey($0, k: k) }
            #expect(key == StableArgsort.orderedBits(values[order[k]]), "kind \(kind), count \(count), k \(k)")
        }
    }
}
