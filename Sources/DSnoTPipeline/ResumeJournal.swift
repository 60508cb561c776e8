// SPDX-License-Identifier: Apache-2.0
// ResumeJournal: the pruned tensors of finished blocks, appended to one file in the staging directory.

import DSnoTCore
import DSnoTSupport
import Foundation
import SafeTensors
import SparseFormat

/// A sink that appends every pruned weight (checkpoint dtype, as the output's sinks received it) to
/// `.dsnot-resume-journal`, so that a resumed run can hand the finished blocks' tensors to fresh output
/// sinks in their original order (`forEach`): every output format resumes the same way, and nothing
/// written after the last resume point is trusted. Copied (unpruned) tensors are not journaled: they are
/// copied from the input again. `sync()` makes the entries durable before a resume point names them.
///
/// ```swift
/// let journal = try ResumeJournal(creating: staging + "/" + ResumeJournal.fileName)
/// let sink = TeeSink([output, journal])          // … blocks …
/// try journal.sync()                             // then a resume point records journal.entries
/// ```
final class ResumeJournal: PrunedTensorSink {
    static let fileName = ".dsnot-resume-journal"

    /// One journaled tensor.
    struct Entry: Codable, Equatable, Sendable {
        var name: String
        var dtype: DType
        var shape: [Int]
        /// Byte offset of the tensor in the journal.
        var offset: Int
        var byteCount: Int
        /// SHA-256 (hex) of its bytes.
        var sha256: String
    }

    private let file: FileSink
    private(set) var entries: [Entry]

    /// Creates a new, empty journal (the file must not exist).
    /// - Throws: `SparseFormatError.io`.
    init(creating path: String) throws {
        file = try FileSink(creating: path)
        entries = []
    }

    /// Reopens a journal that `entries` (read from a resume point and checked with `verify`) describe,
    /// cutting off whatever was appended after them.
    /// - Throws: `SparseFormatError.io`.
    init(continuing path: String, entries: [Entry]) throws {
        let size = entries.last.map { $0.offset + $0.byteCount } ?? 0
        file = try FileSink(continuing: path, truncatingTo: UInt64(size))
        self.entries = entries
    }

    func write(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer, pruned: Bool) throws {
        guard pruned else { return }
        let offset = Int(file.bytesWritten)
        try file.write(bytes)
        var hasher = SHA256()
        hasher.update(bytes)
        entries.append(
            Entry(
                name: name,
                dtype: dtype,
                shape: shape,
                offset: offset,
                byteCount: bytes.count,
                sha256: hasher.finalize().hex
            )
        )
    }

    /// fsyncs the journal: the entries so far survive a power loss.
    /// - Throws: `SparseFormatError.io`.
    func sync() throws { try file.sync() }

    /// Checks the file at `path` against `entries` (contiguous from 0, each byte count that of its shape
    /// and dtype, each SHA-256), reading the journal once.
    /// - Throws: `ResumeError` naming the first problem.
    static func verify(_ path: String, entries: [Entry]) throws {
        var offset = 0
        for entry in entries {
            guard entry.offset == offset,
                TensorInfo.checkedByteCount(shape: entry.shape, dtype: entry.dtype) == entry.byteCount
            else {
                throw ResumeError(reason: "journal entry '\(entry.name)' is not laid out as its shape and dtype say")
            }
            offset += entry.byteCount
        }
        try forEach(path, entries: entries) { entry, bytes in
            var hasher = SHA256()
            hasher.update(bytes)
            guard hasher.finalize().hex == entry.sha256 else {
                throw ResumeError(reason: "journal entry '\(entry.name)' does not match its SHA-256")
            }
        }
    }

    /// Reads every entry's bytes in order.
    /// - Throws: `ResumeError` when the journal cannot be read or ends early.
    static func forEach(
        _ path: String,
        entries: [Entry],
        _ body: (Entry, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ResumeError(reason: "journal \(path) cannot be opened")
        }
        defer { try? handle.close() }
        for entry in entries {
            let data: Data
            do { data = try handle.read(upToCount: entry.byteCount) ?? Data() } catch {
                throw ResumeError(reason: "journal \(path) cannot be read: \(error.localizedDescription)")
            }
            guard data.count == entry.byteCount else {
                throw ResumeError(reason: "journal ends inside entry '\(entry.name)'")
            }
            try data.withUnsafeBytes { try body(entry, $0) }
        }
    }
}
