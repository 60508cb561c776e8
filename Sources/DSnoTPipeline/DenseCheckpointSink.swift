// SPDX-License-Identifier: Apache-2.0
// DenseCheckpointSink: writes the pruned model as a normal checkpoint (zeros in place, same layout).

public import DSnoTCore
import Foundation
public import SafeTensors

/// Writes a dense checkpoint into a directory: the input's shards, tensor names, dtypes and order,
/// with pruned weights zeroed in place, plus the input's other files (config, tokenizer, index).
///
/// Each shard is a `SafeTensorsRandomAccessWriter`, so tensors may arrive in any order; `finish()`
/// commits every shard (fsync + no-replace rename) once all tensors arrived. The directory is
/// usually a staging directory that the caller publishes atomically.
///
/// ```swift
/// let sink = try DenseCheckpointSink(input: checkpoint, directory: staging)
/// let report = try pruner.run(model: model, source: checkpoint, calibration: set, sink: sink)
/// try sink.finish()
/// ```
public final class DenseCheckpointSink: PrunedTensorSink {
    private let writers: [String: SafeTensorsRandomAccessWriter]  // by shard file name
    private let shardOfTensor: [String: String]
    private let input: Checkpoint
    private let directory: String
    private var finished = false

    /// Files copied unchanged from the input directory when present: the config, the index (the layout
    /// is the input's) and `Checkpoint.companionFiles`.
    public static let copiedFiles = ["config.json"] + Checkpoint.companionFiles + [Checkpoint.indexFileName]

    /// Prepares one writer per input shard inside `directory` (which must exist).
    /// - Throws: `SafeTensorsError` if a shard file cannot be created.
    public init(input: Checkpoint, directory: String) throws {
        self.input = input
        self.directory = directory
        var writers: [String: SafeTensorsRandomAccessWriter] = [:]
        var shardOfTensor: [String: String] = [:]
        for (shard, file) in zip(input.shards, input.files) {
            let declarations = file.header.tensors.map { TensorDeclaration($0) }
            writers[shard] = try SafeTensorsRandomAccessWriter(
                path: directory + "/" + shard,
                declarations: declarations,
                metadata: file.header.metadata
            )
            for tensor in file.header.tensors { shardOfTensor[tensor.name] = shard }
        }
        self.writers = writers
        self.shardOfTensor = shardOfTensor
    }

    deinit {
        if !finished { for writer in writers.values { writer.abort() } }
    }

    public func write(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer, pruned: Bool) throws {
        guard let shard = shardOfTensor[name], let writer = writers[shard] else {
            throw SafeTensorsError.tensorNotFound(name: name, file: input.directory)
        }
        try writer.write(name: name, bytes: bytes)
    }

    /// Commits every shard and copies the companion files.
    /// - Throws: `SafeTensorsError` when a tensor never arrived or an I/O step failed.
    public func finish() throws {
        for shard in writers.keys.sorted() { try writers[shard]?.commit() }
        finished = true
        let manager = FileManager.default
        for name in Self.copiedFiles {
            let source = input.directory + "/" + name
            guard manager.fileExists(atPath: source) else { continue }
            try manager.copyItem(atPath: source, toPath: directory + "/" + name)
        }
    }

    /// Removes every temporary shard file.
    public func abort() {
        for writer in writers.values { writer.abort() }
        finished = true
    }
}
