// SPDX-License-Identifier: Apache-2.0
// SafeTensorsError: every way a safetensors file, index or write can be rejected, with context.

public import SystemPackage

/// Why a safetensors file, a sharded checkpoint's index, or a write was rejected.
///
/// Every case names the file and, where there is one, the tensor, and says what was expected
/// and what was found. Files are hostile input: the reader never traps on their contents.
///
/// ```swift
/// do { _ = try SafeTensorsFile(path: path) } catch let error as SafeTensorsError { print(error) }
/// ```
public enum SafeTensorsError: Error, Equatable, Sendable, CustomStringConvertible {
    // MARK: Reading one file

    /// The file is shorter than the 8-byte length prefix (an empty file included).
    case fileTooSmall(file: String, size: Int)
    /// The declared header length exceeds `Header.maximumLength`.
    case headerTooLarge(file: String, declared: UInt64, limit: Int)
    /// The declared header length runs past the end of the file.
    case headerBeyondFile(file: String, declared: UInt64, fileSize: Int)
    /// The header bytes are not valid UTF-8.
    case headerNotUTF8(file: String)
    /// The header is not a JSON object.
    case headerNotJSON(file: String, reason: String)
    /// A key appears twice in the header.
    case duplicateTensor(file: String, tensor: String)
    /// A tensor entry lacks a field or has one of the wrong JSON type.
    case malformedEntry(file: String, tensor: String, reason: String)
    /// A tensor declares a dtype this reader does not know.
    case unsupportedDType(file: String, tensor: String, dtype: String)
    /// A dimension is negative or not an integer.
    case invalidShape(file: String, tensor: String, shape: String)
    /// The element count or byte size of a shape overflows a 64-bit integer.
    case sizeOverflow(file: String, tensor: String, shape: String)
    /// `data_offsets` is not `[begin, end]` with `0 ≤ begin ≤ end`.
    case invalidOffsets(file: String, tensor: String, begin: Int, end: Int)
    /// The byte size implied by shape × dtype differs from `end − begin`.
    case sizeMismatch(file: String, tensor: String, expectedBytes: Int, declaredBytes: Int)
    /// A tensor starts after the previous one (in offset order) ended: unused bytes in between.
    case dataGap(file: String, tensor: String, expectedBegin: Int, begin: Int)
    /// A tensor starts before the previous one (in offset order) ended.
    case tensorsOverlap(file: String, tensor: String, previous: String, previousEnd: Int, begin: Int)
    /// A tensor ends past the end of the data section.
    case dataOutOfBounds(file: String, tensor: String, end: Int, dataSize: Int)
    /// Bytes remain after the last tensor.
    case trailingBytes(file: String, dataEnd: Int, dataSize: Int)
    /// `__metadata__` is not an object of string values.
    case invalidMetadata(file: String, key: String, reason: String)

    // MARK: Checkpoints (a directory, possibly sharded)

    /// The directory holds no usable checkpoint (no index, no or several `*.safetensors`).
    case noCheckpoint(directory: String, reason: String)
    /// A sharded checkpoint's index is malformed.
    case invalidIndex(file: String, reason: String)
    /// The index names a shard that does not exist.
    case missingShard(index: String, shard: String)
    /// The index and the shards disagree about where a tensor lives.
    case indexMismatch(index: String, tensor: String, reason: String)

    // MARK: Lookups

    /// A tensor was asked for that the file or checkpoint does not contain.
    case tensorNotFound(name: String, file: String)
    /// A tensor's dtype cannot be read as the requested Swift type.
    case typeMismatch(file: String, tensor: String, dtype: DType, requested: String)

    // MARK: Writing

    /// A declared tensor cannot be written (duplicate or reserved name, shape overflow, header too large).
    case invalidDeclaration(file: String, tensor: String, reason: String)
    /// A tensor was written out of declaration order, twice, or was never declared.
    case unexpectedTensor(file: String, tensor: String, expected: String)
    /// A tensor's bytes do not have the size its declaration implies.
    case wrongByteCount(file: String, tensor: String, expectedBytes: Int, actualBytes: Int)
    /// The output was finished or committed before every declared tensor was written.
    case missingTensors(file: String, tensors: [String])
    /// The writer was used after `finish`, `commit` or `abort`.
    case writerClosed(file: String)
    /// The output path already exists; writers never replace a file.
    case destinationExists(path: String)

    /// A system call failed.
    case io(path: String, operation: String, errno: Errno)

