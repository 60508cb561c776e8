// SPDX-License-Identifier: Apache-2.0
// StreamingShardSource: a sparse shard's tensors read from its LZ4 frame as a BackgroundFrameDecoder decodes it.

import SafeTensors

/// A sparse shard read from its LZ4 frame while a `BackgroundFrameDecoder` decodes it into a window:
/// a group's members (all of `span(of:)`) are in the window from `acquire` to the next call; a plain
/// tensor is written `SparseUnpacker.plainPiece` bytes at a time as they arrive, so it may be larger
/// than the window.
///
/// `acquire` also checks the group's `.shape` against the dimensions the dense header was written
/// with (`taken`), throwing `ShapeNotAsTaken` when they differ.
final class StreamingShardSource: ShardSource {
    /// A group's `.shape` differed from the dimensions taken for the dense header.
    struct ShapeNotAsTaken: Error {}

    private let decoder: BackgroundFrameDecoder
    private let dataStart: Int
    private let taken: [String: [UInt8]]
    /// The group last acquired: its bytes, and the content offset of their first.
    private var window = UnsafeRawBufferPointer(start: nil, count: 0)
    private var windowStart = 0

    /// - Parameters:
    ///   - dataStart: the content offset of the shard's data section.
    ///   - taken: the 16 bytes of `[rows, cols]` taken for each group, by `.shape` tensor name.
    init(decoder: BackgroundFrameDecoder, dataStart: Int, taken: [String: [UInt8]]) {
        self.decoder = decoder
        self.dataStart = dataStart
        self.taken = taken
    }

    /// The data-section byte range from the group's first member to the end of its last.
    static func span(of group: SparseTensorGroups.Group) -> Range<Int> {
        let members = group.members
        return members.map(\.dataOffsets.lowerBound).min()!..<members.map(\.dataOffsets.upperBound).max()!
    }

    func acquire(_ group: SparseTensorGroups.Group) throws {
        let span = Self.span(of: group)
        window = try decoder.bytes((dataStart + span.lowerBound)..<(dataStart + span.upperBound))
        windowStart = dataStart + span.lowerBound
        guard bytes(of: group.shape).elementsEqual(taken[group.shape.name] ?? []) else { throw ShapeNotAsTaken() }
    }

    func bytes(of info: TensorInfo) -> UnsafeRawBufferPointer {
        let offset = dataStart + info.dataOffsets.lowerBound - windowStart
        return UnsafeRawBufferPointer(rebasing: window[offset..<(offset + info.byteCount)])
    }

    func write(_ info: TensorInfo, to sink: FileSink) throws {
        var offset = dataStart + info.dataOffsets.lowerBound
        let end = dataStart + info.dataOffsets.upperBound
        while offset < end {
            let next = min(end, offset + min(SparseUnpacker.plainPiece, decoder.window))
            try sink.write(try decoder.bytes(offset..<next))
            offset = next
        }
    }
}
