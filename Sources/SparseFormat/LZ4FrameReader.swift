// SPDX-License-Identifier: Apache-2.0
// LZ4FrameReader: streaming, validating LZ4 frame decompression from a file with bounded memory.

import CLZ4
public import SafeTensors
import SystemPackage

/// Decompresses one LZ4 frame from a file, a chunk at a time.
///
/// The file is hostile input. The reader checks the magic number, requires a declared content
/// size, lets liblz4 check the block and content checksums, compares the declared size with what
/// the frame actually produces, and rejects truncation and trailing bytes. Memory: one 1 MiB input
/// buffer plus liblz4's 4 MiB block buffer, whatever the file size.
public final class LZ4FrameReader {
    /// The LZ4 frame magic number (little-endian on disk).
    public static let magic: UInt32 = 0x184D_2204

    /// The frame file's path.
    public let path: String
    /// The content size declared in the frame header.
    public let contentSize: UInt64
    /// Decompressed bytes produced so far.
    public private(set) var bytesOut: UInt64 = 0
    /// Whether the whole frame has been read and validated.
    public private(set) var isFinished = false

    private let fd: FileDescriptor
    private let context: OpaquePointer
    private let input: UnsafeMutableRawBufferPointer
    private var inputStart = 0
    private var inputEnd = 0
    private var consumed: UInt64 = 0

