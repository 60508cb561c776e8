// SPDX-License-Identifier: Apache-2.0
// LZ4FrameReader: streaming, validating LZ4 frame decompression from a file with bounded memory.

import CLZ4
import DSnoTSupport
public import SafeTensors
import SystemPackage

/// Decompresses one LZ4 frame from a file, a batch of blocks at a time.
///
/// The file is hostile input. The reader checks the magic number and the header (liblz4's
/// `LZ4F_getFrameInfo`), requires a declared content size, checks every block's size against the
/// frame's maximum, the block checksums when present and the content checksum (`XXH32`), compares
/// the declared size with what the frame actually produces, and rejects truncation and trailing
/// bytes.
///
/// Frames of independent blocks (every frame dsnot writes, and `lz4 -BI`'s) are decoded
/// `Parallel.workers` blocks at a time, each block on a worker (`LZ4_decompress_safe`, or a copy
/// for a block stored raw), while one more item of the same region computes the content checksum
/// of the previous batch. Memory: the compressed batch plus two decoded batches, 3 × `workers` ×
/// the frame's block size (24 MiB on 2 cores for 4 MiB blocks), whatever the file size. Frames of
/// linked blocks (`lz4 -BD`) are decoded by liblz4's sequential frame decoder instead (1 MiB input
/// buffer plus liblz4's block buffers).
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
    /// The parallel decoder of a frame of independent blocks; `nil` for linked blocks (liblz4 decodes).
    private var blocks: BlockDecoder?

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
            if header.info.blockMode == LZ4F_blockIndependent {
                blocks = BlockDecoder(
                    blockSize: try Self.blockSize(header.info.blockSizeID, path: path),
                    blockChecksums: header.info.blockChecksumFlag == LZ4F_blockChecksumEnabled,
                    contentChecksum: header.info.contentChecksumFlag == LZ4F_contentChecksumEnabled
                )
            }
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

    /// Bytes of a block size id of the frame header (4: 64 KiB … 7: 4 MiB).
    private static func blockSize(_ id: LZ4F_blockSizeID_t, path: String) throws -> Int {
        switch id {
        case LZ4F_max64KB, LZ4F_default: 64 << 10
        case LZ4F_max256KB: 256 << 10
        case LZ4F_max1MB: 1 << 20
        case LZ4F_max4MB: 4 << 20
        default:
            throw SparseFormatError.lz4(file: path, operation: "getFrameInfo", reason: "block size id \(id.rawValue)")
        }
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
        if let blocks { return try readBlocks(blocks, into: destination) }
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

    /// Serves decoded bytes of independent blocks, decoding the next batch when the current one is used up.
    private func readBlocks(_ blocks: BlockDecoder, into destination: UnsafeMutableRawBufferPointer) throws -> Int {
        while blocks.available == 0 {
            if blocks.ended {
                try blocks.finishChecksum(path: path, stored: try readContentChecksum(blocks))
                try finishFrame()
                return 0
            }
            try readBatch(blocks)
        }
        let count = min(destination.count, blocks.available)
        destination.baseAddress!.copyMemory(from: blocks.next, byteCount: count)
        blocks.consume(count)
        bytesOut += UInt64(count)
        return count
    }

    /// Reads up to `workers` blocks (or up to the end mark) and decodes them in parallel.
    private func readBatch(_ blocks: BlockDecoder) throws {
        var sizes: [(stored: Int, raw: Bool)] = []
        while sizes.count < blocks.slots {
            var field: UInt32 = 0
            try withUnsafeMutableBytes(of: &field) { try readExactly(into: $0) }
            field = UInt32(littleEndian: field)
            if field == 0 {
                blocks.ended = true
                break
            }
            let stored = Int(field & 0x7FFF_FFFF)
            guard stored <= blocks.blockSize else {
                throw SparseFormatError.lz4(
                    file: path,
                    operation: "decompress",
                    reason: "block of \(stored) bytes in a frame of \(blocks.blockSize)-byte blocks"
                )
            }
            let slot = blocks.compressedSlot(sizes.count)
            try readExactly(into: UnsafeMutableRawBufferPointer(rebasing: slot[0..<(stored + blocks.checksumBytes)]))
            sizes.append((stored, field & 0x8000_0000 != 0))
        }
        blocks.decodedBytes += UInt64(try blocks.decode(sizes, path: path))
        guard blocks.decodedBytes <= contentSize else {
            throw SparseFormatError.contentSizeMismatch(file: path, declared: contentSize, actual: blocks.decodedBytes)
        }
    }

    /// The stored content checksum after the end mark (`nil` when the frame has none).
    private func readContentChecksum(_ blocks: BlockDecoder) throws -> UInt32? {
        guard blocks.contentChecksum else { return nil }
        var stored: UInt32 = 0
        try withUnsafeMutableBytes(of: &stored) { try readExactly(into: $0) }
        return UInt32(littleEndian: stored)
    }

    /// Fills `destination` with the frame's next bytes: first what `input` holds, then from the file.
    /// - Throws: `SparseFormatError.truncatedFrame` when the file ends first.
    private func readExactly(into destination: UnsafeMutableRawBufferPointer) throws {
        var filled = min(destination.count, inputEnd - inputStart)
        if filled > 0 {
            destination.baseAddress!.copyMemory(from: input.baseAddress! + inputStart, byteCount: filled)
            inputStart += filled
        }
        while filled < destination.count {
            let missing = destination.count - filled
            if missing < input.count {
                // Small reads (block sizes, checksums, small blocks) go through `input`.
                let got = try FileIO.call(path, "read") { try fd.read(into: input) }
                if got == 0 { throw SparseFormatError.truncatedFrame(file: path, decompressedBytes: bytesOut) }
                let take = min(got, missing)
                (destination.baseAddress! + filled).copyMemory(from: input.baseAddress!, byteCount: take)
                (inputStart, inputEnd) = (take, got)
                filled += take
            } else {
                let got = try FileIO.call(path, "read") {
                    try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: destination[filled...]))
                }
                if got == 0 { throw SparseFormatError.truncatedFrame(file: path, decompressedBytes: bytesOut) }
                filled += got
            }
        }
        consumed += UInt64(destination.count)
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
    ) throws -> (contentSize: UInt64, rest: Int, used: Int, info: LZ4F_frameInfo_t) {
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
        return (info.contentSize, rest, used, info)
    }
}

