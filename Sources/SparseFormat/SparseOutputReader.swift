// SPDX-License-Identifier: Apache-2.0
// SparseOutputReader: a published sparse output read as dense tensors, one at a time, without unpacking to disk.

import Foundation
public import SafeTensors

/// Reads the tensors of a sparse output directory (bitmask + LZ4 shards, `docs/output-format.md`) in
/// their dense form, decoding one tensor at a time, so that `dsnotctl eval` needs no `unpack --dense`.
///
/// **Opening** checks the directory before any tensor is served:
/// 1. `dsnot-report.json` holds a valid `output` manifest whose file names are plain names;
/// 2. every file it lists has its recorded size and SHA-256 (read once, up front), and every shard
///    frame of the directory is listed;
/// 3. every shard frame is decompressed once, start to end (frame header, content size, content
///    checksum, no trailing bytes), its safetensors header is validated and its sparse groups
///    resolved from the `.shape` values; a dense name found in two shards is rejected.
///
/// **Reading** a tensor decompresses its shard's frame forward to the tensor's bytes (re-opening the
/// frame when the tensor lies before the current position) and expands a sparse group with the
/// same validating unpackers as `unpack --dense` (bitmask popcount, row offsets, 2:4 groups), so the
/// bytes are the ones `unpack --dense` writes, bit for bit. Small plain tensors (norms, biases: at
/// most `residentTensorLimit` bytes each, `residentBudget` in all) are kept from the opening scan.
///
/// Memory: one decoded tensor (kept until another is read or `release(named:)` drops it), the
/// group's stored bytes while it is expanded, one LZ4 frame reader (1 MiB input buffer plus
/// liblz4's 4 MiB block) and a 1 MiB skip buffer.
///
/// ```swift
/// let reader = try SparseOutputReader(directory: "/srv/dsnot/outbox/llama-wanda-u50-dsnot")
/// let norm = try reader.withDenseBytes(named: "model.norm.weight") { Array($0) }
/// ```
public final class SparseOutputReader: @unchecked Sendable {
    // @unchecked: the mutable decoding state (open frame, cached tensor) is guarded by `lock`.

    /// Largest plain tensor kept resident from the opening scan, by default.
    public static let residentTensorLimit = 1 << 20
    /// Bound on all resident plain tensors together.
    public static let residentBudget = 64 << 20

    /// The output directory.
    public let directory: String
    /// The manifest of `dsnot-report.json`.
    public let manifest: OutputManifest
    /// Every dense tensor name, shard by shard (manifest order), in data order within a shard.
    public let tensorNames: [String]

    /// One shard frame as found when the directory was opened.
    struct Shard {
        var path: String
        var contentSize: UInt64
        var dataStart: Int
        var bytePlanes: Bool
    }

    /// One dense tensor: its dense header entry and where its stored form lives.
    struct Entry {
        enum Storage {
            case plain(TensorInfo)
            case sparse(SparseTensorGroups.Group)
        }
        var info: TensorInfo
        var shard: Int
        var storage: Storage
    }

    /// What reading needs between calls, guarded by `lock`.
    struct State {
        var frame: (shard: Int, reader: LZ4FrameReader)?
        var cached: (name: String, bytes: [UInt8])?
    }

    let shards: [Shard]
    let entries: [String: Entry]
    let resident: [String: [UInt8]]
    let lock = NSLock()
    var state = State()

