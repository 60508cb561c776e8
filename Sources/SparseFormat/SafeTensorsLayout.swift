// SPDX-License-Identifier: Apache-2.0
// SafeTensorsLayout: the header bytes and offsets of a safetensors file whose tensors are streamed later.

import DSnoTSupport
public import SafeTensors

/// The layout of a safetensors file to be written front to back: tensors in the given order,
/// contiguous, after a JSON header padded with spaces to a multiple of 8 bytes (as the reference
/// writer does) and carrying `__metadata__ = {"format": "pt"}` (what `transformers` expects).
///
/// Minimal on purpose: once `SafeTensorsStreamWriter` lands in `SafeTensors`, this can delegate.
public struct SafeTensorsLayout: Sendable, Equatable {
    /// One tensor of the layout.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        public var byteCount: Int
        /// Creates an entry; `byteCount` must equal shape × dtype (checked by `SafeTensorsLayout.init`).
        public init(name: String, dtype: DType, shape: [Int], byteCount: Int) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.byteCount = byteCount
        }
    }

    /// Tensors in data order.
    public let entries: [Entry]
    /// The length prefix and JSON header, ready to write.
    public let headerBytes: [UInt8]
    /// Size of the data section.
    public let dataSize: Int
    /// Size of the whole file.
    public var fileSize: Int { headerBytes.count + dataSize }

    /// Builds the header for `entries` in order.
    /// - Throws: `SparseFormatError.unexpectedTensor` when an entry's byte count disagrees with its
    ///   shape × dtype (or overflows), or a name repeats.
    public init(entries: [Entry], metadata: [String: String] = ["format": "pt"]) throws {
        self.entries = entries
        var json = "{"
        if !metadata.isEmpty {
            let fields = metadata.keys.sorted().map { "\(JSONText.quoted($0)):\(JSONText.quoted(metadata[$0]!))" }
            json += "\"__metadata__\":{" + fields.joined(separator: ",") + "}"
        }
        var offset = 0
        var seen = Set<String>()
        for entry in entries {
            guard seen.insert(entry.name).inserted, entry.name != "__metadata__" else {
                throw SparseFormatError.unexpectedTensor(tensor: entry.name, reason: "appears twice in one file")
            }
            guard TensorInfo.checkedByteCount(shape: entry.shape, dtype: entry.dtype) == entry.byteCount else {
                throw SparseFormatError.unexpectedTensor(
                    tensor: entry.name,
                    reason: "shape \(entry.shape) × \(entry.dtype.rawValue) does not match \(entry.byteCount) bytes"
                )
            }
            if json.count > 1 { json += "," }
            let shape = entry.shape.map(String.init).joined(separator: ",")
            json += "\(JSONText.quoted(entry.name)):{\"dtype\":\"\(entry.dtype.rawValue)\",\"shape\":[\(shape)],"
            json += "\"data_offsets\":[\(offset),\(offset + entry.byteCount)]}"
            offset += entry.byteCount
        }
        json += "}"
        var body = Array(json.utf8)
        while body.count % 8 != 0 { body.append(0x20) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + body.count)
        for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: UInt64(body.count) >> UInt64(8 * i))) }
        bytes += body
        headerBytes = bytes
        dataSize = offset
    }
}
