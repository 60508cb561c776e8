// SPDX-License-Identifier: Apache-2.0
// SparseOutputReader+Decode: the opening scan of a shard frame, and forward decoding of one tensor.

import SafeTensors

extension SparseOutputReader {
    /// What the opening scan of one shard frame found.
    struct Scan {
        var shard: Shard
        var groups: SparseTensorGroups
        /// Bytes read during the scan: every 16-byte `.shape` candidate and the small tensors that
        /// fit the resident budget (2-byte tensors of a byte-plane shard already joined).
        var captured: [String: [UInt8]]
    }

    /// Decompresses the frame at `path` once, start to end: validates the frame and the safetensors
    /// header, keeps the `.shape` values and the tensors of at most `limit` bytes (charged to `budget`), resolves the
    /// sparse groups.
    static func scan(path: String, limit: Int, budget: inout Int) throws -> Scan {
        let frame = try LZ4FrameReader(path: path)
        guard let size = Int(exactly: frame.contentSize) else {
            throw SparseFormatError.invalidOutput(path: path, reason: "content size \(frame.contentSize) does not fit")
        }
        // Bounds against the content size come after the frame's end is validated: a frame that lies
        // about its size is reported as such, not as a safetensors layout error.
        let opening = try frame.readSafeTensorsHeader(contentSize: size, path: path, checkingBounds: false)
        let header = opening.header
        let bytePlanes = path.hasSuffix(BytePlanes.frameSuffix)
        let marked = header.metadata[BytePlanes.metadataKey] == "2"
        guard bytePlanes == marked else {
            throw SparseFormatError.invalidOutput(
                path: path,
                reason: bytePlanes
                    ? "byte-plane shard without the '\(BytePlanes.metadataKey)' marker"
                    : "plain shard carrying the byte-plane marker '\(BytePlanes.metadataKey)'"
            )
        }
        let shard = Shard(
            path: path,
            contentSize: frame.contentSize,
            dataStart: header.dataStart,
            bytePlanes: bytePlanes
        )
        var captured: [String: [UInt8]] = [:]
        let skip = SkipBuffer()
        for info in header.tensors {
            let isShape = info.name.hasSuffix(".shape") && info.byteCount == 16
            let fits = info.byteCount <= limit && info.byteCount <= budget
            guard isShape || fits else { continue }
            try skip.advance(frame, to: UInt64(header.dataStart + info.dataOffsets.lowerBound))
            var bytes = try frame.readExactly(info.byteCount)
            if bytePlanes && info.dtype.byteWidth == 2 { bytes = bytes.withUnsafeBytes { BytePlanes.join($0) } }
            captured[info.name] = bytes
            if !isShape { budget -= info.byteCount }
        }
        // Read to the end: liblz4 checks the content checksum, the reader the size and trailing bytes.
        try skip.finish(frame)
        try opening.checkBounds(contentSize: size, path: path)
        let groups = try SparseTensorGroups(tensors: header.tensors, path: path) { info in
            guard let bytes = captured[info.name] else {
                throw SparseFormatError.invalidSparseTensor(file: path, tensor: info.name, reason: "not 16 bytes")
            }
            return bytes
        }
        // Group members need not stay resident: they are decoded with their group.
        for case .sparse(let group) in groups.items {
            for member in group.members {
                if let bytes = captured.removeValue(forKey: member.name), member.name != group.shape.name {
                    budget += bytes.count
                }
            }
        }
        return Scan(shard: shard, groups: groups, captured: captured)
    }

    /// The dense bytes of `entry`, decompressed from its shard (called with `lock` held).
    func decode(_ entry: Entry) throws -> [UInt8] {
        let shard = shards[entry.shard]
        switch entry.storage {
        case .plain(let info):
            let buffer = try readMembers([info], of: entry)
            return buffer.bytes
        case .sparse(let group):
            let buffer = try readMembers(group.members, of: entry)
            return try buffer.bytes.withUnsafeBytes { raw in
                try SparseTensorGroups.denseBytes(of: group, path: shard.path) { info in
                    UnsafeRawBufferPointer(rebasing: raw[buffer.ranges[info.name] ?? 0..<0])
                }
            }
        }
    }

