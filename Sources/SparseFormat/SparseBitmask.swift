// SPDX-License-Identifier: Apache-2.0
// SparseBitmask: compressed-tensors `sparse-bitmask` packing and validating unpacking of one 2-D tensor.
// Layout reference: neuralmagic/compressed-tensors 0.14 compressors/sparse_compressors/sparse_bitmask.py.
// Shapes: dense (rows, cols); compressed (nnz); bitmask (rows, ceil(cols/8)); row_offsets (rows).

import DSnoTSupport

/// The sparsity layout of an output.
public enum SparsityStructure: String, Sendable, Codable, CaseIterable {
    /// `sparse-bitmask`: any pattern.
    case unstructured
    /// `sparse-24-bitmask`: exactly two stored values in every group of four along a row.
    case twoFour = "2:4"

    /// The compressed-tensors `format` name.
    public var formatName: String {
        switch self {
        case .unstructured: "sparse-bitmask"
        case .twoFour: "sparse-24-bitmask"
        }
    }
}

/// One tensor in packed form: the stored values, their bitmask and (unstructured) row offsets.
public struct PackedSparseTensor: Sendable, Equatable {
    /// Stored values, row-major, raw element bytes of the original dtype.
    public var compressed: [UInt8]
    /// `rows × ceil(cols/8)` bytes; bit j of byte k in a row is column 8k+j (least significant first).
    public var bitmask: [UInt8]
    /// Values stored before each row (unstructured only; empty for 2:4).
    public var rowOffsets: [Int64]
    /// Number of stored values.
    public var storedCount: Int
    /// Number of elements whose bytes are not all zero (for the sparsity figure).
    public var nonZeroCount: Int
}

/// Packing and unpacking of the `sparse-bitmask` layout on raw element bytes.
///
/// **Which values are stored.** An element is stored iff its bytes are not all zero, i.e. iff it
/// is not `+0.0` (compressed-tensors uses `tensor != 0`, which also drops `-0.0`). Keeping `-0.0`
/// makes `unpack --dense` reproduce the dense sink bit for bit: the dense sink writes `+0` for
/// pruned weights, and an unpruned weight that happens to be `-0.0` keeps its sign. Decompressors
/// that only read the bitmask (compressed-tensors' own) restore the same bits.
public enum SparseBitmask {
    /// Bytes per bitmask row for `cols` columns.
    public static func bitmaskRowBytes(cols: Int) -> Int { (cols + 7) / 8 }

    /// Packs a dense row-major tensor. Rows are split over the workers (`Parallel.forEachChunk`) in
    /// two passes: each row's bitmask and count, then, after the row offsets are summed, each row's
    /// values copied to its offset; every chunk writes only its own rows, so the result does not
    /// depend on the split.
    /// - Parameters:
    ///   - dense: `rows × cols × width` bytes.
    ///   - width: element size in bytes (1, 2, 4 or 8).
    public static func pack(dense: UnsafeRawBufferPointer, rows: Int, cols: Int, width: Int) -> PackedSparseTensor {
        precondition(dense.count == rows * cols * width, "SparseBitmask.pack: byte count must be rows × cols × width")
        let rowBytes = bitmaskRowBytes(cols: cols)
        var bitmask = [UInt8](repeating: 0, count: rows * rowBytes)
        var counts = [Int](repeating: 0, count: rows)
        bitmask.withUnsafeMutableBufferPointer { bits in
            counts.withUnsafeMutableBufferPointer { counts in
                Parallel.forEachChunk(0..<rows, units: rows * cols) { chunk in
                    for row in chunk {
                        let source = dense.baseAddress! + row * cols * width
                        let mask = bits.baseAddress! + row * rowBytes
                        counts[row] =
                            switch width {
                            case 2: maskRow(source, cols: cols, into: mask, as: UInt16.self)
                            case 4: maskRow(source, cols: cols, into: mask, as: UInt32.self)
                            case 8: maskRow(source, cols: cols, into: mask, as: UInt64.self)
                            default: maskRow(source, cols: cols, into: mask, as: UInt8.self)
                            }
                    }
                }
            }
        }
        var rowOffsets = [Int64](repeating: 0, count: rows)
        var stored = 0
        for row in 0..<rows {
            rowOffsets[row] = Int64(stored)
            stored += counts[row]
        }
        var compressed = [UInt8](repeating: 0, count: stored * width)
        compressed.withUnsafeMutableBytes { out in
            bitmask.withUnsafeBufferPointer { bits in
                rowOffsets.withUnsafeBufferPointer { offsets in
                    Parallel.forEachChunk(0..<rows, units: rows * cols) { chunk in
                        for row in chunk {
                            var target = Int(offsets[row])
                            for byte in 0..<rowBytes {
                                var mask = bits[row * rowBytes + byte]
                                while mask != 0 {
                                    let col = byte * 8 + mask.trailingZeroBitCount
                                    ElementBytes.copy(
                                        from: dense,
                                        index: row * cols + col,
                                        to: out,
                                        index: target,
                                        width: width
                                    )
                                    target += 1
                                    mask &= mask &- 1
                                }
                            }
                        }
                    }
                }
            }
        }
        return PackedSparseTensor(
            compressed: compressed,
            bitmask: bitmask,
            rowOffsets: rowOffsets,
            storedCount: stored,
            nonZeroCount: stored
        )
    }

