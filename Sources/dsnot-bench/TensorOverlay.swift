// SPDX-License-Identifier: Apache-2.0
// TensorOverlay: a checkpoint with some tensors replaced in memory, and a sink that fills it.

import DSnoTCore
import SafeTensors

/// A `TensorSource` that serves replaced tensors from memory and everything else from a base
/// checkpoint: the pruned model, ready to evaluate, without writing it out first.
///
/// Memory: the replaced tensors in their checkpoint dtype (for a pruning run, the prunable weights).
/// Fine for evaluation benchmarks and small models; the daemon evaluates the written output instead.
///
/// ```swift
/// let overlay = TensorOverlay(base: checkpoint)
/// _ = try pruner.run(model: model, source: checkpoint, calibration: set, sink: overlay, logger: logger)
/// let pruned = try ModelRegistry.model(config: configData, tensors: overlay)
/// ```
final class TensorOverlay: TensorSource, PrunedTensorSink, @unchecked Sendable {
    // @unchecked: `replaced` is written only while a (synchronous) pruning run fills the overlay,
    // and read-only afterwards; callers do not share it across threads during the run.
    private let base: any TensorSource
    private var replaced: [String: (info: TensorInfo, bytes: [UInt8])] = [:]

    init(base: any TensorSource) { self.base = base }

    var location: String { base.location + " (with pruned tensors)" }
    var tensorNames: [String] { base.tensorNames }

    func tensorInfo(named name: String) -> TensorInfo? { replaced[name]?.info ?? base.tensorInfo(named: name) }

    func withTensorBytes<R>(named name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if let entry = replaced[name] { return try entry.bytes.withUnsafeBytes(body) }
        return try base.withTensorBytes(named: name, body)
    }

    /// Keeps pruned tensors; copied ones are served from the base (their bytes are identical).
    func write(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer, pruned: Bool) throws {
        guard pruned else { return }
        guard let original = base.tensorInfo(named: name) else {
            throw SafeTensorsError.tensorNotFound(name: name, file: base.location)
        }
        replaced[name] = (
            TensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: original.dataOffsets), Array(bytes)
        )
    }
}