    /// Opens `path` and reads the frame header.
    /// - Throws: `SparseFormatError.notLZ4Frame`, `.truncatedFrame`, `.contentSizeMissing`, `.lz4`, `.io`.
    public init(path: String) throws {
        self.path = path
        fd = try FileIO.call(path, "open") {
            try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec])
        }
        input = .allocate(byteCount: FileIO.chunkSize, alignment: 16)
        var raw: OpaquePointer?
        let created = LZ4F_createDecompressionContext(&raw, UInt32(LZ4F_VERSION))
        guard LZ4F_isError(created) == 0, let raw else {
            try? fd.close()
            input.deallocate()
            throw SparseFormatError.lz4(file: path, operation: "createDecompressionContext", reason: "\(created)")
        }
        context = raw
        do {
            // readFrameHeader leaves the unconsumed rest of the first chunk at the front of `input`.
            let header = try Self.readFrameHeader(fd: fd, context: raw, input: input, path: path)
            contentSize = header.contentSize
            inputEnd = header.rest
            consumed = UInt64(header.used)
        } catch {
            LZ4F_freeDecompressionContext(raw)
            input.deallocate()
            try? fd.close()
            throw error
        }
    }

    deinit {
        LZ4F_freeDecompressionContext(context)
        input.deallocate()
        try? fd.close()
    }

    /// Decompresses the rest of the frame into `sink`.
    /// - Throws: any `SparseFormatError` about the frame, or the sink's error.
    public func decompress<Sink: ByteSink>(into sink: inout Sink) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4 << 20, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = try read(into: buffer)
            if count == 0 { return }
            try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    /// Reads exactly `count` decompressed bytes (for headers).
    /// - Throws: `SparseFormatError.truncatedFrame` when the frame ends first.
    public func readExactly(_ count: Int) throws -> [UInt8] {
        var result = [UInt8](repeating: 0, count: count)
        var filled = 0
        try result.withUnsafeMutableBytes { whole in
            while filled < count {
                let got = try read(into: UnsafeMutableRawBufferPointer(rebasing: whole[filled...]))
                if got == 0 { throw SparseFormatError.truncatedFrame(file: path, decompressedBytes: bytesOut) }
                filled += got
            }
        }
        return result
    }

    /// Decompresses up to `destination.count` bytes. Returns 0 once the frame is complete and valid.
    /// - Throws: any `SparseFormatError` about the frame.
    public func read(into destination: UnsafeMutableRawBufferPointer) throws -> Int {
        if isFinished || destination.isEmpty { return 0 }
        while true {
            var produced = destination.count
            var used = inputEnd - inputStart
            let hint = LZ4F_decompress(
                context,
                destination.baseAddress,
                &produced,
                input.baseAddress! + inputStart,
                &used,
                nil
            )
            if LZ4F_isError(hint) != 0 { throw error(for: hint) }
            inputStart += used
            consumed += UInt64(used)
            bytesOut += UInt64(produced)
            guard bytesOut <= contentSize else {
                throw SparseFormatError.contentSizeMismatch(file: path, declared: contentSize, actual: bytesOut)
            }
            if hint == 0 {
                try finishFrame()
                return produced
            }
            if produced > 0 { return produced }
            if used == 0 || inputStart == inputEnd {
                // Keep any unconsumed bytes, then append what the file has next.
                let rest = inputEnd - inputStart
                if rest > 0 && inputStart > 0 {
                    input.baseAddress!.copyMemory(from: input.baseAddress! + inputStart, byteCount: rest)
                }
                inputStart = 0
                inputEnd = rest
                let got = try FileIO.call(path, "read") {
                    try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: input[rest...]))
                }
                if got == 0 { throw SparseFormatError.truncatedFrame(file: path, decompressedBytes: bytesOut) }
                inputEnd += got
            }
        }
    }

    private func finishFrame() throws {
        guard bytesOut == contentSize else {
            throw SparseFormatError.contentSizeMismatch(file: path, declared: contentSize, actual: bytesOut)
        }
        if inputStart < inputEnd { throw SparseFormatError.trailingData(file: path, frameEnd: consumed) }
        let extra = try FileIO.call(path, "read") { try fd.read(into: input) }
        if extra > 0 { throw SparseFormatError.trailingData(file: path, frameEnd: consumed) }
        isFinished = true
    }

    private func error(for code: Int) -> SparseFormatError {
        let name = LZ4FrameWriter<MemorySink>.name(code)
        if name.contains("contentChecksum") || name.contains("blockChecksum") {
            return .frameChecksumMismatch(file: path)
        }
        if name.contains("frameSize_wrong") {
            return .contentSizeMismatch(file: path, declared: contentSize, actual: bytesOut)
        }
        return .lz4(file: path, operation: "decompress", reason: name)
    }

    /// Reads the first chunk, checks the magic and parses the frame header with `LZ4F_getFrameInfo`.
    /// Leaves the unconsumed bytes at the start of `input` (`end` = their count).
    private static func readFrameHeader(
        fd: FileDescriptor,
        context: OpaquePointer,
        input: UnsafeMutableRawBufferPointer,
        path: String
    ) throws -> (contentSize: UInt64, rest: Int, used: Int) {
        var filled = 0
        while filled < Int(LZ4F_HEADER_SIZE_MAX) {
            let got = try FileIO.call(path, "read") {
                try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: input[filled...]))
            }
            if got == 0 { break }
            filled += got
        }
        guard filled >= 4 else { throw SparseFormatError.truncatedFrame(file: path, decompressedBytes: 0) }
        let magic = input.loadUnaligned(as: UInt32.self).littleEndian
        guard magic == Self.magic else { throw SparseFormatError.notLZ4Frame(file: path, magic: magic) }
        var info = LZ4F_frameInfo_t()
        var used = filled
        let code = LZ4F_getFrameInfo(context, &info, input.baseAddress, &used)
        if LZ4F_isError(code) != 0 {
            let name = LZ4FrameWriter<MemorySink>.name(code)
            if name.contains("frameHeader_incomplete") || name.contains("srcSize_wrong") {
                throw SparseFormatError.truncatedFrame(file: path, decompressedBytes: 0)
            }
            throw SparseFormatError.lz4(file: path, operation: "getFrameInfo", reason: name)
        }
        guard info.contentSize > 0 else { throw SparseFormatError.contentSizeMissing(file: path) }
        // Move the unconsumed bytes to the front.
        let rest = filled - used
        if rest > 0 { input.baseAddress!.copyMemory(from: input.baseAddress! + used, byteCount: rest) }
        return (info.contentSize, rest, used)
    }
}
