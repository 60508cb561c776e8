// SPDX-License-Identifier: Apache-2.0
// SparseVerifier: `dsnotctl verify` — checksums from dsnot-report.json plus full structural checks.

import DSnoTSupport
import Foundation
import SafeTensors

/// Verifies a sparse output directory.
///
/// 1. `dsnot-report.json` has an `output` manifest; every file it lists exists with the recorded
///    size and SHA-256, and the directory holds no unlisted file.
/// 2. `config.json` carries a `quantization_config.sparsity_config` whose format matches.
/// 3. Every `<shard>.lz4` is a valid frame whose content is a valid safetensors file whose sparse
///    groups are consistent (bitmask popcounts, row offsets, shapes); the pruned modules equal the
///    manifest's `targets`; the index (if any) maps exactly the tensors of each shard.
///
/// Decompressed shards go to a scratch directory (one at a time) and are deleted.
public enum SparseVerifier {
    /// What was checked.
    public struct Report: Sendable, Codable, Equatable {
        public var directory: String
        /// Files whose checksum matched.
        public var filesChecked: Int
        /// Shards decompressed and validated.
        public var shardsChecked: Int
        /// Tensors (sparse groups count once) validated.
        public var tensorsChecked: Int
        /// Sparse weights validated.
        public var sparseTensorsChecked: Int
    }

    /// Verifies `directory`.
    /// - Parameter scratchDirectory: where shards are decompressed (default: `directory`'s parent
    ///   would be written to; so the default is the system temporary directory).
    /// - Throws: the first `SparseFormatError` found.
    @discardableResult
    public static func verify(directory: String, scratchDirectory: String? = nil) throws -> Report {
        let manifest = try readManifest(directory)
        var report = Report(
            directory: directory,
            filesChecked: 0,
            shardsChecked: 0,
            tensorsChecked: 0,
            sparseTensorsChecked: 0
        )
        try checkNoUnlistedFiles(directory, manifest: manifest)
        report.filesChecked = try checkListedFiles(directory, manifest: manifest)
        try checkConfig(directory, manifest: manifest)
        let scratch = try FileIO.makeTemporaryDirectory(in: scratchDirectory ?? NSTemporaryDirectory())
        defer { try? FileIO.removeTree(scratch) }
        var modules: [String] = []
        var tensorsByShard: [String: Set<String>] = [:]
        for file in manifest.files {
            guard let base = SparseUnpacker.shardName(ofFrame: file.name) else { continue }
            let sparsePath = scratch + "/" + base
            try SparseUnpacker.decompressShard(at: directory + "/" + file.name, to: sparsePath)
            defer { try? FileIO.removeTree(sparsePath) }
            let safetensors = try FileIO.safeTensors { try SafeTensorsFile(path: sparsePath) }
            let groups = try SparseTensorGroups(file: safetensors)
            for item in groups.items {
                if case .sparse(let group) = item {
                    _ = try SparseTensorGroups.denseBytes(of: group, in: safetensors)
                    modules.append(group.module)
                    report.sparseTensorsChecked += 1
                }
                report.tensorsChecked += 1
            }
            tensorsByShard[base] = Set(safetensors.tensorNames)
            report.shardsChecked += 1
        }
        guard report.shardsChecked > 0 else {
            throw SparseFormatError.invalidOutput(path: directory, reason: "no *.safetensors.lz4 shard")
        }
        guard Set(modules) == Set(manifest.targets), modules.count == manifest.targets.count else {
            throw SparseFormatError.invalidOutput(
                path: directory,
                reason:
                    "the shards hold \(modules.count) sparse weights, the manifest lists \(manifest.targets.count) targets"
            )
        }
        try checkIndex(directory, tensorsByShard: tensorsByShard)
        return report
    }

