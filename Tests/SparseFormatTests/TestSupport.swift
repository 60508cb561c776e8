// SPDX-License-Identifier: Apache-2.0
// Test helpers: file bytes, seeded tensors.

import Foundation
import SafeTensors

@testable import SparseFormat

/// Whole-file reads and writes.
enum Tool {
    static func read(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }
    static func write(_ path: String, _ bytes: [UInt8]) throws { try Data(bytes).write(to: URL(fileURLWithPath: path)) }
}

/// Seeded test tensors in raw little-endian bytes.
struct TensorFactory {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func float() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }

    /// `count` values of `dtype`, roughly N(0, 1/3)-shaped, never `+0`.
    mutating func dense(count: Int, dtype: DType) -> [UInt8] {
        var bytes: [UInt8] = []
        for _ in 0..<count {
            let value = float() * 0.1
            switch dtype {
            case .f32: withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
            case .f16: withUnsafeBytes(of: FloatConversion.f16Bits(value).littleEndian) { bytes += $0 }
            case .bf16: withUnsafeBytes(of: FloatConversion.bf16Bits(value).littleEndian) { bytes += $0 }
            default: preconditionFailure("test factory supports float dtypes")
            }
            if bytes.suffix(dtype.byteWidth).allSatisfy({ $0 == 0 }) { bytes[bytes.count - 1] = 0x3C }
        }
        return bytes
    }

    /// Prunes `bytes` (rows × cols of `width`): unstructured keeps elements with a coin flip
    /// (about half), 2:4 zeroes two random positions of every group of four. Pruned → `+0`.
    /// A few kept values are set to `-0.0` to check the sign survives.
    mutating func prune(_ bytes: [UInt8], rows: Int, cols: Int, width: Int, structure: SparsityStructure) -> [UInt8] {
        var out = bytes
        func zero(_ index: Int) { for b in 0..<width { out[index * width + b] = 0 } }
        switch structure {
        case .unstructured:
            for i in 0..<(rows * cols) where next() & 1 == 0 { zero(i) }
        case .twoFour:
            for group in stride(from: 0, to: rows * cols, by: 4) {
                let first = Int(next() % 4)
                let second = (first + 1 + Int(next() % 3)) % 4
                zero(group + first)
                zero(group + second)
            }
        }
        // A kept -0.0: sign bit only (the most significant byte of a little-endian element).
        for i in stride(from: 7, to: rows * cols, by: 97)
        where out[i * width..<(i + 1) * width].contains(where: { $0 != 0 }) {
            zero(i)
            out[i * width + width - 1] = 0x80
        }
        return out
    }

    /// A fresh rows × cols tensor of `dtype`, pruned by `structure` (`dense`, then `prune`).
    mutating func pruned(rows: Int, cols: Int, dtype: DType, structure: SparsityStructure) -> [UInt8] {
        prune(
            dense(count: rows * cols, dtype: dtype),
            rows: rows,
            cols: cols,
            width: dtype.byteWidth,
            structure: structure
        )
    }
}
