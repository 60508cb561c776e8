// SPDX-License-Identifier: Apache-2.0
// Sparse24Bitmask: compressed-tensors `sparse-24-bitmask` packing and validating unpacking of one 2-D tensor.
// Layout reference: neuralmagic/compressed-tensors 0.14 compressors/sparse_compressors/sparse_24_bitmask.py.
// Shapes: dense (rows, cols), cols % 4 == 0; shape int64 (2, 1); compressed (rows, cols/2);
// bitmask uint8 (rows, ceil(cols/8)), exactly two bits set per group of four columns.

import DSnoTSupport

/// Packing and unpacking of the 2:4 layout on raw element bytes.
///
/// Every group of four columns stores exactly two values. A group with fewer than two non-zeros
/// (a weight that was already `+0.0`) also stores the first zero positions, so the layout stays
/// exactly 2:4 and the dense bytes are restored unchanged. More than two non-zeros is an error.
public enum Sparse24Bitmask {
    /// Packs a dense row-major tensor.
    /// - Throws: `SparseFormatError.notTwoFour` when a group holds more than two non-zeros, or
    ///   `.unexpectedTensor` when `cols` is not a multiple of 4.
    public static func pack(
        dense: UnsafeRawBufferPointer,
        rows: Int,
        cols: Int,
        width: Int,
        tensor: String
    ) throws -> PackedSparseTensor {
        precondition(dense.count == rows * cols * width, "Sparse24Bitmask.pack: byte count must be rows × cols × width")
        guard cols % 4 == 0 else {
            throw SparseFormatError.unexpectedTensor(tensor: tensor, reason: "2:4 needs cols % 4 == 0, got \(cols)")
        }
        let rowBytes = SparseBitmask.bitmaskRowBytes(cols: cols)
        var bitmask = [UInt8](repeating: 0, count: rows * rowBytes)
        var compressed = [UInt8](repeating: 0, count: dense.count / 2)
        // Per row: its non-zero count, or the first group with more than two (column, count).
        var nonZeros = [Int](repeating: 0, count: rows)
        var failures = [(column: Int, count: Int)?](repeating: nil, count: rows)
        compressed.withUnsafeMutableBytes { out in
            bitmask.withUnsafeMutableBufferPointer { bits in
                nonZeros.withUnsafeMutableBufferPointer { nonZeros in
                    failures.withUnsafeMutableBufferPointer { failures in
                        // Rows split over the workers: row r's values go to r × cols/2, so every chunk
                        // writes only its own rows.
                        Parallel.forEachChunk(0..<rows, units: rows * cols) { chunk in
                            for row in chunk {
                                var stored = row * cols / 2
                                var nonZero = 0
                                for group in stride(from: 0, to: cols, by: 4) {
                                    let base = row * cols + group
                                    var keep: UInt8 = 0
                                    var count = 0
                                    for j in 0..<4 where ElementBytes.isNonZero(dense, index: base + j, width: width) {
                                        keep |= 1 << UInt8(j)
                                        count += 1
                                    }
                                    guard count <= 2 else {
                                        failures[row] = (group, count)
                                        break
                                    }
                                    nonZero += count
                                    // Pad with the first zero positions up to exactly two stored values.
                                    var j = 0
                                    while count < 2 {
                                        if keep & (1 << UInt8(j)) == 0 {
                                            keep |= 1 << UInt8(j)
                                            count += 1
                                        }
                                        j += 1
                                    }
                                    for j in 0..<4 where keep & (1 << UInt8(j)) != 0 {
                                        ElementBytes.copy(
                                            from: dense,
                                            index: base + j,
                                            to: out,
                                            index: stored,
                                            width: width
                                        )
                                        stored += 1
                                    }
                                    bits[row * rowBytes + group >> 3] |= keep << UInt8(group & 7)
                                }
                                nonZeros[row] = nonZero
                            }
                        }
                    }
                }
            }
        }
        if let row = failures.firstIndex(where: { $0 != nil }), let failure = failures[row] {
            throw SparseFormatError.notTwoFour(
                tensor: tensor,
                row: row,
                column: failure.column,
                nonZeros: failure.count
            )
        }
        let stored = rows * cols / 2
        let nonZero = nonZeros.reduce(0, +)
        return PackedSparseTensor(
            compressed: compressed,
            bitmask: bitmask,
            rowOffsets: [],
            storedCount: stored,
            nonZeroCount: nonZero
        )
    }

    /// Validates a 2:4 packed tensor and expands it into `dense` (exactly `rows × cols × width`
    /// bytes, every one written; see `SparseBitmask.unpack(…into:…)`).
    /// - Throws: `SparseFormatError.invalidSparseTensor` (a group without exactly two bits, bad
    ///   sizes) or `.popcountMismatch`.
    public static func unpack(
        compressed: UnsafeRawBufferPointer,
        bitmask: UnsafeRawBufferPointer,
        rows: Int,
        cols: Int,
        width: Int,
        into dense: UnsafeMutableRawBufferPointer,
        file: String,
        tensor: String
    ) throws {
        guard cols % 4 == 0 else {
            throw SparseFormatError.invalidSparseTensor(
                file: file,
                tensor: tensor,
                reason: "2:4 layout needs cols % 4 == 0, shape says \(cols)"
            )
        }
        let rowBytes = SparseBitmask.bitmaskRowBytes(cols: cols)
        if bitmask.count == rows * rowBytes {
            for row in 0..<rows {
                // 64 columns (16 groups) at a time while every nibble holds two bits; the first word
                // that does not is checked group by group below, which names the group.
                var checked = 0
                while checked + 64 <= cols {
                    let word = bitmask.loadUnaligned(fromByteOffset: row * rowBytes + checked / 8, as: UInt64.self)
                    guard Self.nibbleCounts(UInt64(littleEndian: word)) == 0x2222_2222_2222_2222 else { break }
                    checked += 64
                }
                for group in stride(from: checked, to: cols, by: 4) {
                    let nibble = (bitmask[row * rowBytes + group >> 3] >> UInt8(group & 7)) & 0xF
                    guard nibble.nonzeroBitCount == 2 else {
                        throw SparseFormatError.invalidSparseTensor(
                            file: file,
                            tensor: tensor,
                            reason:
                                "row \(row), columns \(group)..<\(group + 4) select \(nibble.nonzeroBitCount) values, 2:4 needs 2"
                        )
                    }
                }
            }
        }
        try SparseBitmask.unpack(
            compressed: compressed,
            bitmask: bitmask,
            rowOffsets: nil,
            rows: rows,
            cols: cols,
            width: width,
            into: dense,
            file: file,
            tensor: tensor
        )
    }

    /// The number of set bits in each 4-bit nibble of `word`, one count per nibble.
    @inline(__always)
    static func nibbleCounts(_ word: UInt64) -> UInt64 {
        let pairs = word &- ((word >> 1) & 0x5555_5555_5555_5555)
        return (pairs & 0x3333_3333_3333_3333) &+ ((pairs >> 2) & 0x3333_3333_3333_3333)
    }
}
