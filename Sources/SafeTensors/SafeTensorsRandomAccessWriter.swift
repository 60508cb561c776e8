// SPDX-License-Identifier: Apache-2.0
// SafeTensorsRandomAccessWriter: writes a safetensors file whose tensors arrive in any order.

import Foundation

/// Writes a safetensors file whose tensors arrive in another order than the file's layout.
///
/// The pruning pipeline produces tensors block by block while the file keeps the input's layout:
/// the header is laid out from `declarations` (the final order) and written at once, each
/// `write(name:bytes:)` lands at its offset with `pwrite`, and `commit()` refuses to publish until
/// every tensor was written, then fsyncs and renames without replacing (see `AtomicFileSink`).
/// Different tensors may be written from different threads.
///
/// ```swift
/// let writer = try SafeTensorsRandomAccessWriter(path: "out/model.safetensors", declarations: layout)
/// try writer.write(name: "lm_head.weight", bytes: head)   // any order
/// try writer.write(name: "model.embed_tokens.weight", bytes: embed)
/// try writer.commit()
/// ```
public final class SafeTensorsRandomAccessWriter: @unchecked Sendable {
    // @unchecked: `file` is only mutated (published/discarded) under `lock`; pwrite is thread-safe.

    /// The final path.
    public let path: String
    /// The header written at the front of the file (tensors in file order).
    public let header: Header
    private let byName: [String: Int]
    private let lock = NSLock()
    private var file: TemporaryFile
    private var written: [Bool]
    private var inFlight = 0
    private var closed = false

    /// Creates the temporary file, writes the header and sizes the file.
    /// - Parameters:
    ///   - path: the final path; must not exist.
    ///   - declarations: the tensors in file order.
    ///   - metadata: the `__metadata__` object (omitted when empty).
    /// - Throws: `SafeTensorsError.invalidDeclaration`, `.destinationExists` or `.io`.
    public init(path: String, declarations: [TensorDeclaration], metadata: [String: String] = [:]) throws {
        self.path = path
        let (prefix, header) = try Header.encode(declarations: declarations, metadata: metadata, file: path)
        self.header = header
        var index: [String: Int] = [:]
        for (i, tensor) in header.tensors.enumerated() { index[tensor.name] = i }
        byName = index
        written = Array(repeating: false, count: header.tensors.count)
        file = try TemporaryFile(finalPath: path)
        do {
            try prefix.withUnsafeBytes { try file.write($0, at: 0) }
            try file.truncate(to: header.fileSize)
        } catch {
            file.discard()
            throw error
        }
    }

    deinit { file.discard() }

    /// The hidden temporary file being written.
    public var temporaryPath: String { file.temporaryPath }

    /// Names of the declared tensors not written yet, in file order.
    public var missingTensors: [String] {
        lock.withLock { header.tensors.indices.filter { !written[$0] }.map { header.tensors[$0].name } }
    }

    /// Writes one tensor's bytes at its offset.
    /// - Parameters:
    ///   - name: a declared tensor not written yet.
    ///   - bytes: exactly shape × dtype bytes, little-endian.
    /// - Throws: `SafeTensorsError.unexpectedTensor` (undeclared or already written),
    ///   `.wrongByteCount`, `.writerClosed` or `.io`.
    public func write(name: String, bytes: UnsafeRawBufferPointer) throws {
        guard let index = byName[name] else {
            throw SafeTensorsError.unexpectedTensor(file: path, tensor: name, expected: "a declared tensor")
        }
        let tensor = header.tensors[index]
        guard bytes.count == tensor.byteCount else {
            throw SafeTensorsError.wrongByteCount(
                file: path,
                tensor: name,
                expectedBytes: tensor.byteCount,
                actualBytes: bytes.count
            )
        }
        // Claim the tensor under the lock; the pwrite itself runs unlocked so writers overlap.
        let target: TemporaryFile = try lock.withLock {
            guard !closed else { throw SafeTensorsError.writerClosed(file: path) }
            guard !written[index] else {
                throw SafeTensorsError.unexpectedTensor(file: path, tensor: name, expected: "a tensor not written yet")
            }
            written[index] = true
            inFlight += 1
            return file
        }
        defer { lock.withLock { inFlight -= 1 } }
        do {
            if !bytes.isEmpty { try target.write(bytes, at: header.dataStart + tensor.dataOffsets.lowerBound) }
        } catch {
            lock.withLock { written[index] = false }
            throw error
        }
    }

    /// Writes one tensor from an array of elements (their in-memory, little-endian bytes).
    /// - Throws: as `write(name:bytes:)`.
    public func write<Element: BitwiseCopyable>(name: String, contentsOf values: [Element]) throws {
        try values.withUnsafeBytes { try write(name: name, bytes: $0) }
    }

    /// Checks every tensor was written, fsyncs, publishes under `path` without replacing, fsyncs
    /// the directory. A failed check leaves the writer open (write the missing tensors, retry);
    /// a failed publish removes the temporary file.
    /// - Throws: `SafeTensorsError.missingTensors`, `.destinationExists`, `.writerClosed` or `.io`.
    public func commit() throws {
        try lock.withLock {
            guard !closed else { throw SafeTensorsError.writerClosed(file: path) }
            precondition(inFlight == 0, "SafeTensorsRandomAccessWriter.commit() raced with write(name:bytes:)")
            let missing = header.tensors.indices.filter { !written[$0] }.map { header.tensors[$0].name }
            guard missing.isEmpty else { throw SafeTensorsError.missingTensors(file: path, tensors: missing) }
            closed = true
            try file.publish()
        }
    }

    /// Removes the temporary file; the writer cannot be used afterwards. Idempotent. Call it only
    /// once no `write` is in progress on another thread (it closes the descriptor they write to).
    public func abort() {
        lock.withLock {
            closed = true
            file.discard()
        }
    }
}