    /// Sets the bitmask bits of one row of `cols` elements of type `T` (bit j of byte k: element
    /// 8k+j is not all zero bytes) and returns how many are set. Eight elements per bitmask byte,
    /// without branches, so the compiler can vectorise it.
    @inline(__always)
    static func maskRow<T: FixedWidthInteger>(
        _ source: UnsafeRawPointer,
        cols: Int,
        into mask: UnsafeMutablePointer<UInt8>,
        as _: T.Type
    ) -> Int {
        let width = MemoryLayout<T>.size
        var count = 0
        for k in 0..<(cols + 7) / 8 {
            var byte: UInt8 = 0
            for j in 0..<min(8, cols - 8 * k) {
                let value = source.loadUnaligned(fromByteOffset: (8 * k + j) * width, as: T.self)
                byte |= (value != 0 ? 1 : 0) << UInt8(j)
            }
            mask[k] = byte
            count += byte.nonzeroBitCount
        }
        return count
    }

    /// Validates a packed tensor and expands it into `dense`, row-major, which must hold exactly
    /// `rows × cols × width` bytes; every byte of it is written (zeros where the bitmask is clear), so it
    /// may come uninitialised or hold a previous tensor. On a throw nothing was written.
    /// - Parameters:
    ///   - rowOffsets: the `.row_offsets` values, or `nil` when the layout has none (2:4).
    ///   - file, tensor: names for error messages.
    /// - Throws: `SparseFormatError.invalidSparseTensor` (sizes, the buffer's among them),
    ///   `.popcountMismatch`, `.rowOffsetsInconsistent`.
    public static func unpack(
        compressed: UnsafeRawBufferPointer,
        bitmask: UnsafeRawBufferPointer,
        rowOffsets: [Int64]?,
        rows: Int,
        cols: Int,
        width: Int,
        into dense: UnsafeMutableRawBufferPointer,
        file: String,
        tensor: String
    ) throws {
        guard dense.count == rows * cols * width else {
            throw SparseFormatError.invalidSparseTensor(
                file: file,
                tensor: tensor,
                reason: "dense buffer has \(dense.count) bytes, [\(rows), \(cols)] needs \(rows * cols * width)"
            )
        }
        let rowBytes = bitmaskRowBytes(cols: cols)
        guard bitmask.count == rows * rowBytes else {
            throw SparseFormatError.invalidSparseTensor(
                file: file,
                tensor: tensor,
                reason: "bitmask has \(bitmask.count) bytes, [\(rows), \(cols)] needs \(rows * rowBytes)"
            )
        }
        let storedCount = compressed.count / width
        let rowCounts = try countBits(bitmask, rows: rows, cols: cols, file: file, tensor: tensor)
        let total = rowCounts.reduce(0, +)
        guard total == storedCount else {
            throw SparseFormatError.popcountMismatch(
                file: file,
                tensor: tensor,
                bitmaskCount: total,
                compressedCount: storedCount
            )
        }
        if let rowOffsets {
            guard rowOffsets.count == rows else {
                throw SparseFormatError.invalidSparseTensor(
                    file: file,
                    tensor: tensor,
                    reason: "row_offsets has \(rowOffsets.count) entries, expected \(rows)"
                )
            }
            var running = 0
            for row in 0..<rows {
                guard rowOffsets[row] == Int64(running) else {
                    throw SparseFormatError.rowOffsetsInconsistent(
                        file: file,
                        tensor: tensor,
                        row: row,
                        expected: running,
                        found: Int(rowOffsets[row])
                    )
                }
                running += rowCounts[row]
            }
        }
        var starts = [Int](repeating: 0, count: rows)
        var running = 0
        for row in 0..<rows {
            starts[row] = running
            running += rowCounts[row]
        }
        guard rows * cols > 0, let base = dense.baseAddress else { return }
        starts.withUnsafeBufferPointer { starts in
            rowCounts.withUnsafeBufferPointer { counts in
                let expansion = RowExpansion(
                    mask: bitmask.baseAddress!,
                    rowBytes: rowBytes,
                    values: compressed.baseAddress,
                    starts: starts,
                    counts: counts,
                    cols: cols,
                    dense: base
                )
                // Rows split over the workers, each writing only its own rows (padding bits were
                // rejected by countBits, so every set bit is a column < cols).
                Parallel.forEachChunk(0..<rows, units: rows * cols) { chunk in
                    switch width {
                    case 2: expansion.expand(chunk, as: UInt16.self)
                    case 4: expansion.expand(chunk, as: UInt32.self)
                    case 8: expansion.expand(chunk, as: UInt64.self)
                    default: expansion.expand(chunk, as: UInt8.self)
                    }
                }
            }
        }
    }

