// SPDX-License-Identifier: Apache-2.0
// ByteSink: where a streaming writer sends its bytes (a file, an LZ4 frame, a hash, memory).

/// A destination for a stream of bytes, written front to back.
///
/// `SafeTensorsStreamWriter` writes a safetensors file into any sink, so the same code produces a
/// plain file, an LZ4 frame (SparseFormat) or an in-memory buffer (tests).
public protocol ByteSink {
    /// Appends `bytes` to the stream.
    /// - Throws: whatever the destination reports (disk full, I/O error).
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws
}

/// An in-memory sink, for tests and small outputs.
public struct MemorySink: ByteSink, Sendable {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws { self.bytes.append(contentsOf: bytes) }
}
