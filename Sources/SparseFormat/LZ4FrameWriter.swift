// SPDX-License-Identifier: Apache-2.0
// LZ4FrameWriter: streaming LZ4 frame compression (liblz4 frame API) into any ByteSink.

import CLZ4
public import DSnoTSupport
public import SafeTensors

/// An LZ4 compression level.
///
/// `.fast` is liblz4's default fast mode (what `lz4 -1` uses); `.hc(n)` with `n` in 3...12 selects
/// the high-compression compressor (`lz4 -9` is `.hc(9)`); `.accelerated(a)` trades ratio for speed.
public enum LZ4Level: Sendable, Equatable, Hashable, Codable {
    case fast
    case accelerated(Int)
    case hc(Int)

    /// The `compressionLevel` passed to liblz4 (0 fast, negative = acceleration, ≥ 3 HC).
    var compressionLevel: Int32 {
        switch self {
        case .fast: 0
        case .accelerated(let a): -Int32(clamping: max(1, a))
        case .hc(let n): Int32(clamping: min(max(n, 3), 12))
        }
    }

    /// A human-readable name: `fast`, `accelerated-4`, `hc-9`.
    public var name: String {
        switch self {
        case .fast: "fast"
        case .accelerated(let a): "accelerated-\(a)"
        case .hc(let n): "hc-\(n)"
        }
    }
}

/// Compresses a byte stream of known length into one LZ4 frame written to `Sink`, hashing the
/// frame (SHA-256) as it goes, with the frame's blocks compressed in parallel.
///
/// The frame has independent 4 MiB blocks, a content checksum and the content size recorded in
/// its header, so `lz4 -t` validates it and `lz4 -d` restores the input byte for byte. The bytes
/// are exactly those of liblz4's streaming frame API with the same preferences (`LZ4FrameTests`
/// compares with `lz4 -B4 --content-size`; `WriterExpectationTests` with the earlier writer): the
/// header comes from `LZ4F_compressBegin`, each block from the block compressor liblz4's frame API
/// calls (`LZ4_compress_fast_extState` with its acceleration, `LZ4_compress_HC_extStateHC` for
/// HC, output capacity one byte under the block so that an incompressible block is stored raw),
/// the content checksum from `XXH32`.
///
/// Input is gathered into a batch of `Parallel.workers` blocks; each batch is compressed block
/// by block on the workers (`Parallel.forEachItem`) while, in the same region, one item updates
/// the content checksum and another writes and hashes the previous batch's compressed blocks.
/// Memory: the batch (`workers` × 4 MiB) plus two sets of compressed blocks (2 × `workers` ×
/// 4 MiB) plus one compressor state per block, whatever the content size (24 MiB on 2 cores,
/// 96 MiB at the 8-worker cap).
///
/// ```swift
/// let writer = try LZ4FrameWriter(sink: FileSink(creating: path), contentSize: size)
/// try writer.write(headerBytes); try writer.write(dataBytes)
/// let sink = try writer.finish()          // writer.digest: SHA-256 of the frame file
/// ```
public final class LZ4FrameWriter<Sink: ByteSink>: ByteSink {
    /// The frame's block size (`LZ4F_max4MB`).
    static var blockSize: Int { 4 << 20 }

    /// Bytes a writer allocates at `level`, whatever the content size: the input batch, two sets of
    /// compressed blocks and one compressor state per block (`init`).
    public static func workingSetBytes(level: LZ4Level) -> Int {
        let isHC = level.compressionLevel >= 3
        let state = (Int(isHC ? LZ4_sizeofStateHC() : LZ4_sizeofState()) + 63) & ~63
        return Parallel.workers * (3 * blockSize + 8 + state)
    }

    /// The declared content size.
    public let contentSize: UInt64
    /// Uncompressed bytes received so far.
    public private(set) var bytesIn: UInt64 = 0
    /// Compressed bytes emitted so far (the frame's size once finished).
    public private(set) var bytesOut: UInt64 = 0
    /// SHA-256 of the whole frame, once `finish` has returned.
    public private(set) var digest: SHA256.Digest?
    private var sink: Sink
    private let level: LZ4Level
    private let file: String
    private var finished = false