    public var description: String {
        switch self {
        case .fileTooSmall(let file, let size):
            "\(file): \(size) bytes is too small for a safetensors file (needs at least the 8-byte header length)"
        case .headerTooLarge(let file, let declared, let limit):
            "\(file): header length \(declared) exceeds the limit of \(limit) bytes"
        case .headerBeyondFile(let file, let declared, let size):
            "\(file): header length \(declared) runs past the end of the \(size)-byte file"
        case .headerNotUTF8(let file):
            "\(file): header is not valid UTF-8"
        case .headerNotJSON(let file, let reason):
            "\(file): header is not a JSON object: \(reason)"
        case .duplicateTensor(let file, let tensor):
            "\(file): tensor '\(tensor)' is declared more than once"
        case .malformedEntry(let file, let tensor, let reason):
            "\(file): tensor '\(tensor)': \(reason)"
        case .unsupportedDType(let file, let tensor, let dtype):
            "\(file): tensor '\(tensor)': unsupported dtype '\(dtype)' (expected one of "
                + DType.allCases.map(\.rawValue).joined(separator: ", ") + ")"
        case .invalidShape(let file, let tensor, let shape):
            "\(file): tensor '\(tensor)': shape \(shape) must be an array of non-negative integers"
        case .sizeOverflow(let file, let tensor, let shape):
            "\(file): tensor '\(tensor)': the size of shape \(shape) overflows 64 bits"
        case .invalidOffsets(let file, let tensor, let begin, let end):
            "\(file): tensor '\(tensor)': data_offsets [\(begin), \(end)] must satisfy 0 ≤ begin ≤ end"
        case .sizeMismatch(let file, let tensor, let expected, let declared):
            "\(file): tensor '\(tensor)': shape × dtype needs \(expected) bytes, data_offsets declare \(declared)"
        case .dataGap(let file, let tensor, let expected, let begin):
            "\(file): tensor '\(tensor)': expected data to begin at offset \(expected) (end of the previous "
                + "tensor), found \(begin): \(begin - expected) unused bytes"
        case .tensorsOverlap(let file, let tensor, let previous, let previousEnd, let begin):
            "\(file): tensor '\(tensor)' begins at offset \(begin), inside tensor '\(previous)' "
                + "(which ends at \(previousEnd))"
        case .dataOutOfBounds(let file, let tensor, let end, let size):
            "\(file): tensor '\(tensor)': data ends at offset \(end), past the \(size)-byte data section"
        case .trailingBytes(let file, let end, let size):
            "\(file): \(size - end) trailing bytes after the last tensor (data ends at \(end) of \(size))"
        case .invalidMetadata(let file, let key, let reason):
            "\(file): __metadata__ '\(key)': \(reason)"
        case .noCheckpoint(let directory, let reason):
            "\(directory): no safetensors checkpoint: \(reason)"
        case .invalidIndex(let file, let reason):
            "\(file): invalid checkpoint index: \(reason)"
        case .missingShard(let index, let shard):
            "\(index): shard '\(shard)' does not exist"
        case .indexMismatch(let index, let tensor, let reason):
            "\(index): tensor '\(tensor)': \(reason)"
        case .tensorNotFound(let name, let file):
            "\(file): no tensor named '\(name)'"
        case .typeMismatch(let file, let tensor, let dtype, let requested):
            "\(file): tensor '\(tensor)' has dtype \(dtype.rawValue), cannot be read as \(requested)"
        case .invalidDeclaration(let file, let tensor, let reason):
            "\(file): cannot declare tensor '\(tensor)': \(reason)"
        case .unexpectedTensor(let file, let tensor, let expected):
            "\(file): unexpected write of tensor '\(tensor)', expected \(expected)"
        case .wrongByteCount(let file, let tensor, let expected, let actual):
            "\(file): tensor '\(tensor)' needs \(expected) bytes, \(actual) were given"
        case .missingTensors(let file, let tensors):
            "\(file): \(tensors.count) declared tensors were never written: "
                + tensors.prefix(5).map { "'\($0)'" }.joined(separator: ", ") + (tensors.count > 5 ? ", …" : "")
        case .writerClosed(let file):
            "\(file): the writer is already finished, committed or aborted"
        case .destinationExists(let path):
            "\(path): already exists; refusing to replace it"
        case .io(let path, let operation, let errno):
            "\(path): \(operation) failed: \(errno)"
        }
    }
}
