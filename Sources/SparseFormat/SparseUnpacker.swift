// SPDX-License-Identifier: Apache-2.0
// SparseUnpacker: `dsnotctl unpack` — LZ4 frames back to compressed-tensors safetensors, or to a dense checkpoint.

import DSnoTSupport
import Foundation
import SafeTensors

/// Turns a sparse output directory back into a loadable checkpoint.
///
/// - `.compressedTensors`: every `<shard>.lz4` decompressed to `<shard>` (what `lz4 -d` gives),
///   config and index unchanged.
/// - `.dense`: every sparse group expanded to `X.weight` in its original dtype, zeros in place;
///   `config.json` without `quantization_config`; the index rewritten for the dense tensor names.
///   `transformers` loads it like any dense checkpoint.
///
/// Everything is validated on the way (frame checksums and sizes, safetensors headers, bitmask
/// popcounts, row offsets) and the destination is published atomically: on any error nothing
/// appears at `destination`.
public enum SparseUnpacker {
    /// What `unpack` produces.
    public enum Mode: String, Sendable, Codable {
        case compressedTensors = "compressed-tensors"
        case dense
    }

    /// What was unpacked.
    public struct Summary: Sendable, Codable, Equatable {
        public var destination: String
        public var mode: Mode
        /// Safetensors files written.
        public var files: [String]
        /// Tensors in the result (dense names in `.dense` mode).
        public var tensorCount: Int
        /// Bytes of the safetensors files written.
        public var bytes: UInt64
    }

