// SPDX-License-Identifier: Apache-2.0
// Is a checkpoint directory complete, and what is its fingerprint? Structural checks only, no tensor data.

// `timespec` (of `stat.st_mtim`) reaches this target through CSystemd's headers first; with
// MemberImportVisibility its fields need that module imported (a clean build fails without it).
import CSystemd
import DSnoTSupport
public import Foundation
import SafeTensors

#if canImport(Glibc)
    import Glibc
#endif

/// Why a checkpoint directory is not a complete checkpoint.
public enum CheckpointNotReady: Error, Equatable, CustomStringConvertible {
    case ignoredName(String)
    case notADirectory(String)
    /// Nothing in it yet but hidden or in-progress (`*.incomplete`, `*.partial`, `*.tmp`) files.
    case empty
    case missingConfig
    case configNotJSON
    case noShards
    case missingShard(String)
    case shardIncomplete(name: String, size: Int, expected: Int)
    /// A file cannot be read safely: a FIFO or other special file, a symbolic link leaving the
    /// checkpoint or looping, a permission or I/O error, a file over its size limit.
    case unreadable(String)
    /// The index or a shard's header fails validation (`SafeTensors.Header`, `CheckpointIndex`).
    case invalid(String)

    public var description: String {
        switch self {
        case .ignoredName(let name): return "'\(name)' is hidden or a temporary name"
        case .notADirectory(let name): return "'\(name)' is not a directory"
        case .empty: return "the directory holds no checkpoint file yet"
        case .missingConfig: return "config.json is missing"
        case .configNotJSON: return "config.json is not a JSON object"
        case .noShards: return "no *.safetensors file"
        case .missingShard(let name): return "shard '\(name)' named by the index is missing"
        case .shardIncomplete(let name, let size, let expected):
            return "shard '\(name)' is \(size) bytes, its header needs \(expected)"
        case .unreadable(let reason), .invalid(let reason): return reason
        }
    }

    /// Whether the directory is a checkpoint that is broken (its problem deserves a failed job once it
    /// stops changing), rather than no checkpoint at all (an ignored name, a plain file, nothing yet).
    public var isBroken: Bool {
        switch self {
        case .ignoredName, .notADirectory, .empty: false
        default: true
        }
    }
}

/// Structural readiness and fingerprint of a checkpoint directory.
///
/// Every file is opened through `InboxFile` (non-blocking, regular files only, never outside the
/// directory); shard headers are validated by `SafeTensors.Header` and the index by `CheckpointIndex`,
/// the parsers the pipeline uses, reading only the length prefix and the header of each shard.
public enum CheckpointInspector {
    /// Largest accepted `config.json` (a real one is a few KB).
    static let maximumConfigLength = 16 << 20

    /// Names the watcher never considers: hidden files and in-progress downloads.
    public static func isIgnored(_ name: String) -> Bool {
        name.hasPrefix(".") || name.hasSuffix(".incomplete") || name.hasSuffix(".tmp") || name.hasSuffix(".partial")
    }

    /// Checks that the directory is structurally complete.
    /// - Throws: `CheckpointNotReady`.
    public static func checkComplete(_ directory: URL) throws(CheckpointNotReady) {
        _ = try inspect(directory)
    }

    /// The fingerprint of a structurally complete checkpoint (see `inspect`).
    /// - Throws: `CheckpointNotReady`.
    public static func fingerprint(_ directory: URL) throws(CheckpointNotReady) -> String {
        try inspect(directory)
    }

    /// Checks that the directory is structurally complete and returns its fingerprint.
    ///
    /// Complete: `config.json` is a JSON object; the index (if any) is valid and names only plain file
    /// names; every shard is a regular file whose header is valid and whose size is exactly 8 + header
    /// length + end of its last tensor. The fingerprint hashes the `signature` (path, names, sizes,
    /// mtimes), the bytes of `config.json` and the index, and every shard header: a checkpoint that
    /// changes gets a new one.
    /// - Throws: `CheckpointNotReady` naming the file and the problem.
    public static func inspect(_ directory: URL) throws(CheckpointNotReady) -> String {
        let name = directory.lastPathComponent
        if isIgnored(name) { throw .ignoredName(name) }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue
        else { throw .notADirectory(name) }
        let entries = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
            .filter { !isIgnored($0) }.sorted()
        guard !entries.isEmpty else { throw .empty }
        var bytes = Array(signature(directory).utf8)
        let config = try readConfig(directory)
        bytes += config
        let (shards, index) = try shardNames(in: directory, entries: entries)
        bytes += index
        for shard in shards { bytes += try shardHeader(shard, in: directory) }
        return SHA256.hex(bytes)
    }

