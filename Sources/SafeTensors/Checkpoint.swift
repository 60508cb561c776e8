// SPDX-License-Identifier: Apache-2.0
// Checkpoint: a model directory's tensors, from one safetensors file or a sharded set with an index.

import SystemPackage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The tensors of a checkpoint directory: a single `model.safetensors`, or shards listed by
/// `model.safetensors.index.json`, each memory-mapped and validated.
///
/// With an index, the index and the shards must agree exactly: every shard it names exists, every
/// tensor it names is in that shard, and every tensor of every shard is in the index (no tensor
/// in two shards). Without one, the directory must hold `model.safetensors` or exactly one
/// `*.safetensors` file.
///
/// ```swift
/// let checkpoint = try Checkpoint(directory: "/var/lib/dsnot/inbox/llama")
/// for name in checkpoint.tensorNames {
///     let info = try checkpoint.info(named: name)           // dtype, shape
///     let values = try checkpoint.floats(named: name)       // F64/F32/F16/BF16 → [Float]
/// }
/// ```
public final class Checkpoint: Sendable {
    /// The conventional index file name.
    public static let indexFileName = "model.safetensors.index.json"
    /// Files that travel with a checkpoint unchanged (generation settings, tokenizer, and a multimodal
    /// model's processor settings and chat template): every output copies those present. `config.json`
    /// and the index are not among them: each writer writes or copies them itself.
    public static let companionFiles = [
        "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "tokenizer.model", "added_tokens.json", "preprocessor_config.json", "processor_config.json",
        "chat_template.json", "chat_template.jinja",
    ]
    /// The conventional single-file name.
    public static let singleFileName = "model.safetensors"

    /// The directory the checkpoint was opened from.
    public let directory: String
    /// Shard file names, sorted (for `model-0000i-of-0000n.safetensors`, shard order); one name
    /// for an unsharded checkpoint.
    public let shards: [String]
    /// The index's `metadata` (strings as is, other values as compact JSON); empty without an index.
    public let indexMetadata: [String: String]
    /// Every tensor name: shard by shard (in `shards` order), in data-offset order within a shard.
    public let tensorNames: [String]
    /// The index's path, or `nil` for a single-file checkpoint.
    public let indexPath: String?
    /// The opened files, in `shards` order.
    public let files: [SafeTensorsFile]
    private let fileOfTensor: [String: Int]

    /// Opens a checkpoint directory.
    /// - Parameter directory: a directory holding an index and its shards, or one safetensors file.
    /// - Throws: `SafeTensorsError`: `.noCheckpoint`, `.invalidIndex`, `.missingShard`,
    ///   `.indexMismatch`, or any error of `SafeTensorsFile.init(path:)` for a shard.
    public init(directory: String) throws {
        self.directory = directory
        let indexPath = Self.join(directory, Self.indexFileName)
        if DurableFile.exists(indexPath) {
            let index = try CheckpointIndex(path: indexPath)
            let (shards, files, fileOfTensor) = try Self.openShards(of: index, path: indexPath, directory: directory)
            self.indexPath = indexPath
            self.shards = shards
            self.indexMetadata = index.metadata
            self.files = files
            self.fileOfTensor = fileOfTensor
        } else {
            let name = try Self.singleFile(in: directory)
            let file = try SafeTensorsFile(path: Self.join(directory, name))
            self.indexPath = nil
            self.shards = [name]
            self.indexMetadata = [:]
            self.files = [file]
            self.fileOfTensor = Dictionary(uniqueKeysWithValues: file.tensorNames.map { ($0, 0) })
        }
        tensorNames = files.flatMap(\.tensorNames)
    }

