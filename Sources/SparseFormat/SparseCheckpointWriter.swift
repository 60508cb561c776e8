// SPDX-License-Identifier: Apache-2.0
// SparseCheckpointWriter: streams pruned tensors into sparse, LZ4-framed shards that follow the input's sharding.

public import SafeTensors
import SystemPackage

/// The input checkpoint's layout, which the output keeps: shard file names and, for each, the
/// names of the tensors it holds.
public struct OutputPlan: Sendable, Equatable {
    /// One input shard.
    public struct Shard: Sendable, Equatable {
        /// The input shard's file name, e.g. `model-00001-of-00002.safetensors`.
        public var fileName: String
        /// Names of the tensors it holds (any order).
        public var tensors: [String]
        public init(fileName: String, tensors: [String]) {
            self.fileName = fileName
            self.tensors = tensors
        }
    }

    public var shards: [Shard]
    /// Whether to write `model.safetensors.index.json` (the input had one).
    public var writesIndex: Bool

    /// - Parameters:
    ///   - shards: the input's shards.
    ///   - writesIndex: whether the output gets an index (defaults to "more than one shard").
    public init(shards: [Shard], writesIndex: Bool? = nil) {
        self.shards = shards
        self.writesIndex = writesIndex ?? (shards.count > 1)
    }
}

/// Writes a sparse output directory, tensor by tensor, in whatever order the pruning pipeline
/// produces them (block by block).
///
/// Each pruned weight `X.weight` becomes `X.shape`, `X.compressed`, `X.bitmask` and (unstructured)
/// `X.row_offsets`; every other tensor is stored unchanged. Because the size of `.compressed` is
/// only known after pruning, each shard's encoded tensors are spooled to a file in the staging
/// directory; when a shard's last tensor arrives, its safetensors header and the spooled data go
/// through an `LZ4FrameWriter` into `<shard>.lz4` and the spool is deleted. Memory: one tensor's
/// encoding plus the LZ4 buffers.
///
/// ```swift
/// let writer = try SparseCheckpointWriter(directory: staging, plan: plan, structure: .unstructured)
/// for each tensor: try writer.write(name: n, dtype: .bf16, shape: [r, c], bytes: b, pruned: true)
/// let manifest = try writer.finish(inputConfig: configBytes, copying: tokenizerFiles, report: reportJSON)
/// ```
public final class SparseCheckpointWriter {
    /// The (staging) directory written into.
    public let directory: String
    public let plan: OutputPlan
    public let structure: SparsityStructure
    public let level: LZ4Level
    /// Whether 2-byte tensors are stored as byte planes (`BytePlanes`; not `lz4 -d`-compatible).
    public let bytePlanes: Bool

    struct ShardState {
        var remaining: Set<String>
        var entries: [SafeTensorsLayout.Entry] = []
        var spool: FileSink?
        var safetensorsBytes: UInt64 = 0
        var lz4Bytes: UInt64 = 0
        var dataBytes: UInt64 = 0
        var done = false
    }

    private var shards: [ShardState]
    private var shardOfTensor: [String: Int] = [:]
    /// Output tensor name → output shard file name, for the index.
    private var weightMap: [String: String] = [:]
    private var targets: [String] = []
    private var denseBytes: UInt64 = 0
    private var prunedElements: UInt64 = 0
    private var prunedNonZeros: UInt64 = 0

    /// - Parameters:
    ///   - directory: an existing, empty directory (the publisher's staging directory).
    ///   - plan: the input's sharding.
    ///   - structure: unstructured (`sparse-bitmask`) or 2:4 (`sparse-24-bitmask`).
    ///   - level: LZ4 level.
    ///   - bytePlanes: opt-in byte-plane variant (smaller, but only `unpack` restores it).
    /// - Throws: `SparseFormatError.unexpectedTensor` when the plan names a tensor twice.
    public init(
        directory: String,
        plan: OutputPlan,
        structure: SparsityStructure,
        level: LZ4Level = .fast,
        bytePlanes: Bool = false
    ) throws {
        self.directory = directory
        self.plan = plan
        self.structure = structure
        self.level = level
        self.bytePlanes = bytePlanes
        shards = plan.shards.map { ShardState(remaining: Set($0.tensors)) }
        for (index, shard) in plan.shards.enumerated() {
            for name in shard.tensors {
                guard shardOfTensor.updateValue(index, forKey: name) == nil else {
                    throw SparseFormatError.unexpectedTensor(tensor: name, reason: "planned in two shards")
                }
            }
        }
    }