    /// The rows of one validated tensor being expanded: bitmask rows, stored values with each row's
    /// first index and count, and the dense rows they become.
    struct RowExpansion {
        let mask: UnsafeRawPointer
        let rowBytes: Int
        /// The stored values (`nil` when there are none).
        let values: UnsafeRawPointer?
        let starts: UnsafeBufferPointer<Int>
        let counts: UnsafeBufferPointer<Int>
        let cols: Int
        let dense: UnsafeMutableRawPointer

        /// Writes rows `chunk` as elements of type `T`, the inverse of `maskRow`: element 8k+j of a
        /// row is its next stored value when bit j of byte k is set, else zero. Without branches on
        /// the bits: every element is written, its value read at the row's running index (clamped to
        /// the row's last stored value) and masked to zero when its bit is clear, the index advanced
        /// by the bit. Visiting only the set bits instead costs a mispredicted branch per mask byte:
        /// at 50 % it took twice as long.
        @inline(__always)
        func expand<T: FixedWidthInteger>(_ chunk: Range<Int>, as _: T.Type) {
            let width = MemoryLayout<T>.size
            for row in chunk {
                let target = dense + row * cols * width
                guard counts[row] > 0, let values else {
                    target.initializeMemory(as: UInt8.self, repeating: 0, count: cols * width)
                    continue
                }
                let mask = mask + row * rowBytes
                let last = starts[row] + counts[row] - 1
                var next = starts[row]
                @inline(__always) func element(_ col: Int, bit: UInt8) {
                    let value = values.loadUnaligned(fromByteOffset: min(next, last) &* width, as: T.self)
                    target.storeBytes(
                        of: value & (0 &- T(truncatingIfNeeded: bit)),
                        toByteOffset: col &* width,
                        as: T.self
                    )
                    next &+= Int(truncatingIfNeeded: bit)
                }
                let whole = cols / 8
                for k in 0..<whole {
                    let byte = mask.load(fromByteOffset: k, as: UInt8.self)
                    for j in 0..<8 { element(8 &* k &+ j, bit: (byte >> UInt8(j)) & 1) }
                }
                if whole * 8 < cols {
                    let byte = mask.load(fromByteOffset: whole, as: UInt8.self)
                    for j in 0..<(cols - whole * 8) { element(8 &* whole &+ j, bit: (byte >> UInt8(j)) & 1) }
                }
            }
        }
    }

    /// Per-row popcounts, rejecting set padding bits past `cols`.
    static func countBits(
        _ bitmask: UnsafeRawBufferPointer,
        rows: Int,
        cols: Int,
        file: String,
        tensor: String
    ) throws -> [Int] {
        let rowBytes = bitmaskRowBytes(cols: cols)
        let tailBits = cols % 8
        let tailMask: UInt8 = tailBits == 0 ? 0 : ~((UInt8(1) << UInt8(tailBits)) - 1)
        var counts = [Int](repeating: 0, count: rows)
        for row in 0..<rows {
            // Eight mask bytes at a time, then the rest.
            var count = 0
            var k = 0
            while k + 8 <= rowBytes {
                count += bitmask.loadUnaligned(fromByteOffset: row * rowBytes + k, as: UInt64.self).nonzeroBitCount
                k += 8
            }
            while k < rowBytes {
                count += bitmask[row * rowBytes + k].nonzeroBitCount
                k += 1
            }
            if tailBits != 0 && bitmask[row * rowBytes + rowBytes - 1] & tailMask != 0 {
                throw SparseFormatError.invalidSparseTensor(
                    file: file,
                    tensor: tensor,
                    reason: "row \(row) sets bitmask padding bits past column \(cols)"
                )
            }
            counts[row] = count
        }
        return counts
    }
}

/// Raw element access by byte width, without interpreting the value.
enum ElementBytes {
    @inline(__always)
    static func isNonZero(_ buffer: UnsafeRawBufferPointer, index: Int, width: Int) -> Bool {
        switch width {
        case 2: buffer.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self) != 0
        case 4: buffer.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self) != 0
        case 8: buffer.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self) != 0
        default: buffer[index] != 0
        }
    }

    @inline(__always)
    static func copy(
        from source: UnsafeRawBufferPointer,
        index: Int,
        to destination: UnsafeMutableRawBufferPointer,
        index target: Int,
        width: Int
    ) {
        switch width {
        case 2:
            destination.storeBytes(
                of: source.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self),
                toByteOffset: target * 2,
                as: UInt16.self
            )
        case 4:
            destination.storeBytes(
                of: source.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self),
                toByteOffset: target * 4,
                as: UInt32.self
            )
        case 8:
            destination.storeBytes(
                of: source.loadUnaligned(fromByteOffset: index * 8, as: UInt64.self),
                toByteOffset: target * 8,
                as: UInt64.self
            )
        default:
            destination[target] = source[index]
        }
    }
}
