// SPDX-License-Identifier: Apache-2.0
// DecoderModel+Forward: the whole-model forward pass for a batch of sequences, streamed block by block.

import DSnoTSupport

extension DecoderBlock {
    /// Runs this block over every sequence of `hidden` in place, one sequence per core
    /// (`Parallel.forEach`); each result is, bit for bit, `forward(_:)` of that sequence alone.
    /// - Parameter hidden: one `(L_i, hiddenSize)` matrix per sequence; replaced by the block's outputs.
    public func forward(sequences hidden: inout [Matrix]) {
        hidden.withUnsafeMutableBufferPointer { h in
            Parallel.forEach(h.indices) { i in h[i] = forward(h[i]) }
        }
    }
}

extension DecoderModel {
    /// Runs every block over `hidden` in place, loading each block once; the sequences of a block run
    /// one per core (`Parallel.forEach`).
    /// - Parameters:
    ///   - hidden: one `(L_i, hiddenSize)` matrix per sequence; replaced by the last block's outputs.
    ///   - compute: the linear layers' GEMM input format (`ComputeFormat`; the caller resolves
    ///     `effective` first).
    ///   - progress: called after each block with `(blocksDone, blockCount)`.
    /// - Throws: `ModelLoadError` from loading a block.
    public func runBlocks(
        _ hidden: inout [Matrix],
        compute: ComputeFormat = .fp32,
        progress: ((Int, Int) -> Void)? = nil
    ) throws {
        for b in 0..<blockCount {
            var block = try loadBlock(b)  // fp32 weights of block b only; released at the next iteration
            block.setCompute(compute)
            block.forward(sequences: &hidden)
            progress?(b + 1, blockCount)
        }
    }

    /// Logits of one sequence: embeddings → blocks → final norm → LM head.
    /// - Returns: `(tokens.count, vocabularySize)`.
    /// - Throws: `ModelLoadError`.
    public func logits(tokens: [Int]) throws -> Matrix {
        var hidden = [try embed(tokens: tokens)]
        try runBlocks(&hidden)
        return try finalLogits(hidden[0])
    }
}