    /// Blocks per batch.
    private let slots: Int
    /// The batch being filled: `slots` blocks.
    private let input: UnsafeMutableRawBufferPointer
    private var filled = 0
    /// Two sets of `slots` compressed blocks (block size field included), alternating per batch.
    private let outputs: UnsafeMutableRawBufferPointer
    private let outputSizes: UnsafeMutableBufferPointer<Int>
    /// One compressor state per slot (`LZ4_stream_t` or `LZ4_streamHC_t`).
    private let states: UnsafeMutableRawBufferPointer
    private let stateSize: Int
    /// The compressed batch not yet written: its set and its block count.
    private var unwritten: (set: Int, blocks: Int)?
    private var batches = 0
    private var checksum = XXH32()
    private var hasher = SHA256()

    /// Starts a frame: writes the frame header to `sink`.
    /// - Parameters:
    ///   - sink: where the compressed frame goes.
    ///   - contentSize: the exact number of bytes that will be written (recorded in the header).
    ///   - level: compression level.
    ///   - file: a name for error messages.
    /// - Throws: `SparseFormatError.lz4` when liblz4 refuses, or the sink's error.
    public init(sink: Sink, contentSize: UInt64, level: LZ4Level = .fast, file: String = "<lz4 frame>") throws {
        self.sink = sink
        self.contentSize = contentSize
        self.level = level
        self.file = file
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.blockSizeID = LZ4F_max4MB
        preferences.frameInfo.blockMode = LZ4F_blockIndependent
        preferences.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        preferences.frameInfo.contentSize = contentSize
        preferences.compressionLevel = level.compressionLevel
        slots = Parallel.workers
        let isHC = level.compressionLevel >= 3
        stateSize = (Int(isHC ? LZ4_sizeofStateHC() : LZ4_sizeofState()) + 63) & ~63
        input = .allocate(byteCount: slots * Self.blockSize, alignment: 64)
        outputs = .allocate(byteCount: 2 * slots * (Self.blockSize + 4), alignment: 64)
        outputSizes = .allocate(capacity: 2 * slots)
        states = .allocate(byteCount: slots * stateSize, alignment: 64)
        var header = [UInt8](repeating: 0, count: Int(LZ4F_HEADER_SIZE_MAX))
        var raw: OpaquePointer?
        let created = LZ4F_createCompressionContext(&raw, UInt32(LZ4F_VERSION))
        guard LZ4F_isError(created) == 0, let raw else {
            throw SparseFormatError.lz4(file: file, operation: "createCompressionContext", reason: Self.name(created))
        }
        defer { LZ4F_freeCompressionContext(raw) }
        let headerSize = header.withUnsafeMutableBytes {
            LZ4F_compressBegin(raw, $0.baseAddress, $0.count, &preferences)
        }
        try check(headerSize, "compressBegin")
        try header.withUnsafeBytes { try emit(UnsafeRawBufferPointer(rebasing: $0[0..<headerSize])) }
    }

    deinit {
        input.deallocate()
        outputs.deallocate()
        outputSizes.deallocate()
        states.deallocate()
    }