/// The batches of a frame of independent blocks: compressed input, two decoded sets (one being
/// served while the other's checksum is computed), and the content checksum.
final class BlockDecoder {
    let blockSize: Int
    let slots = Parallel.workers
    let checksumBytes: Int
    let contentChecksum: Bool
    /// Whether the end mark has been read.
    var ended = false
    /// Content bytes decoded so far (served or not).
    var decodedBytes: UInt64 = 0
    private let compressed: UnsafeMutableRawBufferPointer
    private let decoded: UnsafeMutableRawBufferPointer
    /// The set being served, its size and the bytes already served.
    private var set = 1
    private var setBytes = 0
    private var served = 0
    /// Bytes of the other set still to be checksummed (the previous batch).
    private var unhashed = 0
    private var checksum = XXH32()

    init(blockSize: Int, blockChecksums: Bool, contentChecksum: Bool) {
        self.blockSize = blockSize
        checksumBytes = blockChecksums ? 4 : 0
        self.contentChecksum = contentChecksum
        compressed = .allocate(byteCount: slots * (blockSize + 4), alignment: 64)
        decoded = .allocate(byteCount: 2 * slots * blockSize, alignment: 64)
    }

    deinit {
        compressed.deallocate()
        decoded.deallocate()
    }

    var available: Int { setBytes - served }
    var next: UnsafeRawPointer { UnsafeRawPointer(decoded.baseAddress! + set * slots * blockSize + served) }
    func consume(_ count: Int) { served += count }

    /// Where block `index` of the batch is read to (stored bytes, then its checksum if any).
    func compressedSlot(_ index: Int) -> UnsafeMutableRawBufferPointer {
        let start = index * (blockSize + 4)
        return UnsafeMutableRawBufferPointer(rebasing: compressed[start..<(start + blockSize + 4)])
    }

    /// Decodes the batch's blocks into the other set, in parallel, and checksums the set just served
    /// in the same region. Returns the decoded byte count.
    /// - Throws: `SparseFormatError.lz4` for a block that does not decode or whose size is wrong
    ///   for its place, `.frameChecksumMismatch` for a block checksum.
    func decode(_ blocks: [(stored: Int, raw: Bool)], path: String) throws -> Int {
        let target = 1 - set
        let base = decoded.baseAddress! + target * slots * blockSize
        let previous = UnsafeRawBufferPointer(start: decoded.baseAddress! + set * slots * blockSize, count: unhashed)
        var produced = [Int](repeating: 0, count: blocks.count)
        var sum = checksum
        produced.withUnsafeMutableBufferPointer { produced in
            Parallel.forEachItem(0..<(blocks.count + 1)) { item in
                guard item < blocks.count else {
                    if contentChecksum { sum.update(previous) }
                    return
                }
                let (stored, raw) = blocks[item]
                let source = compressedSlot(item).baseAddress!
                if checksumBytes > 0 {
                    let expected = UInt32(littleEndian: source.loadUnaligned(fromByteOffset: stored, as: UInt32.self))
                    guard XXH32.hash(UnsafeRawBufferPointer(start: source, count: stored)) == expected else {
                        produced[item] = -2
                        return
                    }
                }
                let destination = base + item * blockSize
                if raw {
                    destination.copyMemory(from: source, byteCount: stored)
                    produced[item] = stored
                } else {
                    let count = LZ4_decompress_safe(
                        source.assumingMemoryBound(to: CChar.self),
                        destination.assumingMemoryBound(to: CChar.self),
                        Int32(stored),
                        Int32(blockSize)
                    )
                    produced[item] = count < 0 ? -1 : Int(count)
                }
            }
        }
        checksum = sum
        var end = 0
        for (index, count) in produced.enumerated() {
            if count == -2 { throw SparseFormatError.frameChecksumMismatch(file: path) }
            guard count >= 0 else {
                throw SparseFormatError.lz4(
                    file: path,
                    operation: "decompress",
                    reason: "block \(index) of the batch is corrupted"
                )
            }
            // A block shorter than the maximum before the frame's last (a flushed stream): the
            // decoded set is served as one run, so the blocks after it move up.
            if end != index * blockSize { (base + end).copyMemory(from: base + index * blockSize, byteCount: count) }
            end += count
        }
        set = target
        setBytes = end
        served = 0
        unhashed = setBytes
        return setBytes
    }

    /// Checksums the last set and compares with the frame's stored content checksum.
    /// - Throws: `SparseFormatError.frameChecksumMismatch`.
    func finishChecksum(path: String, stored: UInt32?) throws {
        guard let stored else { return }
        checksum.update(UnsafeRawBufferPointer(start: decoded.baseAddress! + set * slots * blockSize, count: unhashed))
        unhashed = 0
        guard checksum.finalize() == stored else { throw SparseFormatError.frameChecksumMismatch(file: path) }
    }
}