    /// Fails on a file of `directory` that the manifest does not list (the report itself aside), among
    /// the names `checked` selects (every name by default).
    static func checkNoUnlistedFiles(
        _ directory: String,
        manifest: OutputManifest,
        checked: (String) -> Bool = { _ in true }
    ) throws {
        let listed = Set(manifest.files.map(\.name))
        for name in try FileIO.listDirectory(directory) where name != OutputManifest.reportFileName && checked(name) {
            guard listed.contains(name) else {
                throw SparseFormatError.invalidOutput(
                    path: directory + "/" + name,
                    reason: "not listed in the manifest"
                )
            }
        }
    }

    /// Checks that every file the manifest lists exists with its recorded size and SHA-256.
    /// - Returns: the number of files checked.
    /// - Throws: `SparseFormatError.invalidOutput` (missing, wrong size), `.checksumMismatch`.
    @discardableResult
    static func checkListedFiles(_ directory: String, manifest: OutputManifest) throws -> Int {
        for file in manifest.files {
            let path = directory + "/" + file.name
            guard FileIO.exists(path) else {
                throw SparseFormatError.invalidOutput(path: path, reason: "listed in the manifest but missing")
            }
            let size = try FileIO.fileSize(path)
            guard size == file.bytes else {
                throw SparseFormatError.invalidOutput(path: path, reason: "\(size) bytes, manifest says \(file.bytes)")
            }
            let digest = try SHA256.hash(fileAt: path).hex
            guard digest == file.sha256 else {
                throw SparseFormatError.checksumMismatch(file: path, expected: file.sha256, found: digest)
            }
        }
        return manifest.files.count
    }

    /// Reads the `output` section of `dsnot-report.json`.
    static func readManifest(_ directory: String) throws -> OutputManifest {
        let path = directory + "/" + OutputManifest.reportFileName
        guard FileIO.exists(path) else { throw SparseFormatError.invalidOutput(path: path, reason: "missing") }
        let object = try SparseCheckpointWriter.jsonObject(try FileIO.readSmallFile(path), what: path)
        guard let output = object["output"], JSONSerialization.isValidJSONObject(output),
            let data = try? JSONSerialization.data(withJSONObject: output),
            let manifest = try? JSONDecoder().decode(OutputManifest.self, from: data)
        else {
            throw SparseFormatError.invalidOutput(path: path, reason: "no valid 'output' manifest")
        }
        for file in manifest.files where file.name.contains("/") || file.name.hasPrefix(".") {
            throw SparseFormatError.invalidOutput(path: path, reason: "file name '\(file.name)' is not a plain name")
        }
        return manifest
    }

    private static func checkConfig(_ directory: String, manifest: OutputManifest) throws {
        let path = directory + "/config.json"
        let config = try SparseCheckpointWriter.jsonObject(try FileIO.readSmallFile(path), what: path)
        guard let quantization = config["quantization_config"] as? [String: Any],
            let sparsity = quantization["sparsity_config"] as? [String: Any],
            sparsity["format"] as? String == manifest.format,
            let targets = sparsity["targets"] as? [String], Set(targets) == Set(manifest.targets)
        else {
            throw SparseFormatError.invalidOutput(
                path: path,
                reason: "quantization_config.sparsity_config is missing or disagrees with the manifest"
            )
        }
    }

    private static func checkIndex(_ directory: String, tensorsByShard: [String: Set<String>]) throws {
        let path = directory + "/model.safetensors.index.json"
        guard FileIO.exists(path) else {
            guard tensorsByShard.count == 1 else {
                throw SparseFormatError.invalidOutput(path: path, reason: "missing for \(tensorsByShard.count) shards")
            }
            return
        }
        let index = try SparseCheckpointWriter.jsonObject(try FileIO.readSmallFile(path), what: path)
        guard let map = index["weight_map"] as? [String: String] else {
            throw SparseFormatError.invalidOutput(path: path, reason: "no weight_map object of strings")
        }
        var fromIndex: [String: Set<String>] = [:]
        for (tensor, shard) in map { fromIndex[shard, default: []].insert(tensor) }
        guard fromIndex == tensorsByShard else {
            throw SparseFormatError.invalidOutput(path: path, reason: "weight_map disagrees with the shards' tensors")
        }
    }
}
