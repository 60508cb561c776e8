// SPDX-License-Identifier: Apache-2.0
// SparseCheckpointWriter: streams pruned tensors into sparse, LZ4-framed shards that follow the input's sharding.

import DSnoTSupport
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
/// `X.row_offsets`; every other tensor is stored unchanged. A shard's safetensors header comes first
/// in its file but depends on every tensor of the shard (the size of `.compressed` is only known
/// after pruning), so each shard's encoded tensors are held until its last tensor arrives: in memory,
/// up to `bufferLimit` bytes over all shards; beyond that, a shard's held bytes spill to a spool file
/// (`.spool-<i>`) in the staging directory. When a shard is complete, its header and held bytes go in
/// one pass through an `LZ4FrameWriter`, which compresses its 4 MiB blocks on all cores and hashes
/// the frame file (SHA-256, for the manifest) as it writes it. Memory: `bufferLimit`, one tensor's
/// encoding and the frame writer's buffers (3 × `Parallel.workers` × 4 MiB).
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

    /// Default of `bufferLimit`: 256 MiB, enough to hold the shards of models up to about 500M
    /// parameters (bf16) in memory.
    public static let defaultBufferLimit = 256 << 20

    /// Bytes of encoded tensors held in memory over all unfinished shards before they spill to spool files.
    public let bufferLimit: Int

    struct ShardState {
        var remaining: Set<String>
        var entries: [SafeTensorsLayout.Entry] = []
        /// Encoded tensors held in memory, in order (empty once the shard spilled).
        var held: [[UInt8]] = []
        var heldBytes = 0
        var spool: FileSink?
        /// SHA-256 of the finished frame file.
        var digest: SHA256.Digest?
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
    /// Bytes held in memory over all shards.
    private var heldBytes = 0

    /// - Parameters:
    ///   - directory: an existing, empty directory (the publisher's staging directory).
    ///   - plan: the input's sharding.
    ///   - structure: unstructured (`sparse-bitmask`) or 2:4 (`sparse-24-bitmask`).
    ///   - level: LZ4 level.
    ///   - bytePlanes: opt-in byte-plane variant (smaller, but only `unpack` restores it).
    ///   - bufferLimit: bytes of encoded tensors held in memory before spilling to spool files.
    /// - Throws: `SparseFormatError.unexpectedTensor` when the plan names a tensor twice.
    public init(
        directory: String,
        plan: OutputPlan,
        structure: SparsityStructure,
        level: LZ4Level = .fast,
        bytePlanes: Bool = false,
        bufferLimit: Int = SparseCheckpointWriter.defaultBufferLimit
    ) throws {
        self.directory = directory
        self.bufferLimit = max(0, bufferLimit)
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
        try append(
            .init(
                name: module + ".compressed",
                dtype: dtype,
                shape: is24 ? [rows, cols / 2] : [packed.storedCount],
                byteCount: packed.compressed.count
            ),
            owned: packed.compressed,
            shard: shard
        )
        try append(
            .init(name: module + ".bitmask", dtype: .u8, shape: [rows, rowBytes], byteCount: packed.bitmask.count),
            owned: packed.bitmask,
            shard: shard
        )
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
        // One memcpy (`Array(bytes)` would go through the generic sequence path).
        let copy = [UInt8](unsafeUninitializedCapacity: bytes.count) { copy, count in
            if let source = bytes.baseAddress {
                copy.baseAddress!.initialize(from: source.assumingMemoryBound(to: UInt8.self), count: bytes.count)
            }
            count = bytes.count
        }
        try append(entry, owned: copy, shard: shard)
    }

    /// Adds a tensor whose encoding the writer may keep as it is (no copy).
    private func append(_ entry: SafeTensorsLayout.Entry, owned bytes: [UInt8], shard: Int) throws {
        if bytePlanes && entry.dtype.byteWidth == 2 {
            try hold(bytes.withUnsafeBytes { BytePlanes.split($0) }, shard: shard)
        } else {
            try hold(bytes, shard: shard)
        }
        shards[shard].entries.append(entry)
        weightMap[entry.name] = plan.shards[shard].fileName
    }

    /// Keeps a tensor's encoded bytes for the shard's frame: in memory while the writer holds at
    /// most `bufferLimit` bytes, else in the shard's spool file (its held bytes first).
    private func hold(_ bytes: [UInt8], shard: Int) throws {
        if shards[shard].spool == nil && heldBytes + bytes.count <= bufferLimit {
            shards[shard].held.append(bytes)
            shards[shard].heldBytes += bytes.count
            heldBytes += bytes.count
            return
        }
        if shards[shard].spool == nil {
            let spool = try FileSink(creating: spoolPath(shard))
            shards[shard].spool = spool
            for held in shards[shard].held { try held.withUnsafeBytes { try spool.write($0) } }
            heldBytes -= shards[shard].heldBytes
            shards[shard].held = []
            shards[shard].heldBytes = 0
        }
        try bytes.withUnsafeBytes { try shards[shard].spool!.write($0) }
    }

    private func spoolPath(_ shard: Int) -> String { directory + "/.spool-\(shard)" }

    /// Writes the shard's frame in one pass: header, then the held data, through one LZ4 frame
    /// that is compressed in parallel and hashed as it is written.
    private func finishShard(_ index: Int) throws {
        let metadata = bytePlanes ? ["format": "pt", BytePlanes.metadataKey: "2"] : ["format": "pt"]
        let layout = try SafeTensorsLayout(entries: shards[index].entries, metadata: metadata)
        let outputPath =
            directory + "/" + Self.outputName(ofShard: plan.shards[index].fileName, bytePlanes: bytePlanes)
        let writer = try LZ4FrameWriter(
            sink: FileSink(creating: outputPath, startingWriteback: false),
            contentSize: UInt64(layout.fileSize),
            level: level,
            file: outputPath
        )
        try layout.headerBytes.withUnsafeBytes { try writer.write($0) }
        for held in shards[index].held { try held.withUnsafeBytes { try writer.write($0) } }
        if let spool = shards[index].spool {
            try spool.close()
            try FileIO.forEachChunk(of: spool.path) { try writer.write($0) }
            try FileIO.removeTree(spool.path)
        }
        let sink = try writer.finish()
        try sink.close()
        heldBytes -= shards[index].heldBytes
        shards[index].held = []
        shards[index].heldBytes = 0
        shards[index].spool = nil
        shards[index].entries = []
        shards[index].done = true
        shards[index].digest = writer.digest
        shards[index].safetensorsBytes = UInt64(layout.fileSize)
        shards[index].lz4Bytes = writer.bytesOut
        shards[index].dataBytes = UInt64(layout.dataSize)
    }

    /// SHA-256 of each finished shard frame, by output file name (computed while writing it).
    var frameDigests: [String: SHA256.Digest] {
        var digests: [String: SHA256.Digest] = [:]
        for (index, shard) in shards.enumerated() {
            if let digest = shard.digest {
                digests[Self.outputName(ofShard: plan.shards[index].fileName, bytePlanes: bytePlanes)] = digest
            }
        }
        return digests
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