    /// Opens the shards an index names and checks that they agree with it both ways.
    /// - Returns: sorted shard names, their files, and tensor name → position in both.
    private static func openShards(
        of index: CheckpointIndex,
        path indexPath: String,
        directory: String
    ) throws -> ([String], [SafeTensorsFile], [String: Int]) {
        guard !index.weightMap.isEmpty else {
            throw SafeTensorsError.invalidIndex(file: indexPath, reason: "'weight_map' is empty")
        }
        let shardNames = Set(index.weightMap.map(\.shard)).sorted()
        var files: [SafeTensorsFile] = []
        for shard in shardNames {
            let path = join(directory, shard)
            guard DurableFile.exists(path) else {
                throw SafeTensorsError.missingShard(index: indexPath, shard: shard)
            }
            files.append(try SafeTensorsFile(path: path))
        }
        let shardIndex = Dictionary(uniqueKeysWithValues: shardNames.enumerated().map { ($1, $0) })
        var fileOfTensor: [String: Int] = [:]
        for (tensor, shard) in index.weightMap {
            guard let i = shardIndex[shard] else { continue }  // unreachable: shardNames covers weightMap
            guard files[i].info(ifPresent: tensor) != nil else {
                throw SafeTensorsError.indexMismatch(
                    index: indexPath,
                    tensor: tensor,
                    reason: "the index places it in '\(shard)', which lacks it"
                )
            }
            fileOfTensor[tensor] = i
        }
        for (i, file) in files.enumerated() {
            for name in file.tensorNames where fileOfTensor[name] != i {
                let reason =
                    if let other = fileOfTensor[name] {
                        "present in '\(shardNames[i])' but the index places it in '\(shardNames[other])'"
                    } else {
                        "present in '\(shardNames[i])' but missing from the index"
                    }
                throw SafeTensorsError.indexMismatch(index: indexPath, tensor: name, reason: reason)
            }
        }
        return (shardNames, files, fileOfTensor)
    }

    /// Whether the checkpoint has an index.
    public var isSharded: Bool { indexPath != nil }

    /// Whether a tensor of that name exists.
    public func contains(_ name: String) -> Bool { fileOfTensor[name] != nil }

    /// The file holding a tensor.
    /// - Throws: `SafeTensorsError.tensorNotFound`.
    public func file(containing name: String) throws -> SafeTensorsFile {
        guard let i = fileOfTensor[name] else {
            throw SafeTensorsError.tensorNotFound(name: name, file: indexPath ?? files[0].path)
        }
        return files[i]
    }

    /// The header entry of a tensor.
    /// - Throws: `SafeTensorsError.tensorNotFound`.
    public func info(named name: String) throws -> TensorInfo {
        try file(containing: name).info(named: name)
    }

    /// A zero-copy view of a tensor's bytes, valid while this checkpoint is alive.
    /// - Throws: `SafeTensorsError.tensorNotFound`.
    public func rawBytes(named name: String) throws -> UnsafeRawBufferPointer {
        try file(containing: name).rawBytes(named: name)
    }

    /// Drops a tensor's resident pages (`SafeTensorsFile.releasePages(of:)`); unknown names are ignored.
    public func releasePages(named name: String) {
        guard let file = try? file(containing: name), let info = file.info(ifPresent: name) else { return }
        file.releasePages(of: info)
    }

    /// A tensor's values converted to `Float` (from F64, F32, F16 or BF16).
    /// - Throws: `SafeTensorsError.tensorNotFound` or `.typeMismatch`.
    public func floats(named name: String) throws -> [Float] {
        try file(containing: name).floats(named: name)
    }

    /// Converts a tensor's values to `Float` into a caller-owned buffer of exactly its element count.
    /// - Throws: `SafeTensorsError.tensorNotFound`, `.typeMismatch` or `.wrongByteCount`.
    public func floats(named name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        try file(containing: name).floats(named: name, into: destination)
    }

    /// The single file of an unsharded checkpoint: `model.safetensors`, else the only `*.safetensors`.
    private static func singleFile(in directory: String) throws -> String {
        guard let dir = opendir(directory) else {
            throw SafeTensorsError.io(path: directory, operation: "opendir", errno: Errno(rawValue: errno))
        }
        defer { closedir(dir) }
        var candidates: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == singleFileName { return name }
            if name.hasSuffix(".safetensors"), !name.hasPrefix(".") { candidates.append(name) }
        }
        guard candidates.count == 1 else {
            let found = candidates.isEmpty ? "none" : candidates.sorted().joined(separator: ", ")
            throw SafeTensorsError.noCheckpoint(
                directory: directory,
                reason: "expected \(indexFileName), \(singleFileName) or exactly one *.safetensors file, found \(found)"
            )
        }
        return candidates[0]
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
