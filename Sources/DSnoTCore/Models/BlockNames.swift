// SPDX-License-Identifier: Apache-2.0
// BlockNames: cross-checks between a checkpoint's per-block tensor names and the config's block count.

/// Helpers over `<prefix><b>.<local>` tensor names.
enum BlockNames {
    /// The block index of a tensor named `<prefix><b>.…`, or `nil`.
    static func blockIndex(of name: String, prefix: String) -> Int? {
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: ".") else { return nil }
        return Int(rest[rest.startIndex..<dot])
    }

    /// - Throws: `ModelLoadError.configContradictsTensors` when a tensor belongs to a block `≥ blockCount`.
    static func requireNoExtraBlocks(_ source: any TensorSource, prefix: String, blockCount: Int) throws {
        let extra = source.tensorNames.compactMap { blockIndex(of: $0, prefix: prefix) }.filter { $0 >= blockCount }
        if let highest = extra.max() {
            throw ModelLoadError.configContradictsTensors(
                reason: "num_hidden_layers is \(blockCount) but the checkpoint has tensors of block \(highest) "
                    + "('\(prefix)\(highest).…')"
            )
        }
    }
}