    /// The output file name of an input shard: `<shard>.lz4`, or `<shard>.planes.lz4` for byte planes.
    public static func outputName(ofShard fileName: String, bytePlanes: Bool = false) -> String {
        fileName + (bytePlanes ? BytePlanes.frameSuffix : ".lz4")
    }

    /// The module name a pruned weight is stored under (`.weight` removed, as compressed-tensors does).
    public static func moduleName(ofWeight name: String) -> String {
        name.hasSuffix(".weight") ? String(name.dropLast(".weight".count)) : name
    }

    /// Adds one tensor.
    /// - Parameters:
    ///   - name: the input tensor name.
    ///   - dtype, shape: as in the input.
    ///   - bytes: the tensor's dense bytes after pruning (pruned positions `+0`).
    ///   - pruned: whether this is a pruned weight (stored sparse; must be 2-D and named `….weight`).
    /// - Throws: `SparseFormatError.unexpectedTensor` (not planned, written twice, wrong byte size,
    ///   not 2-D), `.notTwoFour`, I/O errors.
    public func write(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer, pruned: Bool) throws {
        guard let index = shardOfTensor[name] else {
            throw SparseFormatError.unexpectedTensor(tensor: name, reason: "not in the output plan")
        }
        guard shards[index].remaining.remove(name) != nil else {
            throw SparseFormatError.unexpectedTensor(tensor: name, reason: "written twice")
        }
        guard let byteCount = TensorInfo.checkedByteCount(shape: shape, dtype: dtype), byteCount == bytes.count else {
            throw SparseFormatError.unexpectedTensor(
                tensor: name,
                reason: "shape \(shape) × \(dtype.rawValue) does not match \(bytes.count) bytes"
            )
        }
        denseBytes += UInt64(byteCount)
        if pruned {
            guard name.hasSuffix(".weight") else {
                throw SparseFormatError.unexpectedTensor(
                    tensor: name,
                    reason: "a pruned tensor's name must end in .weight"
                )
            }
            guard shape.count == 2 else {
                throw SparseFormatError.unexpectedTensor(
                    tensor: name,
                    reason: "a pruned weight must be 2-D, got \(shape)"
                )
            }
            try writeSparse(name: name, dtype: dtype, rows: shape[0], cols: shape[1], bytes: bytes, shard: index)
        } else {
            try append(.init(name: name, dtype: dtype, shape: shape, byteCount: bytes.count), bytes, shard: index)
        }
        if shards[index].remaining.isEmpty { try finishShard(index) }
    }

    private func writeSparse(
        name: String,
        dtype: DType,
        rows: Int,
        cols: Int,
        bytes: UnsafeRawBufferPointer,
        shard: Int
    )
        throws
    {
        let width = dtype.byteWidth
        let packed: PackedSparseTensor
        switch structure {
        case .unstructured: packed = SparseBitmask.pack(dense: bytes, rows: rows, cols: cols, width: width)
        case .twoFour:
            packed = try Sparse24Bitmask.pack(dense: bytes, rows: rows, cols: cols, width: width, tensor: name)
        }
        let module = Self.moduleName(ofWeight: name)
        targets.append(module)
        prunedElements += UInt64(rows * cols)
        prunedNonZeros += UInt64(packed.nonZeroCount)
        let shapeValues = [Int64(rows), Int64(cols)]
        let rowBytes = SparseBitmask.bitmaskRowBytes(cols: cols)
        let is24 = structure == .twoFour
        try shapeValues.withUnsafeBytes {
            try append(
                .init(name: module + ".shape", dtype: .i64, shape: is24 ? [2, 1] : [2], byteCount: 16),
                $0,
                shard: shard
            )
        }
        try packed.compressed.withUnsafeBytes {
            let shape = is24 ? [rows, cols / 2] : [packed.storedCount]
            try append(
                .init(name: module + ".compressed", dtype: dtype, shape: shape, byteCount: $0.count),
                $0,
                shard: shard
            )
        }
        try packed.bitmask.withUnsafeBytes {
            try append(
                .init(name: module + ".bitmask", dtype: .u8, shape: [rows, rowBytes], byteCount: $0.count),
                $0,
                shard: shard
            )
        }
        if !is24 {
            try packed.rowOffsets.withUnsafeBytes {
                try append(
                    .init(name: module + ".row_offsets", dtype: .i64, shape: [rows], byteCount: $0.count),
                    $0,
                    shard: shard
                )
            }
        }
    }