    /// Compresses `bytes` and appends the result to the sink.
    /// - Throws: `SparseFormatError.lz4` on a liblz4 error or when more than `contentSize` bytes
    ///   arrive; the sink's error.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard !finished else {
            throw SparseFormatError.lz4(file: file, operation: "compressUpdate", reason: "write after finish")
        }
        guard bytesIn + UInt64(bytes.count) <= contentSize else {
            throw SparseFormatError.contentSizeMismatch(
                file: file,
                declared: contentSize,
                actual: bytesIn + UInt64(bytes.count)
            )
        }
        var offset = 0
        while offset < bytes.count {
            let count = min(input.count - filled, bytes.count - offset)
            (input.baseAddress! + filled).copyMemory(from: bytes.baseAddress! + offset, byteCount: count)
            filled += count
            offset += count
            if filled == input.count { try compressBatch() }
        }
        bytesIn += UInt64(bytes.count)
    }

    /// Ends the frame (last blocks, end mark, content checksum) and returns the sink.
    /// - Throws: `SparseFormatError.contentSizeMismatch` when fewer bytes than declared arrived.
    public func finish() throws -> Sink {
        guard !finished else {
            throw SparseFormatError.lz4(file: file, operation: "compressEnd", reason: "finish called twice")
        }
        guard bytesIn == contentSize else {
            throw SparseFormatError.contentSizeMismatch(file: file, declared: contentSize, actual: bytesIn)
        }
        if filled > 0 { try compressBatch() }
        if let (set, blocks) = unwritten {
            try writeBlocks(set: set, count: blocks)
            unwritten = nil
        }
        var end = [UInt8](repeating: 0, count: 8)
        let sum = checksum.finalize()
        for b in 0..<4 { end[4 + b] = UInt8(truncatingIfNeeded: sum >> (8 * UInt32(b))) }
        try end.withUnsafeBytes { try emit($0) }
        finished = true
        digest = hasher.finalize()
        return sink
    }

    /// Compresses the `filled` bytes of the batch into the next set of blocks while the previous
    /// set is written, then leaves this one unwritten.
    private func compressBatch() throws {
        let (set, total) = (batches % 2, filled)
        let blocks = (total + Self.blockSize - 1) / Self.blockSize
        let previous = unwritten
        var writeError: (any Error)?
        var sum = checksum
        // Items 0..<blocks compress a block each; then the checksum; then the previous batch's write.
        // Each item touches only its own block, output slot and state, `sum`, or the sink.
        Parallel.forEachItem(0..<(blocks + 1 + (previous == nil ? 0 : 1))) { item in
            if item < blocks {
                compressBlock(item, of: total, into: set * slots + item)
            } else if item == blocks {
                sum.update(UnsafeRawBufferPointer(rebasing: input[0..<total]))
            } else if let previous {
                do { try writeBlocks(set: previous.set, count: previous.blocks) } catch { writeError = error }
            }
        }
        if let writeError { throw writeError }
        checksum = sum
        unwritten = (set, blocks)
        batches += 1
        filled = 0
    }

    /// Compresses block `block` of the batch into output slot `slot`, as liblz4's frame API does
    /// (`LZ4F_makeBlock`): stored raw with the high bit of its size set unless it compresses.
    private func compressBlock(_ block: Int, of total: Int, into slot: Int) {
        let source = input.baseAddress! + block * Self.blockSize
        let size = min(Self.blockSize, total - block * Self.blockSize)
        let destination = outputs.baseAddress! + slot * (Self.blockSize + 4)
        let state = states.baseAddress! + block * stateSize
        let level = level.compressionLevel
        let source8 = source.assumingMemoryBound(to: CChar.self)
        let destination8 = (destination + 4).assumingMemoryBound(to: CChar.self)
        let compressed: Int32 =
            level >= 3
            ? LZ4_compress_HC_extStateHC(state, source8, destination8, Int32(size), Int32(size - 1), level)
            : LZ4_compress_fast_extState(
                state,
                source8,
                destination8,
                Int32(size),
                Int32(size - 1),
                level < 0 ? -level + 1 : 1
            )
        var field: UInt32
        if compressed <= 0 || Int(compressed) >= size {
            field = UInt32(size) | 0x8000_0000
            (destination + 4).copyMemory(from: source, byteCount: size)
            outputSizes[slot] = 4 + size
        } else {
            field = UInt32(compressed)
            outputSizes[slot] = 4 + Int(compressed)
        }
        field = field.littleEndian
        withUnsafeBytes(of: &field) { destination.copyMemory(from: $0.baseAddress!, byteCount: 4) }
    }

    /// Writes (and hashes) the `count` compressed blocks of set `set`, in order.
    private func writeBlocks(set: Int, count: Int) throws {
        for block in 0..<count {
            let slot = set * slots + block
            let start = slot * (Self.blockSize + 4)
            try emit(UnsafeRawBufferPointer(rebasing: outputs[start..<(start + outputSizes[slot])]))
        }
    }

    private func emit(_ bytes: UnsafeRawBufferPointer) throws {
        guard !bytes.isEmpty else { return }
        try sink.write(bytes)
        hasher.update(bytes)
        bytesOut += UInt64(bytes.count)
    }

    private func check(_ code: Int, _ operation: String) throws {
        if LZ4F_isError(code) != 0 {
            throw SparseFormatError.lz4(file: file, operation: operation, reason: Self.name(code))
        }
    }

    static func name(_ code: Int) -> String { String(cString: LZ4F_getErrorName(code)) }
}