    /// Opens and checks `directory` (see the type's documentation).
    /// - Parameter residentTensorLimit: plain tensors up to this many bytes are kept from the opening
    ///   scan (0: every tensor is decoded when read).
    /// - Throws: `SparseFormatError`: `.invalidOutput` (no manifest, a bad file name, an unlisted or
    ///   missing shard, a tensor in two shards), `.checksumMismatch`, any frame error (`.truncatedFrame`,
    ///   `.frameChecksumMismatch`, …), `.safeTensors` for a bad header, `.invalidSparseTensor`/`.invalidShape`.
    public init(directory: String, residentTensorLimit: Int = SparseOutputReader.residentTensorLimit) throws {
        self.directory = directory
        manifest = try SparseVerifier.readManifest(directory)
        try SparseVerifier.checkListedFiles(directory, manifest: manifest)
        let isFrame = { (name: String) in SparseUnpacker.shardName(ofFrame: name) != nil }
        let frames = manifest.files.map(\.name).filter(isFrame)
        try SparseVerifier.checkNoUnlistedFiles(directory, manifest: manifest, checked: isFrame)
        guard !frames.isEmpty else {
            throw SparseFormatError.invalidOutput(
                path: directory,
                reason: "the manifest lists no *.safetensors.lz4 shard"
            )
        }
        var shards: [Shard] = []
        var entries: [String: Entry] = [:]
        var names: [String] = []
        var resident: [String: [UInt8]] = [:]
        var budget = Self.residentBudget
        for frame in frames {
            let scan = try Self.scan(path: directory + "/" + frame, limit: residentTensorLimit, budget: &budget)
            var offset = 0
            for item in scan.groups.items {
                let info = Self.denseInfo(of: item, at: offset)
                offset = info.dataOffsets.upperBound
                if let other = entries[info.name] {
                    throw SparseFormatError.invalidOutput(
                        path: directory,
                        reason: "tensor '\(info.name)' is in both \(shards[other.shard].path) and \(frame)"
                    )
                }
                switch item {
                case .plain(let stored):
                    entries[info.name] = Entry(info: info, shard: shards.count, storage: .plain(stored))
                    if let bytes = scan.captured[stored.name] { resident[info.name] = bytes }
                case .sparse(let group):
                    entries[info.name] = Entry(info: info, shard: shards.count, storage: .sparse(group))
                }
                names.append(info.name)
            }
            shards.append(scan.shard)
        }
        self.shards = shards
        self.entries = entries
        self.resident = resident
        tensorNames = names
    }

    /// Whether `directory` looks like a sparse output: it holds a shard frame (`*.safetensors.lz4`)
    /// or a `dsnot-report.json` with an `output` manifest. A dense checkpoint has neither.
    public static func isSparseOutput(directory: String) -> Bool {
        let names = (try? FileIO.listDirectory(directory)) ?? []
        if names.contains(where: { SparseUnpacker.shardName(ofFrame: $0) != nil }) { return true }
        guard names.contains(OutputManifest.reportFileName),
            let bytes = try? FileIO.readSmallFile(directory + "/" + OutputManifest.reportFileName),
            let object = try? SparseCheckpointWriter.jsonObject(bytes, what: OutputManifest.reportFileName)
        else { return false }
        return object["output"] != nil
    }

    /// The dense header entry of `name` (dtype, shape, and the offsets `unpack --dense` would give
    /// it in its shard), or `nil` when the output has no such tensor.
    public func info(named name: String) -> TensorInfo? { entries[name]?.info }

    /// Calls `body` with the dense bytes of `name` (little-endian elements of its dtype, zeros where
    /// the bitmask is clear), valid only inside `body`. The decoded tensor stays cached until another
    /// one is read or `release(named:)` drops it, so repeated reads (embedding rows) decode once.
    /// - Throws: `SparseFormatError.tensorUnreadable` for an unknown name or a shard that changed since
    ///   opening, any frame or sparse-structure error, or what `body` throws.
    public func withDenseBytes<R>(named name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if let bytes = resident[name] { return try bytes.withUnsafeBytes(body) }
        guard let entry = entries[name] else {
            throw SparseFormatError.tensorUnreadable(
                file: directory,
                tensor: name,
                reason: "not in any shard of the output (\(tensorNames.count) tensors)"
            )
        }
        let bytes = try cachedOrDecoded(name, entry)
        return try bytes.withUnsafeBytes(body)
    }

    /// Drops the cached dense bytes of `name`, if they are the cached ones.
    public func release(named name: String) {
        lock.lock()
        defer { lock.unlock() }
        if state.cached?.name == name { state.cached = nil }
    }

    private func cachedOrDecoded(_ name: String, _ entry: Entry) throws -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        if let cached = state.cached, cached.name == name { return cached.bytes }
        state.cached = nil  // free the previous tensor before decoding the next one
        let bytes: [UInt8]
        do {
            bytes = try decode(entry)
        } catch {
            state.frame = nil  // a frame that failed mid-way is not read further
            throw error
        }
        state.cached = (name, bytes)
        return bytes
    }

    /// The dense header entry of an item placed at data offset `offset`.
    static func denseInfo(of item: SparseTensorGroups.Item, at offset: Int) -> TensorInfo {
        switch item {
        case .plain(let info):
            TensorInfo(
                name: info.name,
                dtype: info.dtype,
                shape: info.shape,
                dataOffsets: offset..<(offset + info.byteCount)
            )
        case .sparse(let group):
            TensorInfo(
                name: group.denseName,
                dtype: group.dtype,
                shape: [group.rows, group.cols],
                dataOffsets: offset..<(offset + group.denseBytes)
            )
        }
    }
}
