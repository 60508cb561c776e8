// SPDX-License-Identifier: Apache-2.0
// sparse-bitmask and sparse-24-bitmask packing: exact layout, bit-exact round trips, rejected inconsistencies.

import SafeTensors
import Testing

@testable import SparseFormat

@Suite struct SparseBitmaskTests {
    /// What `unpack(…into:)` writes into a fresh buffer of `count` bytes (filled with 0xA5 first, so a
    /// byte left unwritten shows).
    static func unpacked(count: Int, _ unpack: (UnsafeMutableRawBufferPointer) throws -> Void) rethrows -> [UInt8] {
        var out = [UInt8](repeating: 0xA5, count: count)
        try out.withUnsafeMutableBytes { try unpack($0) }
        return out
    }

    /// `dense` packed in `structure`'s layout.
    static func pack(_ dense: [UInt8], _ structure: SparsityStructure, rows: Int, cols: Int, width: Int) throws
        -> PackedSparseTensor
    {
        try dense.withUnsafeBytes { raw in
            switch structure {
            case .unstructured: SparseBitmask.pack(dense: raw, rows: rows, cols: cols, width: width)
            case .twoFour: try Sparse24Bitmask.pack(dense: raw, rows: rows, cols: cols, width: width, tensor: "w")
            }
        }
    }

    /// `packed` expanded into `out` by `structure`'s unpacker, with `bitmask` in place of its own if given.
    static func unpack(
        _ packed: PackedSparseTensor,
        _ structure: SparsityStructure,
        bitmask: [UInt8]? = nil,
        rows: Int,
        cols: Int,
        width: Int,
        into out: UnsafeMutableRawBufferPointer
    ) throws {
        try packed.compressed.withUnsafeBytes { c in
            try (bitmask ?? packed.bitmask).withUnsafeBytes { b in
                switch structure {
                case .unstructured:
                    try SparseBitmask.unpack(
                        compressed: c,
                        bitmask: b,
                        rowOffsets: packed.rowOffsets,
                        rows: rows,
                        cols: cols,
                        width: width,
                        into: out,
                        file: "t",
                        tensor: "w"
                    )
                case .twoFour:
                    try Sparse24Bitmask.unpack(
                        compressed: c,
                        bitmask: b,
                        rows: rows,
                        cols: cols,
                        width: width,
                        into: out,
                        file: "t",
                        tensor: "w"
                    )
                }
            }
        }
    }

    /// numpy.packbits(bitorder="little") per row, as compressed-tensors' `pack_bitmasks` does.
    @Test func bitmaskIsLeastSignificantBitFirstAndPaddedPerRow() {
        // 2 × 9 U8 values (width 1): row 0 keeps columns 0, 2, 8; row 1 keeps column 7.
        let dense: [UInt8] = [5, 0, 6, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9, 0]
        let packed = dense.withUnsafeBytes { SparseBitmask.pack(dense: $0, rows: 2, cols: 9, width: 1) }
        #expect(packed.bitmask == [0b0000_0101, 0b0000_0001, 0b1000_0000, 0b0000_0000])
        #expect(packed.compressed == [5, 6, 7, 9])
        #expect(packed.rowOffsets == [0, 3])
        #expect(packed.storedCount == 4)
    }

