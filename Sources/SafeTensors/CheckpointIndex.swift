// SPDX-License-Identifier: Apache-2.0
// CheckpointIndex: parses and validates `model.safetensors.index.json` of a sharded checkpoint.

import SystemPackage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The validated content of a sharded checkpoint's index (`model.safetensors.index.json`).
///
/// The file is `{"metadata": {…}, "weight_map": {"tensor name": "shard file name", …}}`. It is
/// hostile input: at most `maximumLength` bytes, strict JSON (duplicate keys rejected), shard names
/// must be plain file names (no `/`, not `.` or `..`, no NUL). `metadata` may hold anything.
///
/// ```swift
/// let index = try CheckpointIndex(path: "llama/model.safetensors.index.json")
/// let shards = Set(index.weightMap.map(\.shard))
/// ```
public struct CheckpointIndex: Sendable {
    /// Largest accepted index file: 64 MiB (a 70B model's index is about 100 KB).
    public static let maximumLength = 64 << 20

    /// Tensor name → shard file name, in the index's order.
    public let weightMap: [(tensor: String, shard: String)]
    /// `metadata`: strings as is, other values as compact JSON text.
    public let metadata: [String: String]

    /// Reads and validates the index at `path`.
    /// - Throws: `SafeTensorsError.invalidIndex` or `.io`.
    public init(path: String) throws {
        try self.init(bytes: try Self.readBounded(path: path, limit: Self.maximumLength), path: path)
    }

    /// Validates an index already read (by a caller that opens files its own way).
    /// - Parameters:
    ///   - bytes: the whole file, at most `maximumLength` bytes.
    ///   - path: the file's path, for error messages.
    /// - Throws: `SafeTensorsError.invalidIndex`.
    public init(bytes: [UInt8], path: String) throws {
        guard bytes.count <= Self.maximumLength else {
            throw SafeTensorsError.invalidIndex(
                file: path,
                reason: "\(bytes.count) bytes exceeds the limit of \(Self.maximumLength)"
            )
        }
        let object: [(String, StrictJSON.Value)]
        do {
            object = try bytes.withUnsafeBytes { try StrictJSON.parseObject($0, file: path) }
        } catch let error as SafeTensorsError {
            let reason =
                switch error {
                case .headerNotUTF8: "not valid UTF-8"
                case .headerNotJSON(_, let reason): "not a JSON object: \(reason)"
                case .duplicateTensor(_, let key): "top-level key '\(key)' appears twice"
                default: error.description
                }
            throw SafeTensorsError.invalidIndex(file: path, reason: reason)
        }
        var weightMap: [(tensor: String, shard: String)]?
        var metadata: [String: String] = [:]
        for (key, value) in object {
            switch key {
            case "weight_map":
                guard case .object(let pairs) = value else {
                    throw SafeTensorsError.invalidIndex(
                        file: path,
                        reason: "'weight_map' must be an object, found \(value.kindName)"
                    )
                }
                weightMap = try pairs.map { tensor, shard in
                    guard case .string(let shardName) = shard else {
                        throw SafeTensorsError.invalidIndex(
                            file: path,
                            reason: "tensor '\(tensor)': shard must be a string, found \(shard.kindName)"
                        )
                    }
                    try Self.checkShardName(shardName, tensor: tensor, index: path)
                    return (tensor, shardName)
                }
            case "metadata":
                guard case .object(let pairs) = value else {
                    throw SafeTensorsError.invalidIndex(
                        file: path,
                        reason: "'metadata' must be an object, found \(value.kindName)"
                    )
                }
                for (key, entry) in pairs {
                    if case .string(let string) = entry {
                        metadata[key] = string
                    } else {
                        metadata[key] = entry.jsonText
                    }
                }
            default:
                continue  // Unknown top-level keys are tolerated, as by transformers.
            }
        }
        guard let weightMap else { throw SafeTensorsError.invalidIndex(file: path, reason: "no 'weight_map' object") }
        self.weightMap = weightMap
        self.metadata = metadata
    }

    /// Shard names are joined to the checkpoint directory, so they must not escape it.
    static func checkShardName(_ name: String, tensor: String, index: String) throws {
        let problem: String? =
            if name.isEmpty { "is empty" } else if name == "." || name == ".." {
                "is '\(name)'"
            } else if name.contains("/") {
                "contains '/'"
            } else if name.utf8.contains(0) { "contains a NUL byte" } else { nil }
        if let problem {
            throw SafeTensorsError.invalidIndex(
                file: index,
                reason: "tensor '\(tensor)': shard name '\(name)' \(problem) (expected a plain file name)"
            )
        }
    }

    /// Reads a whole regular file of at most `limit` bytes.
    static func readBounded(path: String, limit: Int) throws -> [UInt8] {
        let fd: FileDescriptor
        do {
            // Non-blocking: a FIFO under the index's name must not block the reader (it is refused below).
            fd = try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec, .nonBlocking])
        } catch let errno as Errno {
            throw SafeTensorsError.io(path: path, operation: "open", errno: errno)
        }
        defer { try? fd.close() }
        var status = stat()
        guard fstat(fd.rawValue, &status) == 0 else {
            throw SafeTensorsError.io(path: path, operation: "fstat", errno: Errno(rawValue: errno))
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError.invalidIndex(file: path, reason: "not a regular file")
        }
        let size = Int(status.st_size)
        guard size <= limit else {
            throw SafeTensorsError.invalidIndex(file: path, reason: "\(size) bytes exceeds the limit of \(limit)")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        var filled = 0
        while filled < size {
            let count = try bytes.withUnsafeMutableBytes { buffer in
                do {
                    return try fd.read(
                        fromAbsoluteOffset: Int64(filled),
                        into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...])
                    )
                } catch let errno as Errno {
                    throw SafeTensorsError.io(path: path, operation: "read", errno: errno)
                }
            }
            guard count > 0 else { break }  // Shrunk while reading: parse what is there.
            filled += count
        }
        return Array(bytes[0..<filled])
    }
}

extension StrictJSON.Value {
    /// Compact JSON text of the value (for tolerated metadata).
    var jsonText: String {
        switch self {
        case .null: "null"
        case .bool(let b): "\(b)"
        case .integer(let i): "\(i)"
        case .number(let d): "\(d)"
        case .string(let s):
            {
                var bytes: [UInt8] = []
                Header.appendJSONString(s, to: &bytes)
                return String(decoding: bytes, as: UTF8.self)
            }()
        case .array(let values): "[" + values.map(\.jsonText).joined(separator: ",") + "]"
        case .object(let pairs):
            "{" + pairs.map { StrictJSON.Value.string($0.0).jsonText + ":" + $0.1.jsonText }.joined(separator: ",")
                + "}"
        }
    }
}
