// SPDX-License-Identifier: Apache-2.0
// RadixSelect and StableArgsort against a naive reference: a stable sort of (key, index) pairs.

import Testing

@testable import DSnoTCore

/// The naive reference both fast kernels must reproduce: indices ordered by value (NaN last,
/// `-0.0` equal to `+0.0`), ties by index, as `torch.sort(stable=True)`.
private enum NaiveOrder {
    /// `x` sorts strictly before `y` by value alone: NaN after everything, `-0.0` equal to `+0.0`.
    static func less(_ x: Float, _ y: Float) -> Bool {
        if x.isNaN || y.isNaN { return !x.isNaN && y.isNaN }
        return x < y  // -0.0 == +0.0 here, as in the kernels
    }

    static func argsort(_ values: [Float]) -> [Int] {
        values.indices.sorted { a, b in
            let (x, y) = (values[a], values[b])
            if less(x, y) || less(y, x) { return less(x, y) }
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
            case 3: return 1 + u * 1e-4  // one high-16-bit bin, many low bins
            default: return 0  // replaced below: an adversarial order, not random values
            }
        }
        .enumerated().map { i, v in adversarial(kind, index: i, count: count) ?? v }
    }

    /// Orders that defeat naive pivot choices and tie handling (kinds 4…8): ascending, descending, all
    /// equal, organ pipe, and alternating `±0.0` with a few ones (no NaN).
    static func adversarial(_ kind: Int, index i: Int, count: Int) -> Float? {
        switch kind {
        case 4: return Float(i)
        case 5: return Float(count - i)
        case 6: return 0.25
        case 7: return Float(min(i, count - 1 - i))
        case 8: return i % 7 == 3 ? 1 : (i % 2 == 0 ? 0 : -0.0)
        default: return nil
        }
    }

    static let grid: [(kind: Int, count: Int)] = [
        (0, 1), (0, 7), (0, 1000), (1, 513), (2, 300), (3, 2048), (1, 4096),
        (4, 1000), (5, 1000), (6, 777), (7, 1001), (8, 300), (8, 40),
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

    /// Quickselect on packed `(key, index)` pairs leaves exactly the naive `k` smallest in front.
    @Test(arguments: SelectionCases.grid)
    func quickselectKeepsTheNaiveSmallestSet(kind: Int, count: Int) {
        let values = SelectionCases.values(kind, count: count, seed: UInt64(7 * kind + count))
        let order = NaiveOrder.argsort(values)
        for k in Set([0, 1, count / 3, count / 2, count - 1, count]) {
            var packed = values.enumerated().map { StableArgsort.pack($1, $0) }
            packed.withUnsafeMutableBufferPointer { StableArgsort.select($0.baseAddress!, count: count, k: k) }
            let front = Set(packed.prefix(k).map { Int(StableArgsort.index($0)) })
            #expect(front == Set(order.prefix(k)), "kind \(kind), count \(count), k \(k)")
        }
    }

    /// `sortedPrefix` gives the first `length` entries of the naive stable order, in that order; a
    /// `packDescending` list gives the naive order walked from its end.
    @Test(arguments: SelectionCases.grid)
    func sortedPrefixesWalkTheNaiveOrderFromEitherEnd(kind: Int, count: Int) {
        let values = SelectionCases.values(kind, count: count, seed: UInt64(13 * kind + count))
        let order = NaiveOrder.argsort(values)
        for length in Set([1, 5, count / 2, count, count + 3]) {
            var ascending = values.enumerated().map { StableArgsort.pack($1, $0) }
            var descending = values.enumerated().map { StableArgsort.packDescending($1, $0) }
            let m = ascending.withUnsafeMutableBufferPointer {
                StableArgsort.sortedPrefix($0.baseAddress!, count: count, length: length)
            }
            let n = descending.withUnsafeMutableBufferPointer {
                StableArgsort.sortedPrefix($0.baseAddress!, count: count, length: length)
            }
            #expect(m == min(length, count) && n == m)
            #expect(ascending.prefix(m).map { Int(StableArgsort.index($0)) } == Array(order.prefix(m)))
            let fromEnd = descending.prefix(m).map { Int(StableArgsort.index($0, descending: true)) }
            #expect(fromEnd == Array(order.reversed().prefix(m)), "kind \(kind), count \(count), length \(length)")
        }
    }

    /// SparseGPT's block threshold: everything not above the value at sorted index `index`.
    @Test(arguments: SelectionCases.grid)
    func atMostSortedIndexMarksEverythingNotAboveTheThreshold(kind: Int, count: Int) {
        let values = SelectionCases.values(kind, count: count, seed: UInt64(3 * kind + count))
        let order = NaiveOrder.argsort(values)
        for index in Set([0, count / 2, count - 1, count]) {
            var mask = [UInt8](repeating: 0, count: count)
            values.withUnsafeBufferPointer { v in
                mask.withUnsafeMutableBufferPointer { RadixSelect.markAtMostSortedIndex(v, index: index, into: $0) }
            }
            let expected: [UInt8] =
                index < count
                ? values.map { NaiveOrder.less(values[order[index]], $0) ? 0 : 1 }
                : [UInt8](repeating: 0, count: count)
            #expect(mask == expected, "kind \(kind), count \(count), index \(index)")
        }
    }
}