    @Test(arguments: [DType.f32, .f16, .bf16], [SparsityStructure.unstructured, .twoFour])
    func packThenUnpackIsBitExact(dtype: DType, structure: SparsityStructure) throws {
        var factory = TensorFactory(seed: 42)
        let (rows, cols) = (13, 36)
        let dense = factory.pruned(rows: rows, cols: cols, dtype: dtype, structure: structure)
        let width = dtype.byteWidth
        let packed = try Self.pack(dense, structure, rows: rows, cols: cols, width: width)
        if structure == .twoFour { #expect(packed.storedCount == rows * cols / 2) }
        let restored = try Self.unpacked(count: dense.count) {
            try Self.unpack(packed, structure, rows: rows, cols: cols, width: width, into: $0)
        }
        #expect(restored == dense)
    }

    /// The unpacker visits every element without branching on the bits: rows with no value, every
    /// value, only the last column, any column count around a byte, every element width.
    @Test(arguments: [1, 2, 4, 8], [1, 7, 8, 9, 17, 64])
    func unpackRestoresEveryWidthAndRowPattern(width: Int, cols: Int) throws {
        var factory = TensorFactory(seed: UInt64(width * 100 + cols))
        let rows = 5
        var dense = [UInt8](repeating: 0, count: rows * cols * width)
        for row in 0..<rows {
            for col in 0..<cols {
                let kept =
                    switch row {
                    case 0: false  // empty row
                    case 1: true  // full row
                    case 2: col == cols - 1  // only the last column
                    default: factory.next() % 3 != 0
                    }
                guard kept else { continue }
                for byte in 0..<width {
                    // Never all zero bytes: a kept value is stored.
                    dense[(row * cols + col) * width + byte] =
                        byte == 0 ? UInt8(1 + factory.next() % 255) : UInt8(truncatingIfNeeded: factory.next())
                }
            }
        }
        let packed = dense.withUnsafeBytes { SparseBitmask.pack(dense: $0, rows: rows, cols: cols, width: width) }
        let restored = try Self.unpacked(count: dense.count) {
            try Self.unpack(packed, .unstructured, rows: rows, cols: cols, width: width, into: $0)
        }
        #expect(restored == dense)
    }

    /// An unpruned weight that is exactly -0.0 is stored (its bits are not all zero), so its sign
    /// survives; +0.0 is not stored and comes back as +0.0.
    @Test func negativeZeroIsStoredAndPositiveZeroIsNot() throws {
        let values: [UInt16] = [0x8000, 0x0000, 0x3F80, 0x0000]  // bf16: -0, +0, 1, +0
        let bytes = values.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] }
        let packed = bytes.withUnsafeBytes { SparseBitmask.pack(dense: $0, rows: 1, cols: 4, width: 2) }
        #expect(packed.bitmask == [0b0101])
        #expect(packed.compressed == [0x00, 0x80, 0x80, 0x3F])
    }

    @Test func twoFourPadsSparseGroupsAndRejectsDenseOnes() throws {
        let padded: [UInt8] = [0, 0, 0, 4, 0, 0, 0, 0]  // groups: one non-zero, none
        let packed = try padded.withUnsafeBytes {
            try Sparse24Bitmask.pack(dense: $0, rows: 1, cols: 8, width: 1, tensor: "w")
        }
        #expect(packed.bitmask == [0b0011_1001])  // group 0 keeps columns 0 and 3, group 1 columns 4 and 5
        #expect(packed.compressed == [0, 4, 0, 0])
        #expect(packed.nonZeroCount == 1)
        let dense: [UInt8] = [1, 2, 3, 0]
        #expect(throws: SparseFormatError.notTwoFour(tensor: "w", row: 0, column: 0, nonZeros: 3)) {
            _ = try dense.withUnsafeBytes {
                try Sparse24Bitmask.pack(dense: $0, rows: 1, cols: 4, width: 1, tensor: "w")
            }
        }
    }

    enum Inconsistency: CaseIterable {
        case extraBit, missingBit, rowOffsetShifted, rowOffsetsShort, paddingBit, bitmaskTooShort
    }

    @Test(arguments: Inconsistency.allCases)
    func unpackRejectsInconsistentGroups(_ kind: Inconsistency) {
        // 2 × 4 U8: row 0 keeps columns 0, 1; row 1 keeps column 3.
        var compressed: [UInt8] = [1, 2, 3]
        var bitmask: [UInt8] = [0b0011, 0b1000]
        var offsets: [Int64] = [0, 2]
        var cols = 4
        switch kind {
        case .extraBit: bitmask[1] |= 0b0001
        case .missingBit: compressed.append(4)
        case .rowOffsetShifted: offsets[1] = 1
        case .rowOffsetsShort: offsets = [0]
        case .paddingBit:
            cols = 3
            bitmask = [0b0011, 0b1000]
        case .bitmaskTooShort: bitmask = [0b0011]
        }
        do {
            _ = try compressed.withUnsafeBytes { c in
                try bitmask.withUnsafeBytes { b in
                    try Self.unpacked(count: 2 * cols) {
                        try SparseBitmask.unpack(
                            compressed: c,
                            bitmask: b,
                            rowOffsets: offsets,
                            rows: 2,
                            cols: cols,
                            width: 1,
                            into: $0,
                            file: "f",
                            tensor: "w"
                        )
                    }
                }
            }
            Issue.record("\(kind) was accepted")
        } catch let error as SparseFormatError {
            switch (kind, error) {
            case (.extraBit, .popcountMismatch(_, _, 4, 3)), (.missingBit, .popcountMismatch(_, _, 3, 4)): break
            case (.rowOffsetShifted, .rowOffsetsInconsistent(_, _, 1, 2, 1)): break
            case (.rowOffsetsShort, .invalidSparseTensor), (.paddingBit, .invalidSparseTensor): break
            case (.bitmaskTooShort, .invalidSparseTensor): break
            default: Issue.record("\(kind): unexpected \(error)")
            }
        } catch {
            Issue.record("\(kind): unexpected \(error)")
        }
    }

    /// A 2:4 group without exactly two bits is named, wherever it lies: in the 64-column words the
    /// check takes at once, or in the columns after the last whole word.
    @Test(arguments: [0, 60, 100, 132])
    func twoFourUnpackNamesTheGroupWithoutTwoValues(column: Int) throws {
        var factory = TensorFactory(seed: 7)
        let (rows, cols, width) = (2, 136, 2)
        let dense = factory.pruned(rows: rows, cols: cols, dtype: .bf16, structure: .twoFour)
        var packed = try Self.pack(dense, .twoFour, rows: rows, cols: cols, width: width)
        let rowBytes = SparseBitmask.bitmaskRowBytes(cols: cols)
        packed.bitmask[rowBytes + column / 8] |= 0xF << UInt8(column % 8)  // row 1: all four kept
        #expect {
            try Self.unpacked(count: dense.count) {
                try Self.unpack(packed, .twoFour, rows: rows, cols: cols, width: width, into: $0)
            }
        } throws: { error in
            "\(error)".contains("row 1, columns \(column)..<\(column + 4) select 4 values")
        }
    }

    /// The unpacker reuses one buffer from tensor to tensor: every byte is written (zeros included),
    /// whatever the buffer held, and a buffer of the wrong size or a rejected tensor leaves it untouched.
    @Test(arguments: [SparsityStructure.unstructured, .twoFour])
    func unpackIntoReusedBufferOverwritesEveryByte(structure: SparsityStructure) throws {
        var factory = TensorFactory(seed: 7)
        let (rows, cols, width) = (9, 40, 2)
        let dense = factory.pruned(rows: rows, cols: cols, dtype: .bf16, structure: structure)
        let packed = try Self.pack(dense, structure, rows: rows, cols: cols, width: width)
        func unpack(into buffer: inout [UInt8], bitmask: [UInt8]) throws {
            try buffer.withUnsafeMutableBytes {
                try Self.unpack(packed, structure, bitmask: bitmask, rows: rows, cols: cols, width: width, into: $0)
            }
        }
        var reused = [UInt8](repeating: 0xA5, count: dense.count)
        try unpack(into: &reused, bitmask: packed.bitmask)
        #expect(reused == dense)

        var short = [UInt8](repeating: 0xA5, count: dense.count - width)
        #expect(throws: SparseFormatError.self) { try unpack(into: &short, bitmask: packed.bitmask) }
        #expect(short.allSatisfy { $0 == 0xA5 })

        var corrupt = packed.bitmask
        corrupt[corrupt.count - 1] ^= 0b1000_0000  // one bit more or less in the last row
        var untouched = [UInt8](repeating: 0xA5, count: dense.count)
        #expect(throws: SparseFormatError.self) { try unpack(into: &untouched, bitmask: corrupt) }
        #expect(untouched.allSatisfy { $0 == 0xA5 })
    }
}