    /// Reads the stored bytes of `members` (one tensor's) into one buffer, in data order.
    private func readMembers(_ members: [TensorInfo], of entry: Entry) throws -> (
        bytes: [UInt8], ranges: [String: Range<Int>]
    ) {
        let shard = shards[entry.shard]
        let sorted = members.sorted { $0.dataOffsets.lowerBound < $1.dataOffsets.lowerBound }
        var ranges: [String: Range<Int>] = [:]
        var total = 0
        for member in sorted {
            ranges[member.name] = total..<(total + member.byteCount)
            total += member.byteCount
        }
        guard total > 0 else { return ([], ranges) }
        let (reader, jumpedBack) = try frame(
            for: entry,
            at: UInt64(shard.dataStart + (sorted.first?.dataOffsets.lowerBound ?? 0))
        )
        // A read behind the previous one is random access (the tied LM head after the last block):
        // the frame is not kept open after it, so its LZ4 buffers are not held while the engine works.
        defer { if jumpedBack { state.frame = nil } }
        let skip = SkipBuffer()
        var bytes = [UInt8](repeating: 0, count: total)
        try bytes.withUnsafeMutableBytes { whole in
            for member in sorted {
                try skip.advance(reader, to: UInt64(shard.dataStart + member.dataOffsets.lowerBound))
                let range = ranges[member.name] ?? 0..<0
                let slot = UnsafeMutableRawBufferPointer(rebasing: whole[range])
                try Self.readFully(reader, into: slot, tensor: entry.info.name)
                if shard.bytePlanes && member.dtype.byteWidth == 2 {
                    let joined = BytePlanes.join(UnsafeRawBufferPointer(slot))
                    joined.withUnsafeBytes { slot.copyMemory(from: $0) }
                }
            }
        }
        return (bytes, ranges)
    }

    /// The open frame of the entry's shard positioned at or before `offset` (re-opened when the
    /// current one is another shard's or already past `offset`; `jumpedBack` in the latter case).
    private func frame(for entry: Entry, at offset: UInt64) throws -> (reader: LZ4FrameReader, jumpedBack: Bool) {
        var jumpedBack = false
        if let open = state.frame, open.shard == entry.shard {
            if open.reader.bytesOut <= offset { return (open.reader, false) }
            jumpedBack = true
        }
        state.frame = nil
        let shard = shards[entry.shard]
        let reader = try LZ4FrameReader(path: shard.path)
        guard reader.contentSize == shard.contentSize else {
            throw SparseFormatError.tensorUnreadable(
                file: shard.path,
                tensor: entry.info.name,
                reason: "the frame now declares \(reader.contentSize) content bytes, \(shard.contentSize) when opened"
            )
        }
        state.frame = (entry.shard, reader)
        return (reader, jumpedBack)
    }

    /// Fills `destination` from the frame.
    /// - Throws: `SparseFormatError.tensorUnreadable` when the frame ends first.
    static func readFully(_ frame: LZ4FrameReader, into destination: UnsafeMutableRawBufferPointer, tensor: String)
        throws
    {
        var filled = 0
        while filled < destination.count {
            let got = try frame.read(into: UnsafeMutableRawBufferPointer(rebasing: destination[filled...]))
            guard got > 0 else {
                throw SparseFormatError.tensorUnreadable(
                    file: frame.path,
                    tensor: tensor,
                    reason:
                        "the frame ends after \(frame.bytesOut) content bytes, the tensor needs \(destination.count - filled) more"
                )
            }
            filled += got
        }
    }
}

/// A 1 MiB buffer for decompressing and discarding the bytes between two tensors.
struct SkipBuffer: ~Copyable {
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)

    deinit { buffer.deallocate() }

    /// Decompresses and discards until the frame's position is `offset`.
    /// - Throws: `SparseFormatError.truncatedFrame` when the frame ends first, or any frame error.
    func advance(_ frame: LZ4FrameReader, to offset: UInt64) throws {
        while frame.bytesOut < offset {
            let want = Int(min(UInt64(buffer.count), offset - frame.bytesOut))
            let got = try frame.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
            if got == 0 { throw SparseFormatError.truncatedFrame(file: frame.path, decompressedBytes: frame.bytesOut) }
        }
    }

    /// Decompresses and discards the rest of the frame, so that the reader validates its end
    /// (content checksum, declared size, no trailing bytes).
    func finish(_ frame: LZ4FrameReader) throws {
        while !frame.isFinished { _ = try frame.read(into: buffer) }
    }
}
