// SPDX-License-Identifier: Apache-2.0
// SparseOutputSource: a published sparse output as the model engine's TensorSource (dense tensors, decoded on demand).

public import DSnoTCore
public import SafeTensors
public import SparseFormat

/// A sparse output directory (bitmask + LZ4 shards) seen by the model engine as a dense checkpoint:
/// each tensor is decoded by `SparseOutputReader` when the engine reads it, one at a time, and
/// dropped again when the engine releases it. `dsnotctl eval` runs on it directly.
///
/// ```swift
/// let tensors = try SparseOutputSource.tensors(ofModelDirectory: "/srv/dsnot/outbox/llama-wanda-u50-dsnot")
/// let model = try ModelRegistry.load(directory: "/srv/dsnot/outbox/llama-wanda-u50-dsnot", tensors: tensors)
/// ```
public struct SparseOutputSource: TensorSource {
    /// The reader that decodes the shards.
    public let reader: SparseOutputReader

    /// Opens and checks `directory` (`SparseOutputReader.init(directory:)`: manifest, SHA-256 of
    /// every listed file, one validating pass over every shard frame).
    /// - Throws: `SparseFormatError`.
    public init(directory: String) throws {
        reader = try SparseOutputReader(directory: directory)
    }

    /// The tensors of a model directory: a `SparseOutputSource` when it is a sparse output
    /// (`SparseOutputReader.isSparseOutput`), else the dense (possibly sharded) `Checkpoint`.
    /// - Throws: `SparseFormatError` for a sparse output, `SafeTensorsError` for a checkpoint.
    public static func tensors(ofModelDirectory directory: String) throws -> any TensorSource {
        if SparseOutputReader.isSparseOutput(directory: directory) {
            return try SparseOutputSource(directory: directory)
        }
        return try Checkpoint(directory: directory)
    }

    public var location: String { reader.directory }
    public var tensorNames: [String] { reader.tensorNames }

    public func tensorInfo(named name: String) -> TensorInfo? { reader.info(named: name) }

    public func withTensorBytes<R>(named name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try reader.withDenseBytes(named: name, body)
    }

    /// The engine has converted the tensor: its decoded bytes are freed.
    public func releasePages(named name: String) { reader.release(named: name) }
}
