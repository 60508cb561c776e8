// SPDX-License-Identifier: Apache-2.0
// LZ4FrameReader+SafeTensorsHeader: the safetensors header at the start of a shard frame's content.

import SafeTensors

extension LZ4FrameReader {
    /// A safetensors header read from the start of a frame's content.
    struct SafeTensorsHeader {
        var header: Header
        /// The header's JSON bytes, for a later `checkBounds(contentSize:path:)`.
        var json: [UInt8]

        /// Checks the data offsets of every tensor against the frame's content size.
        /// - Throws: `SparseFormatError.safeTensors` naming the tensor that does not fit.
        func checkBounds(contentSize size: Int, path: String) throws {
            _ = try FileIO.safeTensors {
                try json.withUnsafeBytes { try Header.parse(json: $0, dataSize: size - 8 - json.count, file: path) }
            }
        }
    }

    /// Reads and parses the safetensors header (the 8-byte length prefix, then the JSON) at the current
    /// position, the start of the frame's content of `size` bytes.
    ///
    /// - Parameter checkingBounds: whether the tensors' data offsets are checked against `size` now.
    ///   A reader that must report a frame lying about its size as such, not as a safetensors layout
    ///   error, checks them with `checkBounds` once the frame's end is validated.
    /// - Throws: `SparseFormatError` about the frame or the header.
    func readSafeTensorsHeader(contentSize size: Int, path: String, checkingBounds: Bool) throws
        -> SafeTensorsHeader
    {
        let prefix = try readExactly(min(8, size))
        let length = try FileIO.safeTensors {
            try prefix.withUnsafeBytes { try Header.headerLength(prefix: $0, fileSize: size, file: path) }
        }
        let json = try readExactly(length)
        let header = try FileIO.safeTensors {
            try json.withUnsafeBytes {
                try Header.parse(json: $0, dataSize: checkingBounds ? size - 8 - length : nil, file: path)
            }
        }
        return SafeTensorsHeader(header: header, json: json)
    }
}
