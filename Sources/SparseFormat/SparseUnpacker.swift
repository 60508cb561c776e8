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
                let (layout, _) = try densify(frame: source + "/" + name, to: staging + "/" + base, scratch: staging)
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

    /// The largest window `unpack --dense` decodes a shard frame into: a shard with a group larger
    /// than this (or a byte-plane shard) is decoded into a scratch file in the staging directory first.
    public static let streamingWindowLimit = 256 << 20

    /// The smallest such window: room for the decoder to run ahead of the groups being expanded.
    static let minimumWindow = 16 << 20

    /// The most of a plain tensor written at a time while its frame decodes.
    static let plainPiece = 4 << 20

    /// Writes the dense form of the shard frame `frame` to the new file `destination`.
    ///
    /// A plain frame is decoded by a `BackgroundFrameDecoder` into a window of the size of its
    /// largest group (at least `minimumWindow`) while this thread expands and writes the groups
    /// already decoded (`densifyStreaming`). A byte-plane frame, a group larger than
    /// `streamingWindowLimit`, or a group whose dimensions are not the ones taken for the dense
    /// header, go through a scratch file in `scratch` instead: the frame decoded to it, then mapped
    /// and removed afterwards.
    /// - Returns: the dense file's layout, and whether it was written while the frame was decoded.
    /// - Throws: `SparseFormatError` about the frame or the file's structure, or I/O. A frame that
    ///   fails its own checks (checksums, size) is reported as such, whatever its content looked like.
    /// - Parameter minimumWindow: `SparseUnpacker.minimumWindow`; tests pass less to exercise the window.
    @discardableResult
    static func densify(
        frame: String,
        to destination: String,
        scratch: String,
        minimumWindow: Int = SparseUnpacker.minimumWindow
    ) throws -> (layout: SafeTensorsLayout, streamed: Bool) {
        if !frame.hasSuffix(BytePlanes.frameSuffix),
            let layout = try densifyStreaming(frame: frame, to: destination, minimumWindow: minimumWindow)
        {
            return (layout, true)
        }
        if FileIO.exists(destination) { try FileIO.removeTree(destination) }
        let sparsePath = scratch + "/.sparse-" + (destination as NSString).lastPathComponent
        try decompressShard(at: frame, to: sparsePath)
        defer { try? FileIO.removeTree(sparsePath) }
        return (try densify(sparseFile: sparsePath, to: destination), false)
    }

    /// Writes the dense form of a plain shard frame to the new file `destination` while it decodes.
    ///
    /// The dense header needs every group's dimensions before the first tensor is written, but each
    /// group's `.shape` lies in the data among its other members. The dimensions are therefore taken
    /// from the members' shapes in the header (rows from `.bitmask`; columns from a 2:4
    /// `.compressed`, or 8 per `.bitmask` byte), and each `.shape`, once decoded, is checked against
    /// them before its group is expanded.
    /// - Returns: the dense layout; `nil` when the header does not allow taking the dimensions, a
    ///   group spans more than `streamingWindowLimit`, or a `.shape` differed from the dimensions
    ///   taken (a column count that is not a multiple of 8): the caller writes `destination` again
    ///   from a scratch file.
    /// - Throws: `SparseFormatError` about the frame or the file's structure, or I/O.
    private static func densifyStreaming(frame: String, to destination: String, minimumWindow: Int) throws
        -> SafeTensorsLayout?
    {
        let reader = try LZ4FrameReader(path: frame)
        guard let size = Int(exactly: reader.contentSize) else { return nil }
        var decoder: BackgroundFrameDecoder?
        do {
            let header = try reader.readSafeTensorsHeader(contentSize: size, path: frame, checkingBounds: true).header
            var byName: [String: TensorInfo] = [:]
            for info in header.tensors { byName[info.name] = info }
            var taken: [String: [UInt8]] = [:]
            guard
                let groups = try? SparseTensorGroups(
                    tensors: header.tensors,
                    path: frame,
                    shapeBytes: { shape in
                        let dims = takenDimensions(ofShape: shape.name, byName: byName)
                        taken[shape.name] = dims
                        return dims
                    }
                )
            else { return nil }
            var largest = 0
            for case .sparse(let group) in groups.items {
                largest = max(largest, StreamingShardSource.span(of: group).count)
            }
            guard largest <= streamingWindowLimit else { return nil }
            let started = BackgroundFrameDecoder(
                reader: reader,
                size: size,
                from: header.dataStart,
                window: max(minimumWindow, largest)
            )
            decoder = started
            let source = StreamingShardSource(decoder: started, dataStart: header.dataStart, taken: taken)
            let layout = try densify(header: header, groups: groups, path: frame, to: destination, source: source)
            try started.finish()
            return layout
        } catch is StreamingShardSource.ShapeNotAsTaken {
            try decoder?.finish()
            return nil
        } catch {
            // A frame that fails its own checks is reported as such, whatever its content looked like.
            if let decoder { try decoder.finish() } else { try SkipBuffer().finish(reader) }
            throw error
        }
    }

    /// The 16 bytes of `[rows, cols]` (I64, little-endian) that the members of the group of the
    /// `.shape` tensor `name` suggest, or no bytes when they do not.
    private static func takenDimensions(ofShape name: String, byName: [String: TensorInfo]) -> [UInt8] {
        let module = String(name.dropLast(".shape".count))
        guard let bitmask = byName[module + ".bitmask"], bitmask.shape.count == 2,
            let compressed = byName[module + ".compressed"]
        else { return [] }
        let rows = bitmask.shape[0]
        let cols =
            byName[module + ".row_offsets"] == nil && compressed.shape.count == 2
            ? compressed.shape[1].multipliedReportingOverflow(by: 2).partialValue
            : bitmask.shape[1].multipliedReportingOverflow(by: 8).partialValue
        return [Int64(rows), Int64(cols)].flatMap { value in
            withUnsafeBytes(of: value.littleEndian) { Array($0) }
        }
    }

    /// Writes the dense form of the sparse safetensors file `sparseFile` to the new file `destination`.
    /// - Returns: the dense file's layout.
    /// - Throws: `SparseFormatError` about the file's structure, or I/O.
    @discardableResult
    public static func densify(sparseFile: String, to destination: String) throws -> SafeTensorsLayout {
        let file = try FileIO.safeTensors { try SafeTensorsFile(path: sparseFile) }
        let groups = try SparseTensorGroups(file: file)
        return try densify(
            header: file.header,
            groups: groups,
            path: file.path,
            to: destination,
            source: MappedShardSource(file: file)
        )
    }

    /// Writes the dense form of `groups`, the items of a sparse safetensors file with `header`, their
    /// bytes read from `source`.
    private static func densify(
        header: Header,
        groups: SparseTensorGroups,
        path: String,
        to destination: String,
        source: some ShardSource
    ) throws -> SafeTensorsLayout {
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
                try source.write(info, to: sink)
            case .sparse(let group):
                let target = UnsafeMutableRawBufferPointer(rebasing: buffers[slot][0..<group.denseBytes])
                slot = 1 - slot
                guard let previous = pending else {
                    try source.acquire(group)
                    try SparseTensorGroups.expand(group, path: path, into: target, bytes: source.bytes(of:))
                    pending = target
                    continue
                }
                var expanded: Result<Void, any Error> = .success(())
                var written: Result<Void, any Error> = .success(())
                Parallel.forEachItem(0..<2) { part in
                    if part == 0 {
                        expanded = Result {
                            try source.acquire(group)
                            try SparseTensorGroups.expand(group, path: path, into: target, bytes: source.bytes(of:))
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
