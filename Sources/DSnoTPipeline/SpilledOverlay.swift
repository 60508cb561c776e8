// SPDX-License-Identifier: Apache-2.0
// SpilledOverlay and TeeSink: evaluate the pruned model in bounded memory while the output is written.

import DSnoTCore
import Foundation
import SafeTensors
import SparseFormat

/// Receives the pruned tensors like any sink, but keeps them in a temporary safetensors file (not in
/// memory), and then serves the pruned model — base checkpoint plus those tensors — as a `TensorSource`
/// for the perplexity evaluation. The file is removed by `remove()`.
final class SpilledOverlay: PrunedTensorSink, TensorSource, @unchecked Sendable {
    // @unchecked: filled by the synchronous pipeline, then read-only.
    private let base: any TensorSource
    private let path: String
    private let writer: SafeTensorsRandomAccessWriter
    private var spill: SafeTensorsFile?

    /// - Parameter declarations: the prunable tensors (names, dtypes, shapes), known before the run.
    init(base: any TensorSource, path: String, declarations: [TensorDeclaration]) throws {
        self.base = base
        self.path = path
        writer = try SafeTensorsRandomAccessWriter(path: path, declarations: declarations)
    }

    func write(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer, pruned: Bool) throws {
        if pruned { try writer.write(name: name, bytes: bytes) }
    }

    /// Commits the spill file and maps it.
    func seal() throws {
        try writer.commit()
        spill = try SafeTensorsFile(path: path)
    }

    func remove() {
        writer.abort()
        spill = nil
        try? FileManager.default.removeItem(atPath: path)
    }

    var location: String { base.location + " (pruned)" }
    var tensorNames: [String] { base.tensorNames }

    func tensorInfo(named name: String) -> TensorInfo? { spill?.info(ifPresent: name) ?? base.tensorInfo(named: name) }

    func withTensorBytes<R>(named name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if let spill, let info = spill.info(ifPresent: name) { return try body(spill.rawBytes(of: info)) }
        return try base.withTensorBytes(named: name, body)
    }
}

/// Sends every tensor to several sinks.
final class TeeSink: PrunedTensorSink {
    let sinks: [any PrunedTensorSink]
    init(_ sinks: [any PrunedTensorSink]) { self.sinks = sinks }

    func write(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer, pruned: Bool) throws {
        for sink in sinks { try sink.write(name: name, dtype: dtype, shape: shape, bytes: bytes, pruned: pruned) }
    }
}

/// The sparse-format writer as the pipeline's sink (SparseFormat knows nothing of DSnoTCore).
final class SparseSink: PrunedTensorSink {
    let writer: SparseCheckpointWriter
    init(_ writer: SparseCheckpointWriter) { self.writer = writer }

    func write(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer, pruned: Bool) throws {
        try writer.write(name: name, dtype: dtype, shape: shape, bytes: bytes, pruned: pruned)
    }
}
