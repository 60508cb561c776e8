// SPDX-License-Identifier: Apache-2.0
// ShardSource: where `unpack --dense` reads a sparse shard's tensors from, a mapped file or a decoding frame.

import SafeTensors

/// Where `SparseUnpacker` reads the tensors of a sparse safetensors shard while it writes the dense
/// one: a mapped file (`MappedShardSource`), or an LZ4 frame as it decodes (`StreamingShardSource`).
/// The unpacker takes the items in data order: `acquire` for a group, then `bytes(of:)` for its
/// members (possibly on another thread, never concurrently), or `write(_:to:)` for a plain tensor.
protocol ShardSource {
    /// Makes the member tensors of `group` readable through `bytes(of:)`, until the next call.
    /// - Throws: the source's error (a frame that fails, a `.shape` not as expected).
    func acquire(_ group: SparseTensorGroups.Group) throws

    /// The bytes of a member tensor of the group last acquired (exactly its byte count).
    func bytes(of info: TensorInfo) -> UnsafeRawBufferPointer

    /// Writes the plain tensor `info` to `sink`.
    /// - Throws: the source's error, or the sink's.
    func write(_ info: TensorInfo, to sink: FileSink) throws
}

/// A sparse safetensors file mapped whole: every tensor is readable at any time.
struct MappedShardSource: ShardSource {
    let file: SafeTensorsFile

    func acquire(_ group: SparseTensorGroups.Group) {}

    func bytes(of info: TensorInfo) -> UnsafeRawBufferPointer { file.rawBytes(of: info) }

    func write(_ info: TensorInfo, to sink: FileSink) throws { try sink.write(file.rawBytes(of: info)) }
}
