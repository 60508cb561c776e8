// SPDX-License-Identifier: Apache-2.0
// GPT-2's reversible byte ↔ printable-scalar table used by ByteLevel pre-tokenizers and decoders.

/// The GPT-2 `bytes_to_unicode` table: printable Latin-1 bytes map to themselves, the other 68 bytes to
/// U+0100 onwards in byte order, so that every byte string becomes a string without spaces or controls.
enum ByteLevel {
    /// Scalar for each byte value.
    static let scalarForByte: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (33...126).contains(byte) || (161...172).contains(byte) || (174...255).contains(byte)
            let value = printable ? UInt32(byte) : next
            if !printable { next += 1 }
            table[byte] = Unicode.Scalar(value) ?? " "
        }
        return table
    }()

    /// Byte for each table scalar (U+0000 … U+0143), or nil for scalars outside the table.
    static let byteForScalar: [UInt8?] = {
        var table = [UInt8?](repeating: nil, count: 324)
        for (byte, scalar) in scalarForByte.enumerated() { table[Int(scalar.value)] = UInt8(byte) }
        return table
    }()

    /// Maps the UTF-8 bytes of `scalars` to table scalars.
    static func encode(_ scalars: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(scalars.count + 4)
        for scalar in scalars {
            if scalar.value < 128 {
                result.append(scalarForByte[Int(scalar.value)])
            } else {
                for byte in UTF8.encode(scalar) ?? UTF8.EncodedScalar() { result.append(scalarForByte[Int(byte)]) }
            }
        }
        return result
    }

    /// The bytes of a token made only of table scalars, or nil if any scalar is outside the table.
    static func decode(_ token: String) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(token.unicodeScalars.count)
        for scalar in token.unicodeScalars {
            guard scalar.value < byteForScalar.count, let byte = byteForScalar[Int(scalar.value)] else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}
