// SPDX-License-Identifier: Apache-2.0
// The BPE model: vocabulary, merge ranks, byte fallback and the merge loop over one word.

/// A byte-pair-encoding model as in the `tokenizers` package: a word's scalars become initial symbols
/// (unknown scalars go to `<0xAB>` byte tokens or the unknown token), then the adjacent pair with the
/// lowest merge rank is merged, leftmost first, until no pair has a rank.
struct BPEModel: Sendable {
    /// A merge: its rank (position in the merges list) and the id of the merged token.
    struct Merge: Sendable {
        var rank: Int32
        var id: Int32
    }

    let vocabulary: [String: Int32]
    /// Single-scalar tokens, the initial symbols.
    let scalarIDs: [Unicode.Scalar: Int32]
    /// Pair (left id << 32 | right id) → merge.
    let merges: [UInt64: Merge]
    /// `<0xAB>` token ids by byte when byte fallback is on.
    let byteIDs: [Int32?]?
    let unknownID: Int32?
    let fuseUnknown: Bool
    let ignoreMerges: Bool
    /// A scalar before which a word may be cut without changing its encoding: SentencePiece's `▁` when it is
    /// a token, no token contains it right after another scalar, and `ignore_merges` is off. Any merged
    /// symbol spanning such a cut would be a token containing (x, `▁`) with x ≠ `▁`, and none exists.
    let wordBoundary: Unicode.Scalar?

    @inline(__always)
    static func pairKey(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Appends the ids of one pre-tokenized word.
    func encode(word: [Unicode.Scalar], into ids: inout [Int32]) throws(TokenizerError) {
        if ignoreMerges {
            var string = String.UnicodeScalarView()
            string.append(contentsOf: word)
            if let id = vocabulary[String(string)] {
                ids.append(id)
                return
            }
        }
        var symbols = try initialSymbols(word)
        if symbols.count > 1 { mergeAll(&symbols) }
        ids.append(contentsOf: symbols)
    }

    /// The symbols before merging, following `tokenizers`' `merge_word` (including its order quirk:
    /// byte-fallback tokens do not flush a pending unknown token).
    func initialSymbols(_ word: [Unicode.Scalar]) throws(TokenizerError) -> [Int32] {
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.count)
        var pendingUnknown = false
        for (offset, scalar) in word.enumerated() {
            if let id = scalarIDs[scalar] {
                if pendingUnknown, let unknownID {
                    symbols.append(unknownID)
                    pendingUnknown = false
                }
                symbols.append(id)
                continue
            }
            if let byteIDs, let fallback = byteFallbackIDs(scalar, byteIDs) {
                symbols.append(contentsOf: fallback)
                continue
            }
            guard let unknownID else {
                throw .unencodableCharacter(scalar: scalar.value, offset: offset)
            }
            if pendingUnknown && !fuseUnknown { symbols.append(unknownID) }
            pendingUnknown = true
        }
        if pendingUnknown, let unknownID { symbols.append(unknownID) }
        return symbols
    }

    /// The `<0xAB>` ids of the scalar's UTF-8 bytes, or nil if one of them is missing from the vocabulary.
    func byteFallbackIDs(_ scalar: Unicode.Scalar, _ byteIDs: [Int32?]) -> [Int32]? {
        var result: [Int32] = []
        for byte in UTF8.encode(scalar) ?? UTF8.EncodedScalar() {
            guard let id = byteIDs[Int(byte)] else { return nil }
            result.append(id)
        }
        return result
    }

    /// Merges in place: a min-heap of (rank, position) over a doubly linked list of symbols, skipping
    /// stale heap entries, exactly like `tokenizers`' `Word::merge_all` (so ties go to the leftmost pair).
    func mergeAll(_ symbols: inout [Int32]) {
        let count = symbols.count
        var previous = [Int](0..<count).map { $0 - 1 }
        var next = [Int](1...count)
        var alive = [Bool](repeating: true, count: count)
        var heap = MinHeap()
        for position in 0..<(count - 1) {
            if let merge = merges[BPEModel.pairKey(symbols[position], symbols[position + 1])] {
                heap.push(rank: merge.rank, position: position)
            }
        }
        while let (rank, position) = heap.pop() {
            guard alive[position], next[position] < count else { continue }
            let right = next[position]
            guard let merge = merges[BPEModel.pairKey(symbols[position], symbols[right])], merge.rank == rank else {
                continue
            }
            symbols[position] = merge.id
            alive[right] = false
            next[position] = next[right]
            if next[right] < count { previous[next[right]] = position }
            if previous[position] >= 0 {
                let left = previous[position]
                if let leftMerge = merges[BPEModel.pairKey(symbols[left], merge.id)] {
                    heap.push(rank: leftMerge.rank, position: left)
                }
            }
            if next[position] < count, let rightMerge = merges[BPEModel.pairKey(merge.id, symbols[next[position]])] {
                heap.push(rank: rightMerge.rank, position: position)
            }
        }
        var write = 0
        for read in 0..<count where alive[read] {
            symbols[write] = symbols[read]
            write += 1
        }
        symbols.removeLast(count - write)
    }
}

/// A binary min-heap of (rank, position) packed as `rank << 32 | position`, so that ties on rank go to the
/// lowest position.
struct MinHeap {
    private var keys: [UInt64] = []

    mutating func push(rank: Int32, position: Int) {
        keys.append(UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(position))
        var child = keys.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            if keys[parent] <= keys[child] { break }
            keys.swapAt(parent, child)
            child = parent
        }
    }

    mutating func pop() -> (rank: Int32, position: Int)? {
        guard let top = keys.first else { return nil }
        let last = keys.removeLast()
        if !keys.isEmpty {
            keys[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1
                if left >= keys.count { break }
                var smallest = left
                if left + 1 < keys.count, keys[left + 1] < keys[left] { smallest = left + 1 }
                if keys[parent] <= keys[smallest] { break }
                keys.swapAt(parent, smallest)
                parent = smallest
            }
        }
        return (Int32(bitPattern: UInt32(top >> 32)), Int(top & 0xFFFF_FFFF))
    }
}
