// SPDX-License-Identifier: Apache-2.0
// AtomicFileSink: a buffered ByteSink into a temp file that commit() publishes crash-safely.

/// A `ByteSink` that writes a file which appears under its final name only when complete.
///
/// Bytes go, through a buffer, to `<dir>/.<name>.tmp-<random>` (created with `O_EXCL`). `commit()`
/// flushes, `fsync`s, renames to the final path without ever replacing an existing file, and
/// `fsync`s the directory. `abort()`, or dropping the sink without committing, removes the
/// temporary file. See `TemporaryFile` for the protocol.
///
/// ```swift
/// let sink = try AtomicFileSink(path: "out/model.safetensors")
/// var writer = try SafeTensorsStreamWriter(declarations: declarations, metadata: [:], sink: sink)
/// for (name, bytes) in tensors { try writer.write(name: name, bytes: bytes) }
/// try writer.finish().commit()
/// ```
public final class AtomicFileSink: ByteSink {
    /// The path the file is published under by `commit()`.
    public let path: String
    /// The hidden temporary file being written.
    public var temporaryPath: String { file.temporaryPath }
    /// Bytes written so far (buffered or not).
    public private(set) var bytesWritten = 0
    private var file: TemporaryFile
    private var buffer: [UInt8] = []
    private let bufferCapacity: Int
    private var committed = false

    /// Creates the temporary file next to `path`.
    /// - Parameters:
    ///   - path: the final path; must not exist.
    ///   - bufferSize: bytes buffered before a `write(2)` (default 4 MiB).
    /// - Throws: `SafeTensorsError.destinationExists` or `.io`.
    public init(path: String, bufferSize: Int = 4 << 20) throws {
        self.path = path
        file = try TemporaryFile(finalPath: path)
        bufferCapacity = max(bufferSize, 1)
        buffer.reserveCapacity(bufferCapacity)
    }

    /// Creates the temporary file for `<directory>/<name>`.
    /// - Throws: `SafeTensorsError.destinationExists` or `.io`.
    public convenience init(directory: String, name: String) throws {
        try self.init(path: directory.hasSuffix("/") ? directory + name : directory + "/" + name)
    }

    deinit { file.discard() }

    /// The final path.
    public var destinationName: String { path }

    /// Appends `bytes` (buffered; large writes bypass the buffer).
    /// - Throws: `SafeTensorsError.writerClosed` after `commit`/`abort`, `.io` on a failed write.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard file.descriptor != nil else { throw SafeTensorsError.writerClosed(file: path) }
        if buffer.count + bytes.count > bufferCapacity { try flush() }
        if bytes.count >= bufferCapacity {
            try file.write(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
        bytesWritten += bytes.count
    }

    /// Writes the buffered bytes to the temporary file.
    /// - Throws: `SafeTensorsError.io`.
    public func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try file.write($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes, fsyncs, and publishes the file under `path` (never replacing an existing file),
    /// then fsyncs the directory. On failure the temporary file is removed.
    /// - Throws: `SafeTensorsError.destinationExists`, `.writerClosed` or `.io`.
    public func commit() throws {
        do {
            try flush()
        } catch {
            file.discard()
            throw error
        }
        try file.publish()
        committed = true
    }

    /// Removes the temporary file; the sink cannot be used afterwards. Idempotent.
    public func abort() {
        buffer.removeAll()
        file.discard()
    }

    /// Whether `commit()` succeeded.
    public var isCommitted: Bool { committed }
}
