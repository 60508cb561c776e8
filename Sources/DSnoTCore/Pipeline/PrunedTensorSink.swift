// SPDX-License-Identifier: Apache-2.0
// PrunedTensorSink: where the sequential pipeline sends every tensor of the output checkpoint.

public import SafeTensors

/// Receives the output checkpoint's tensors from `SequentialPruner`, block by block.
///
/// Every tensor of the input checkpoint is written exactly once: the untouched ones (embeddings,
/// norms, LM head) first, then each decoder block's pruned linear weights as soon as that block is
/// done. Tensors therefore do not arrive in file order; a sink must accept any order. The dense sink
/// (DSnoTPipeline's `DenseCheckpointSink`) lays them into files shaped like the input; the sparse format
/// (SparseFormat's checkpoint writer) packs pruned weights as bitmasks and compresses with LZ4.
/// Publishing the finished directory is the caller's job.
public protocol PrunedTensorSink: AnyObject {
    /// Writes one tensor.
    /// - Parameters:
    ///   - name: the checkpoint tensor name.
    ///   - dtype: the input's dtype, kept in the output.
    ///   - shape: the tensor's shape.
    ///   - bytes: little-endian elements of `dtype`, `shape`'s element count of them.
    ///   - pruned: `true` for a pruned linear weight (zeros in place), `false` for a copied tensor.
    /// - Throws: I/O errors (disk full), or a contract error for an unknown or repeated tensor.
    func write(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer, pruned: Bool) throws
}