    /// Unpacks `outputDirectory` into the new directory `destination`.
    /// - Throws: `SparseFormatError` (`targetExists` when `destination` exists; any frame or
    ///   structure error); nothing is left at `destination` on error.
    @discardableResult
    public static func unpack(outputDirectory: String, destination: String, mode: Mode) throws -> Summary {
        let publisher = try AtomicPublisher(
            target: destination,
            id: "unpack-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        )
        do {
            let summary = try unpack(outputDirectory, into: publisher.stagingPath, mode: mode, destination: destination)
            try publisher.publish()
            return summary
        } catch {
            try? publisher.discard()
            throw error
        }
    }

    private static func unpack(_ source: String, into staging: String, mode: Mode, destination: String) throws
        -> Summary
    {
        var summary = Summary(destination: destination, mode: mode, files: [], tensorCount: 0, bytes: 0)
        var weightMap: [String: String] = [:]
        var totalData: UInt64 = 0
        let names = try FileIO.listDirectory(source)
        for name in names {
            guard let base = shardName(ofFrame: name) else { continue }
            switch mode {
            case .compressedTensors:
                try decompressShard(at: source + "/" + name, to: staging + "/" + base, published: true)
                let file = try FileIO.safeTensors { try SafeTensorsFile(path: staging + "/" + base) }
                let groups = try SparseTensorGroups(file: file)
                for case .sparse(let group) in groups.items {
                    _ = try SparseTensorGroups.denseBytes(of: group, in: file)
                }
                summary.tensorCount += file.header.tensors.count
            case .dense:
                let layout = try densify(frame: source + "/" + name, to: staging + "/" + base, scratch: staging)
                for entry in layout.entries { weightMap[entry.name] = base }
                totalData += UInt64(layout.dataSize)
                summary.tensorCount += layout.entries.count
            }
            summary.files.append(base)
            summary.bytes += try FileIO.fileSize(staging + "/" + base)
        }
        guard !summary.files.isEmpty else {
            throw SparseFormatError.invalidOutput(path: source, reason: "no *.safetensors.lz4 files")
        }
        for name in names where shardName(ofFrame: name) == nil && !name.hasPrefix(".") {
            let path = source + "/" + name
            guard !FileIO.isDirectory(path), name != OutputManifest.reportFileName else { continue }
            if mode == .dense && name == "config.json" {
                var config = try StrictJSON.object(try FileIO.readSmallFile(path), what: path)
                config.removeAll { $0.0 == "quantization_config" }
                try FileIO.writeFile(staging + "/" + name, try StrictJSON.Value.object(config).prettyText(what: path))
            } else if mode == .dense && name == "model.safetensors.index.json" {
                let index: [String: Any] = ["metadata": ["total_size": totalData], "weight_map": weightMap]
                try FileIO.writeFile(staging + "/" + name, try SparseCheckpointWriter.encode(index))
            } else {
                try FileIO.copy(from: path, to: staging + "/" + name)
            }
        }
        return summary
    }

    /// The safetensors name a shard frame restores to (`x.safetensors.lz4` or
    /// `x.safetensors.planes.lz4` → `x.safetensors`), or `nil` for any other file.
    public static func shardName(ofFrame name: String) -> String? {
        if name.hasSuffix(".safetensors" + BytePlanes.frameSuffix) {
            return String(name.dropLast(BytePlanes.frameSuffix.count))
        }
        if name.hasSuffix(".safetensors.lz4") { return String(name.dropLast(4)) }
        return nil
    }

    /// Decompresses a shard frame into the new file `destination`: the compressed-tensors
    /// safetensors file, with byte planes (`*.planes.lz4`) joined back.
    /// - Throws: `SparseFormatError` about the frame or, for byte planes, the file inside.
    /// - Parameter published: whether `destination` will be published (fsynced), not a scratch file.
    public static func decompressShard(at path: String, to destination: String, published: Bool = false) throws {
        guard path.hasSuffix(BytePlanes.frameSuffix) else {
            return try decompressFrame(at: path, to: destination, published: published)
        }
        let planes = destination + ".planes"
        try decompressFrame(at: path, to: planes)
        defer { try? FileIO.removeTree(planes) }
        let file = try FileIO.safeTensors { try SafeTensorsFile(path: planes) }
        guard file.header.metadata[BytePlanes.metadataKey] == "2" else {
            throw SparseFormatError.invalidOutput(
                path: path,
                reason: "byte-plane shard without the '\(BytePlanes.metadataKey)' marker"
            )
        }
        try BytePlanes.restore(file, to: destination)
    }

    /// Decompresses one LZ4 frame file into the new file `destination`, validating the frame.
    /// - Throws: `SparseFormatError` about the frame, or I/O.
    /// - Parameter published: whether `destination` will be published (fsynced): its writeback starts
    ///   while it is written (`FileSink(creating:startingWriteback:)`); not for scratch files.
    public static func decompressFrame(at path: String, to destination: String, published: Bool = false) throws {
        let reader = try LZ4FrameReader(path: path)
        var sink = try FileSink(creating: destination, startingWriteback: published)
        try reader.decompress(into: &sink)
        try sink.close()
    }

    /// Shard frames whose content is at most this size are decoded into memory for `unpack --dense`;
    /// larger ones (and byte-plane frames) go through a scratch file in the staging directory.
    public static let inMemoryShardLimit = 256 << 20

    /// Writes the dense form of the shard frame `frame` to the new file `destination`: the frame is
    /// decoded once, into memory when its content is at most `inMemoryShardLimit` bytes (a plain
    /// frame), else into a scratch file in `scratch` that is mapped and removed afterwards.
    /// - Returns: the dense file's layout.
    /// - Throws: `SparseFormatError` about the frame or the file's structure, or I/O.
    @discardableResult
    static func densify(frame: String, to destination: String, scratch: String) throws -> SafeTensorsLayout {
        let reader = try LZ4FrameReader(path: frame)
        guard !frame.hasSuffix(BytePlanes.frameSuffix), reader.contentSize <= UInt64(inMemoryShardLimit) else {
            let sparsePath = scratch + "/.sparse-" + (destination as NSString).lastPathComponent
            try decompressShard(at: frame, to: sparsePath)
            defer { try? FileIO.removeTree(sparsePath) }
            return try densify(sparseFile: sparsePath, to: destination)
        }
        let size = Int(reader.contentSize)
        let content = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 64)
        defer { content.deallocate() }
        var filled = 0
        while filled < size {
            let got = try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: content[filled..<size]))
            guard got > 0 else {
                throw SparseFormatError.truncatedFrame(file: frame, decompressedBytes: UInt64(filled))
            }
            filled += got
        }
        // The end of the frame: content checksum, size, trailing bytes.
        var end: UInt8 = 0
        guard try withUnsafeMutableBytes(of: &end, { try reader.read(into: $0) }) == 0 else {
            throw SparseFormatError.contentSizeMismatch(
                file: frame,
                declared: reader.contentSize,
                actual: reader.bytesOut
            )
        }
        let bytes = UnsafeRawBufferPointer(rebasing: content[0..<size])
        let header = try FileIO.safeTensors {
            let length = try Header.headerLength(prefix: bytes, fileSize: size, file: frame)
            return try Header.parse(
                json: UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + length)]),
                dataSize: size - 8 - length,
                file: frame
            )
        }
        return try densify(header: header, path: frame, to: destination) { info in
            UnsafeRawBufferPointer(
                rebasing: bytes[(header.dataStart + info.dataOffsets.lowerBound)...].prefix(info.byteCount)
            )
        }
    }

    /// Writes the dense form of the sparse safetensors file `sparseFile` to the new file `destination`.
    /// - Returns: the dense file's layout.
    /// - Throws: `SparseFormatError` about the file's structure, or I/O.
    @discardableResult
    public static func densify(sparseFile: String, to destination: String) throws -> SafeTensorsLayout {
        let file = try FileIO.safeTensors { try SafeTensorsFile(path: sparseFile) }
        return try densify(header: file.header, path: file.path, to: destination) { file.rawBytes(of: $0) }
    }

    /// Writes the dense form of a sparse safetensors file given by its header and its tensors' bytes.
    private static func densify(
        header: Header,
        path: String,
        to destination: String,
        bytes: (TensorInfo) -> UnsafeRawBufferPointer
    ) throws -> SafeTensorsLayout {
        let groups = try SparseTensorGroups(tensors: header.tensors, path: path) { Array(bytes($0)) }
        let entries = groups.items.map { item -> SafeTensorsLayout.Entry in
            switch item {
            case .plain(let info):
                .init(name: info.name, dtype: info.dtype, shape: info.shape, byteCount: info.byteCount)
            case .sparse(let g):
                .init(name: g.denseName, dtype: g.dtype, shape: [g.rows, g.cols], byteCount: g.denseBytes)
            }
        }
        let metadata = header.metadata.isEmpty ? ["format": "pt"] : header.metadata
        let layout = try SafeTensorsLayout(entries: entries, metadata: metadata)
        let sink = try FileSink(creating: destination, startingWriteback: true)
        try layout.headerBytes.withUnsafeBytes { try sink.write($0) }
        // A sparse group's dense bytes are written while the next group is expanded (two items of
        // one parallel region); the first group after a plain tensor is expanded on all workers.
        // Groups are expanded into two buffers used in turn (the largest group's size each), not
        // a fresh array per group: no page faults or zero-filling of new memory per tensor.
        let largest = groups.items.reduce(0) { size, item in
            if case .sparse(let group) = item { max(size, group.denseBytes) } else { size }
        }
        let buffers = (0..<2).map { _ in
            UnsafeMutableRawBufferPointer.allocate(byteCount: max(largest, 1), alignment: 64)
        }
        defer { for buffer in buffers { buffer.deallocate() } }
        var pending: UnsafeMutableRawBufferPointer?
        var slot = 0
        for item in groups.items {
            switch item {
            case .plain(let info):
                if let dense = pending { try sink.write(UnsafeRawBufferPointer(dense)) }
                pending = nil
                try sink.write(bytes(info))
            case .sparse(let group):
                let target = UnsafeMutableRawBufferPointer(rebasing: buffers[slot][0..<group.denseBytes])
                slot = 1 - slot
                guard let previous = pending else {
                    try SparseTensorGroups.expand(group, path: path, into: target, bytes: bytes)
                    pending = target
                    continue
                }
                var expanded: Result<Void, any Error> = .success(())
                var written: Result<Void, any Error> = .success(())
                Parallel.forEachItem(0..<2) { part in
                    if part == 0 {
                        expanded = Result {
                            try SparseTensorGroups.expand(group, path: path, into: target, bytes: bytes)
                        }
                    } else {
                        written = Result { try sink.write(UnsafeRawBufferPointer(previous)) }
                    }
                }
                try written.get()
                try expanded.get()
                pending = target
            }
        }
        if let dense = pending { try sink.write(UnsafeRawBufferPointer(dense)) }
        try sink.close()
        return layout
    }
}
