// SPDX-License-Identifier: Apache-2.0
// Is a checkpoint directory complete, and what is its fingerprint? Structural checks only, no tensor data.

import DSnoTSupport
public import Foundation
import SafeTensors

/// Why a checkpoint directory is not (yet) ready.
public enum CheckpointNotReady: Error, Equatable, CustomStringConvertible {
    case ignoredName(String)
    case notADirectory(String)
    case missingConfig
    case configNotJSON
    case noShards
    case indexNotJSON
    case missingShard(String)
    case shardIncomplete(name: String, size: Int, expected: Int)
    case shardHeaderInvalid(name: String, reason: String)
    case tooRecent(secondsQuiet: Double, settle: Double)

    public var description: String {
        switch self {
        case .ignoredName(let name): return "'\(name)' is hidden or a temporary name"
        case .notADirectory(let name): return "'\(name)' is not a directory"
        case .missingConfig: return "config.json is missing"
        case .configNotJSON: return "config.json is not a JSON object"
        case .noShards: return "no *.safetensors file"
        case .indexNotJSON: return "model.safetensors.index.json has no weight_map object"
        case .missingShard(let name): return "shard '\(name)' named by the index is missing"
        case .shardIncomplete(let name, let size, let expected):
            return "shard '\(name)' is \(size) bytes, its header needs \(expected)"
        case .shardHeaderInvalid(let name, let reason): return "shard '\(name)': \(reason)"
        case .tooRecent(let quiet, let settle): return "changed \(quiet) s ago, settle time is \(settle) s"
        }
    }
}

/// Structural readiness and fingerprint of a checkpoint directory (ARCHITECTURE.md, Watcher).
public enum CheckpointInspector {
    /// Names the watcher never considers: hidden files and in-progress downloads.
    public static func isIgnored(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasSuffix(".incomplete") || name.hasSuffix(".tmp") || name.hasSuffix(".partial")
    }

    /// The shard file names: those of the index's `weight_map` if there is an index, else every
    /// `*.safetensors` in the directory.
    /// - Throws: `CheckpointNotReady`.
    public static func shardNames(in directory: URL) throws(CheckpointNotReady) -> [String] {
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        if let data = try? Data(contentsOf: index) {
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let map = object["weight_map"] as? [String: Any]
            else { throw .indexNotJSON }
            let names = Set(map.values.compactMap { $0 as? String })
            guard !names.isEmpty else { throw .noShards }
            return names.sorted()
        }
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { $0.hasSuffix(".safetensors") && !isIgnored($0) }.sorted()
        guard !names.isEmpty else { throw .noShards }
        return names
    }

    /// Checks that the directory is structurally complete: `config.json` parses, every shard exists and
    /// each shard's size is exactly 8 + header length + end of its last tensor.
    /// - Throws: `CheckpointNotReady`.
    public static func checkComplete(_ directory: URL) throws(CheckpointNotReady) {
        let name = directory.lastPathComponent
        if isIgnored(name) { throw .ignoredName(name) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue
        else { throw .notADirectory(name) }
        guard let config = try? Data(contentsOf: directory.appendingPathComponent("config.json")) else {
            throw .missingConfig
        }
        guard (try? JSONSerialization.jsonObject(with: config)) is [String: Any] else { throw .configNotJSON }
        for shard in try shardNames(in: directory) {
            _ = try shardHeader(directory.appendingPathComponent(shard), name: shard)
        }
    }

    /// Reads and checks a shard's header; returns its bytes (length prefix included).
    static func shardHeader(_ url: URL, name: String) throws(CheckpointNotReady) -> [UInt8] {
        guard let handle = try? FileHandle(forReadingFrom: url) else { throw .missingShard(name) }
        defer { try? handle.close() }
        let size = (try? handle.seekToEnd()).map(Int.init) ?? 0
        try? handle.seek(toOffset: 0)
        guard size >= 8, let prefix = try? handle.read(upToCount: 8), prefix.count == 8 else {
            throw .shardIncomplete(name: name, size: size, expected: 8)
        }
        let headerLength = prefix.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= 100_000_000 else {
            throw .shardHeaderInvalid(name: name, reason: "header length \(headerLength) exceeds 100 MB")
        }
        guard 8 + Int(headerLength) <= size, let header = try? handle.read(upToCount: Int(headerLength)),
            header.count == Int(headerLength)
        else { throw .shardIncomplete(name: name, size: size, expected: 8 + Int(headerLength)) }
        guard let object = try? JSONSerialization.jsonObject(with: header) as? [String: Any] else {
            throw .shardHeaderInvalid(name: name, reason: "header is not a JSON object")
        }
        var dataEnd = 0
        for (tensor, value) in object where tensor != "__metadata__" {
            guard let info = value as? [String: Any], let offsets = info["data_offsets"] as? [Int], offsets.count == 2,
                offsets[0] >= 0, offsets[1] >= offsets[0]
            else { throw .shardHeaderInvalid(name: name, reason: "tensor '\(tensor)' has no valid data_offsets") }
            dataEnd = max(dataEnd, offsets[1])
        }
        let expected = 8 + Int(headerLength) + dataEnd
        guard size == expected else { throw .shardIncomplete(name: name, size: size, expected: expected) }
        return Array(prefix) + Array(header)
    }

    /// The newest modification time among the directory and its entries.
    public static func lastModified(_ directory: URL) -> Date? {
        let manager = FileManager.default
        var newest = (try? manager.attributesOfItem(atPath: directory.path))?[.modificationDate] as? Date
        for name in (try? manager.contentsOfDirectory(atPath: directory.path)) ?? [] {
            let attributes = try? manager.attributesOfItem(atPath: directory.appendingPathComponent(name).path)
            if let date = attributes?[.modificationDate] as? Date, date > (newest ?? .distantPast) { newest = date }
        }
        return newest
    }

    /// A fingerprint of the checkpoint: its path, the names, sizes and mtimes of its files, the bytes of `config.json`
    /// and the index, and every shard header. A checkpoint that changes gets a new fingerprint.
    /// - Throws: `CheckpointNotReady` when a shard cannot be read.
    public static func fingerprint(_ directory: URL) throws(CheckpointNotReady) -> String {
        let manager = FileManager.default
        // The path first: two directories holding identical copies are two inputs with two outputs
        // (without it, copies made within one mtime tick collapsed into a single job).
        var bytes: [UInt8] = Array(directory.standardizedFileURL.path.utf8) + [0]
        for name in ((try? manager.contentsOfDirectory(atPath: directory.path)) ?? []).sorted() where !isIgnored(name) {
            let attributes = try? manager.attributesOfItem(atPath: directory.appendingPathComponent(name).path)
            let size = (attributes?[.size] as? NSNumber)?.intValue ?? -1
            let mtime = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            bytes += Array("\(name)\u{0}\(size)\u{0}\(mtime)\n".utf8)
        }
        for file in ["config.json", "model.safetensors.index.json"] {
            if let data = try? Data(contentsOf: directory.appendingPathComponent(file)) { bytes += Array(data) }
        }
        for shard in try shardNames(in: directory) {
            bytes += try shardHeader(directory.appendingPathComponent(shard), name: shard)
        }
        return SHA256.hex(bytes)
    }
}
