// SPDX-License-Identifier: Apache-2.0
// BackgroundFrameDecoder: decodes the rest of an LZ4 frame into a bounded window on a thread of its own.

import Foundation

/// Decodes the rest of an LZ4 frame on a thread of its own into a window of bounded size, so that
/// the caller uses each part as soon as it is decoded: `unpack --dense` expands and writes a
/// shard's first groups while its later blocks are still being decoded, in memory of the order of
/// its largest group rather than of the shard.
///
/// The caller asks for content ranges in order (`bytes(_:)`, each starting at or after the previous
/// one's start and at most `window` bytes long); asking for a range gives up every byte before it,
/// and the bytes returned stay valid until the next call. The decoder runs ahead as far as the
/// window allows; the bytes still needed are moved to the window's front (`compact`) once half of it
/// is given up, by whichever thread finds the window free of readers and writers.
/// `finish()` gives up everything, lets the decoder run to the end of the frame (validating its
/// checksum and size) and reports the frame's error, if any. The caller must `finish()` on every
/// path, an error of its own included, so that no decoding outlives the work.
///
/// The window is reused from the first block to the last: SmolLM2's 176 MB shard is decoded into
/// 16 MiB, and the whole unpack takes 13,000 page faults instead of 52,000 with a buffer of the
/// shard's size.
///
/// ```swift
/// let decoder = BackgroundFrameDecoder(reader: reader, size: size, from: prefix, window: 16 << 20)
/// let first = try decoder.bytes(prefix..<(prefix + 64))  // waits until decoded; valid until the next call
/// try decoder.finish()  // the whole frame decoded and validated (checksum, size, no trailing bytes)
/// ```
final class BackgroundFrameDecoder: @unchecked Sendable {
    /// The frame's content size.
    let size: Int
    private let buffer: UnsafeMutableRawBufferPointer
    private let reader: LZ4FrameReader
    private let condition = NSCondition()
    /// Guarded by `condition`: the content offset of `buffer[0]`.
    private var start: Int
    /// Guarded by `condition`: content bytes decoded; the window holds `start..<decoded`.
    private var decoded: Int
    /// Guarded by `condition`: content bytes the caller has given up.
    private var released: Int
    /// Guarded by `condition`: whether the caller holds a range of the window.
    private var inUse = false
    /// Guarded by `condition`: whether the caller waits for bytes to be decoded.
    private var waiting = false
    /// Guarded by `condition`: whether the decoder writes into the window (outside the lock).
    private var reading = false
    /// Guarded by `condition`: the caller is done; the rest is decoded only to be validated.
    private var draining = false
    /// Guarded by `condition`: the decoder's end (`nil` while it runs).
    private var outcome: Result<Void, any Error>?

    /// Starts decoding the rest of `reader`'s frame, of `size` content bytes (its declared content
    /// size) of which the caller has read the first `prefix`, into a window of `window` bytes (at
    /// most what is left of the content).
    init(reader: LZ4FrameReader, size: Int, from prefix: Int, window: Int) {
        self.reader = reader
        self.size = size
        (start, decoded, released) = (prefix, prefix, prefix)
        buffer = .allocate(byteCount: max(1, min(window, size - prefix)), alignment: 64)
        let thread = Thread { [self] in run() }
        thread.name = "dsnot.frame-decoder"
        thread.start()
    }

    deinit { buffer.deallocate() }

    /// The window's size.
    var window: Int { buffer.count }

    private func run() {
        let result = Result<Void, any Error> {
            while true {
                condition.lock()
                // Make room: drop what the caller gave up, moving what it still needs to the front.
                while decoded < size && decoded - start == buffer.count {
                    if draining {
                        start = decoded
                    } else if !compact() {
                        condition.wait()
                    }
                }
                let (from, target) = (decoded - start, min(buffer.count, size - start))
                reading = from < target
                condition.unlock()
                guard from < target else { break }
                let got = Result {
                    try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[from..<target]))
                }
                condition.lock()
                reading = false
                decoded += (try? got.get()) ?? 0
                condition.broadcast()
                condition.unlock()
                guard try got.get() > 0 else {
                    throw SparseFormatError.truncatedFrame(file: reader.path, decompressedBytes: reader.bytesOut)
                }
            }
            // The end of the frame: content checksum, size, trailing bytes.
            try SkipBuffer().finish(reader)
        }
        condition.lock()
        outcome = result
        condition.broadcast()
        condition.unlock()
    }

    /// Moves the bytes still needed to the front of the window when nobody reads or writes it and
    /// at least half of it is given up, or the caller waits for bytes (so each byte is moved about
    /// once, not once per range). Either thread calls it, holding `condition`. Returns whether it
    /// moved. The caller may have given up bytes not decoded yet (asking for a range ahead).
    private func compact() -> Bool {
        guard !inUse, !reading, released > start, released - start >= buffer.count / 2 || waiting else {
            return false
        }
        let first = min(released, decoded)
        buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + (first - start), byteCount: decoded - first)
        start = first
        return true
    }

    /// Gives up every byte before `range` (and the range held before), waits until `range` is
    /// decoded and returns it, valid until the next call.
    /// - Throws: the decoder's error when the frame fails before `range` is decoded;
    ///   `SparseFormatError.invalidOutput` when `range` starts before a range asked for earlier or
    ///   is longer than the window (the caller sizes the window, so neither happens).
    func bytes(_ range: Range<Int>) throws -> UnsafeRawBufferPointer {
        condition.lock()
        defer { condition.unlock() }
        inUse = false
        guard range.lowerBound >= released, range.count <= buffer.count, range.upperBound <= size else {
            throw SparseFormatError.invalidOutput(
                path: reader.path,
                reason: "range \(range) asked of a frame decoded from \(released) in a \(buffer.count)-byte window"
            )
        }
        released = range.lowerBound
        // Make room for the decoder now, between two of its reads, rather than when it finds the
        // window full (it cannot move bytes while a range is held).
        _ = compact()
        waiting = true
        defer { waiting = false }
        condition.broadcast()
        while decoded < range.upperBound {
            if let outcome {
                try outcome.get()
                throw SparseFormatError.truncatedFrame(file: reader.path, decompressedBytes: UInt64(decoded))
            }
            condition.wait()
        }
        inUse = true
        return UnsafeRawBufferPointer(start: buffer.baseAddress! + (range.lowerBound - start), count: range.count)
    }

    /// Gives up everything and waits for the decoder's end: the whole frame decoded and validated.
    /// - Throws: the decoder's error (any `SparseFormatError` about the frame).
    func finish() throws {
        condition.lock()
        defer { condition.unlock() }
        inUse = false
        draining = true
        condition.broadcast()
        while outcome == nil { condition.wait() }
        try outcome?.get()
    }
}
