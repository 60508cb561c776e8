// SPDX-License-Identifier: Apache-2.0
// BackgroundFrameDecoder: decodes a whole LZ4 frame into memory on a thread of its own.

import Foundation

/// Decodes a whole LZ4 frame into a buffer it owns, on a thread of its own, publishing how far it
/// got, so that the caller uses each part as soon as it is decoded: `unpack --dense` expands and
/// writes a shard's first groups while its last blocks are still being decoded.
///
/// The reader belongs to the decoder thread from `init` on; the caller only waits (`waitFor`,
/// `finish`) and reads `content` below the count it waited for. The buffer lives as long as the
/// decoder, which the thread keeps alive until it ends; the caller must `finish()` on every path
/// (an error of its own included) so that no decoding outlives the work it was for.
///
/// The buffer is `reader.contentSize` bytes (the caller bounds it). Advising it for transparent huge
/// pages (`MADV_HUGEPAGE`) was tried: a sixth of the page faults, a better best case, but a worse
/// mean on the 2-core VM (a 176 MB shard took 0.19–0.44 s against 0.22–0.27 s in 12 alternated
/// pairs), so it is not done.
///
/// ```swift
/// let decoder = BackgroundFrameDecoder(reader: reader)
/// try decoder.waitFor(end)  // decoder.content[0..<end] is decoded and stays valid
/// try decoder.finish()  // the whole frame decoded and validated (checksum, size, no trailing bytes)
/// ```
final class BackgroundFrameDecoder: @unchecked Sendable {
    /// The frame's content; bytes below a count `waitFor` returned for are decoded.
    let content: UnsafeRawBufferPointer
    private let buffer: UnsafeMutableRawBufferPointer
    private let reader: LZ4FrameReader
    private let condition = NSCondition()
    /// Guarded by `condition`: bytes of `content` decoded so far.
    private var decoded = 0
    /// Guarded by `condition`: the decoder's end (`nil` while it runs).
    private var outcome: Result<Void, any Error>?

    /// Starts decoding `reader`'s frame, from which nothing may have been read yet, into memory.
    /// The caller has checked that `reader.contentSize` is a size it accepts to hold.
    init(reader: LZ4FrameReader) {
        self.reader = reader
        let size = Int(reader.contentSize)
        buffer = .allocate(byteCount: max(size, 1), alignment: 64)
        content = UnsafeRawBufferPointer(rebasing: buffer[0..<size])
        let thread = Thread { [self] in run() }
        thread.name = "dsnot.frame-decoder"
        thread.start()
    }

    deinit { buffer.deallocate() }

    private func run() {
        let size = content.count
        var filled = 0
        let result = Result<Void, any Error> {
            while filled < size {
                let got = try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled..<size]))
                guard got > 0 else {
                    throw SparseFormatError.truncatedFrame(file: reader.path, decompressedBytes: reader.bytesOut)
                }
                filled += got
                condition.lock()
                decoded = filled
                condition.broadcast()
                condition.unlock()
            }
            // The end of the frame: content checksum, size, trailing bytes.
            var end: UInt8 = 0
            guard try withUnsafeMutableBytes(of: &end, { try reader.read(into: $0) }) == 0 else {
                throw SparseFormatError.contentSizeMismatch(
                    file: reader.path,
                    declared: reader.contentSize,
                    actual: reader.bytesOut
                )
            }
        }
        condition.lock()
        outcome = result
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until the first `count` bytes of `content` are decoded.
    /// - Throws: the decoder's error when the frame fails before `count` bytes.
    func waitFor(_ count: Int) throws {
        condition.lock()
        defer { condition.unlock() }
        while decoded < count {
            if let outcome {
                try outcome.get()
                throw SparseFormatError.truncatedFrame(file: reader.path, decompressedBytes: UInt64(decoded))
            }
            condition.wait()
        }
    }

    /// Waits for the decoder's end: the whole frame decoded and validated.
    /// - Throws: the decoder's error (any `SparseFormatError` about the frame).
    func finish() throws {
        condition.lock()
        defer { condition.unlock() }
        while outcome == nil { condition.wait() }
        try outcome?.get()
    }
}