    /// The checkpoint's path and the names, sizes and modification times of its files (not their
    /// contents: `lstat` only). Unchanged signature, unchanged checkpoint: the watcher does not read a
    /// checkpoint again until its signature changes.
    public static func signature(_ directory: URL) -> String {
        // The path first: two directories holding identical copies are two inputs with two outputs
        // (without it, copies made within one mtime tick collapsed into a single job).
        var text = directory.standardizedFileURL.path + "\u{0}"
        for name in ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).sorted()
        where !isIgnored(name) {
            let status = EntryStatus(directory.appendingPathComponent(name).path)
            text += "\(name)\u{0}\(status?.size ?? -1)\u{0}\(status?.modified.timeIntervalSince1970 ?? 0)\n"
        }
        return text
    }

    /// The newest modification time among the directory and its entries.
    public static func lastModified(_ directory: URL) -> Date? {
        var newest = EntryStatus(directory.path)?.modified
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] {
            if let date = EntryStatus(directory.appendingPathComponent(name).path)?.modified,
                date > (newest ?? .distantPast)
            {
                newest = date
            }
        }
        return newest
    }

    /// `config.json`'s bytes, checked to be a JSON object.
    private static func readConfig(_ directory: URL) throws(CheckpointNotReady) -> [UInt8] {
        let bytes: [UInt8]
        do throws(InboxFileError) {
            let file = try InboxFile.open("config.json", in: directory)
            bytes = try file.readAll(limit: maximumConfigLength)
        } catch .missing {
            throw .missingConfig
        } catch {
            throw .unreadable(error.description)
        }
        guard (try? JSONSerialization.jsonObject(with: Data(bytes))) is [String: Any] else { throw .configNotJSON }
        return bytes
    }

    /// The shard names, sorted (the index's `weight_map` values if there is an index, else every
    /// `*.safetensors` entry), and the index's bytes (empty without an index).
    private static func shardNames(
        in directory: URL,
        entries: [String]
    ) throws(CheckpointNotReady) -> ([String], [UInt8]) {
        guard entries.contains(Checkpoint.indexFileName) else {
            let names = entries.filter { $0.hasSuffix(".safetensors") }
            guard !names.isEmpty else { throw .noShards }
            return (names, [])
        }
        let bytes: [UInt8]
        let index: CheckpointIndex
        do throws(InboxFileError) {
            let file = try InboxFile.open(Checkpoint.indexFileName, in: directory)
            bytes = try file.readAll(limit: CheckpointIndex.maximumLength)
        } catch {
            throw .unreadable(error.description)
        }
        do {
            // Validates every shard name: a plain file name, never a path out of the directory.
            index = try CheckpointIndex(bytes: bytes, path: Checkpoint.indexFileName)
        } catch {
            throw .invalid("\(error)")
        }
        let names = Set(index.weightMap.map(\.shard)).sorted()
        guard !names.isEmpty else { throw .invalid("\(Checkpoint.indexFileName): 'weight_map' is empty") }
        return (names, bytes)
    }

    /// Reads and validates a shard's header; returns its bytes (length prefix included).
    static func shardHeader(_ name: String, in directory: URL) throws(CheckpointNotReady) -> [UInt8] {
        let file: InboxFile
        do throws(InboxFileError) { file = try InboxFile.open(name, in: directory) } catch .missing {
            throw .missingShard(name)
        } catch {
            throw .unreadable(error.description)
        }
        let size = file.size
        do {
            let prefix = try file.read(at: 0, count: min(8, size))
            let length: Int
            do {
                length = try prefix.withUnsafeBytes { try Header.headerLength(prefix: $0, fileSize: size, file: name) }
            } catch SafeTensorsError.fileTooSmall {
                throw CheckpointNotReady.shardIncomplete(name: name, size: size, expected: 8)
            } catch SafeTensorsError.headerBeyondFile(_, let declared, _) {
                throw CheckpointNotReady.shardIncomplete(name: name, size: size, expected: 8 + Int(declared))
            }
            let json = try file.read(at: 8, count: length)
            guard json.count == length else {
                throw CheckpointNotReady.shardIncomplete(name: name, size: size, expected: 8 + length)
            }
            // The data section is checked against the size below, to report a cut-short shard as such.
            let header = try json.withUnsafeBytes { try Header.parse(json: $0, dataSize: nil, file: name) }
            if header.fileSize > size {
                throw CheckpointNotReady.shardIncomplete(name: name, size: size, expected: header.fileSize)
            }
            if header.fileSize < size {
                throw CheckpointNotReady.invalid(
                    SafeTensorsError.trailingBytes(file: name, dataEnd: header.dataSize, dataSize: size - 8 - length)
                        .description
                )
            }
            return prefix + json
        } catch let error as CheckpointNotReady {
            throw error
        } catch let error as InboxFileError {
            throw .unreadable(error.description)
        } catch {
            throw .invalid("\(error)")
        }
    }
}

/// One directory entry's `lstat` size and modification time (the link itself for a symbolic link).
///
/// A plain `lstat`: `FileManager.attributesOfItem` also resolves the owner and group names, reading
/// `/etc/passwd` and `/etc/group` for every file of every rescan. The modification time is built as
/// a `Date` from the `timespec` exactly as Foundation builds `.modificationDate`, so `signature` —
/// and the fingerprints keying existing jobs — are spelled as they were (`CheckpointSignatureTests`).
struct EntryStatus {
    let size: Int
    let modified: Date

    init?(_ path: String) {
        var status = stat()
        guard lstat(path, &status) == 0 else { return nil }
        size = Int(status.st_size)
        // Foundation's own construction (swift-foundation's `Date(seconds:nanoSeconds:)`): whole
        // seconds moved to the 2001 reference date first, then the nanoseconds added.
        modified = Date(
            timeIntervalSinceReferenceDate: (Double(status.st_mtim.tv_sec)
                - Date.timeIntervalBetween1970AndReferenceDate)
                + Double(status.st_mtim.tv_nsec) / 1_000_000_000
        )
    }
}
