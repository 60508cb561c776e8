// SPDX-License-Identifier: Apache-2.0
// LZ4FrameWriter: streaming LZ4 frame compression (liblz4 frame API) into any ByteSink.

import CLZ4
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

/// Compresses a byte stream of known length into one LZ4 frame written to `Sink`.
///
/// The frame has independent 4 MiB blocks, a content checksum and the content size recorded in
/// its header, so `lz4 -t` validates it and `lz4 -d` restores the input byte for byte. Memory is
/// bounded by liblz4's block buffer plus one output chunk; the input is never held whole.
///
/// ```swift
/// let writer = try LZ4FrameWriter(sink: FileSink(creating: path), contentSize: size)
/// try writer.write(headerBytes); try writer.write(dataBytes)
/// let sink = try writer.finish()
/// ```
public final class LZ4FrameWriter<Sink: ByteSink>: ByteSink {
    /// Largest slice handed to `LZ4F_compressUpdate` at once; the output buffer is sized for it.
    static var chunkSize: Int { 1 << 20 }

    /// The declared content size.
    public let contentSize: UInt64
    /// Uncompressed bytes received so far.
    public private(set) var bytesIn: UInt64 = 0
    /// Compressed bytes emitted so far (the frame's size once finished).
    public private(set) var bytesOut: UInt64 = 0
    private var sink: Sink
    private let context: OpaquePointer
    private var preferences = LZ4F_preferences_t()
    private let output: UnsafeMutableRawBufferPointer
    private let file: String
    private var finished = false

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
        self.file = file
        var raw: OpaquePointer?
        let created = LZ4F_createCompressionContext(&raw, UInt32(LZ4F_VERSION))
        guard LZ4F_isError(created) == 0, let raw else {
            throw SparseFormatError.lz4(file: file, operation: "createCompressionContext", reason: Self.name(created))
        }
        context = raw
        preferences.frameInfo.blockSizeID = LZ4F_max4MB
        preferences.frameInfo.blockMode = LZ4F_blockIndependent
        preferences.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled
        preferences.frameInfo.contentSize = contentSize
        preferences.compressionLevel = level.compressionLevel
        let bound = LZ4F_compressBound(Self.chunkSize, &preferences)
        output = .allocate(byteCount: max(bound, Int(LZ4F_HEADER_SIZE_MAX)) + 64, alignment: 16)
        let headerSize = LZ4F_compressBegin(context, output.baseAddress, output.count, &preferences)
        try check(headerSize, "compressBegin")
        try emit(headerSize)
    }

    deinit {
        LZ4F_freeCompressionContext(context)
        output.deallocate()
    }

    /// Compresses `bytes` and appends the result to the sink.
    /// - Throws: `SparseFormatError.lz4` on a liblz4 error or when more than `contentSize` bytes
    ///   arrive; the sink's error.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!finished, "LZ4FrameWriter.write after finish")
        guard bytesIn + UInt64(bytes.count) <= contentSize else {
            throw SparseFormatError.contentSizeMismatch(
                file: file,
                declared: contentSize,
                actual: bytesIn + UInt64(bytes.count)
            )
        }
        var offset = 0
        while offset < bytes.count {
            let count = min(Self.chunkSize, bytes.count - offset)
            let produced = LZ4F_compressUpdate(
                context,
                output.baseAddress,
                output.count,
                bytes.baseAddress! + offset,
                count,
                nil
            )
            try check(produced, "compressUpdate")
            try emit(produced)
            offset += count
        }
        bytesIn += UInt64(bytes.count)
    }

    /// Ends the frame (last block, end mark, content checksum) and returns the sink.
    /// - Throws: `SparseFormatError.contentSizeMismatch` when fewer bytes than declared arrived.
    public func finish() throws -> Sink {
        precondition(!finished, "LZ4FrameWriter.finish called twice")
        guard bytesIn == contentSize else {
            throw SparseFormatError.contentSizeMismatch(file: file, declared: contentSize, actual: bytesIn)
        }
        let produced = LZ4F_compressEnd(context, output.baseAddress, output.count, nil)
        try check(produced, "compressEnd")
        try emit(produced)
        finished = true
        return sink
    }

    private func emit(_ count: Int) throws {
        guard count > 0 else { return }
        try sink.write(UnsafeRawBufferPointer(rebasing: output[0..<count]))
        bytesOut += UInt64(count)
    }

    private func check(_ code: Int, _ operation: String) throws {
        if LZ4F_isError(code) != 0 {
            throw SparseFormatError.lz4(file: file, operation: operation, reason: Self.name(code))
        }
    }

    static func name(_ code: Int) -> String { String(cString: LZ4F_getErrorName(code)) }
}
