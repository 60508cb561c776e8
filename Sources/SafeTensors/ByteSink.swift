// SPDX-License-Identifier: Apache-2.0
// ByteSink: where a streaming writer sends its bytes (a file, an LZ4 frame, a hash, memory).

/// A destination for a stream of bytes, written front to back.
///
/// `SafeTensorsStreamWriter` writes a safetensors file into any sink, so the same code produces a
/// plain file (`AtomicFileSink`), an LZ4 frame (SparseFormat) or an in-memory buffer (`MemorySink`).
///
/// ```swift
/// var sink = MemorySink()
/// try [1, 2, 3].withUnsafeBytes { try sink.write($0) }
/// ```
public protocol ByteSink {
    /// Appends `bytes` to the stream.
    /// - Throws: whatever the destination reports (disk full, I/O error).
    mutating func write(_ bytes: UnsafeRawBufferPointer) throws

    /// A name for the destination in error messages (a path, say). Defaults to `"<stream>"`.
    var destinationName: String { get }
}

extension ByteSink {
    /// The default destination name, for sinks without a path.
    public var destinationName: String { "<stream>" }
}

/// An in-memory sink, for tests and small outputs.
public struct MemorySink: ByteSink, Sendable {
    /// Everything written so far.
    public private(set) var bytes: [UInt8] = []
    /// Creates an empty sink.
    public init() {}
    /// Appends `bytes`.
    public mutating func write(_ bytes: UnsafeRawBufferPointer) throws { self.bytes.append(contentsOf: bytes) }
    /// `"<memory>"`.
    public var destinationName: String { "<memory>" }
}