    private func append(_ entry: SafeTensorsLayout.Entry, _ bytes: UnsafeRawBufferPointer, shard: Int) throws {
        if shards[shard].spool == nil {
            shards[shard].spool = try FileSink(creating: spoolPath(shard))
        }
        if bytePlanes && entry.dtype.byteWidth == 2 {
            try BytePlanes.split(bytes).withUnsafeBytes { try shards[shard].spool!.write($0) }
        } else {
            try shards[shard].spool!.write(bytes)
        }
        shards[shard].entries.append(entry)
        weightMap[entry.name] = plan.shards[shard].fileName
    }

    private func spoolPath(_ shard: Int) -> String { directory + "/.spool-\(shard)" }

    /// Writes the shard's frame: header, then the spooled data, through one LZ4 frame.
    private func finishShard(_ index: Int) throws {
        let metadata = bytePlanes ? ["format": "pt", BytePlanes.metadataKey: "2"] : ["format": "pt"]
        let layout = try SafeTensorsLayout(entries: shards[index].entries, metadata: metadata)
        let outputPath =
            directory + "/" + Self.outputName(ofShard: plan.shards[index].fileName, bytePlanes: bytePlanes)
        let writer = try LZ4FrameWriter(
            sink: FileSink(creating: outputPath),
            contentSize: UInt64(layout.fileSize),
            level: level,
            file: outputPath
        )
        try layout.headerBytes.withUnsafeBytes { try writer.write($0) }
        if let spool = shards[index].spool {
            try spool.close()
            try FileIO.forEachChunk(of: spool.path) { try writer.write($0) }
            try FileIO.removeTree(spool.path)
        }
        let sink = try writer.finish()
        try sink.close()
        shards[index].spool = nil
        shards[index].entries = []
        shards[index].done = true
        shards[index].safetensorsBytes = UInt64(layout.fileSize)
        shards[index].lz4Bytes = writer.bytesOut
        shards[index].dataBytes = UInt64(layout.dataSize)
    }

    /// Zero fraction over the pruned tensors so far.
    public var globalSparsity: Double {
        prunedElements == 0 ? 0 : 1 - Double(prunedNonZeros) / Double(prunedElements)
    }

    /// Module names of the pruned weights written so far, in arrival order.
    public var targetModules: [String] { targets }

    /// The manifest without file hashes (for `finish`).
    func partialManifest() -> OutputManifest {
        let shardFigures = plan.shards.indices.map {
            OutputManifest.Shard(
                name: Self.outputName(ofShard: plan.shards[$0].fileName, bytePlanes: bytePlanes),
                safetensorsBytes: shards[$0].safetensorsBytes,
                lz4Bytes: shards[$0].lz4Bytes
            )
        }
        let sparse = shardFigures.reduce(0) { $0 + $1.safetensorsBytes }
        let lz4 = shardFigures.reduce(0) { $0 + $1.lz4Bytes }
        return OutputManifest(
            format: structure.formatName,
            sparsityStructure: structure.rawValue,
            lz4Level: level.name,
            bytePlanes: bytePlanes ? true : nil,
            targets: targets,
            shards: shardFigures,
            compression: .init(
                denseBytes: denseBytes,
                sparseBytes: sparse,
                lz4Bytes: lz4,
                ratio: lz4 == 0 ? 0 : Double(denseBytes) / Double(lz4),
                globalSparsity: globalSparsity
            ),
            files: []
        )
    }

    /// Checks that every planned tensor was written.
    func checkComplete() throws {
        for (index, shard) in shards.enumerated() where !shard.done {
            if shard.remaining.isEmpty {
                try finishShard(index)  // a shard with no tensors at all
            } else {
                throw SparseFormatError.missingTensors(
                    shard: plan.shards[index].fileName,
                    tensors: shard.remaining.sorted()
                )
            }
        }
    }

    /// The output's `model.safetensors.index.json` content: tensor → decompressed shard name.
    func indexObject() -> [String: Any] {
        let total = plan.shards.indices.reduce(UInt64(0)) { $0 + shards[$1].dataBytes }
        return ["metadata": ["total_size": total], "weight_map": weightMap]
    }
}
