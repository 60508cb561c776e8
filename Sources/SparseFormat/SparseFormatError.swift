// SPDX-License-Identifier: Apache-2.0
// SparseFormatError: every way writing, unpacking, inspecting or verifying a sparse output can fail.

public import SafeTensors
public import SystemPackage

/// Why a sparse output could not be written, or why an existing one was rejected.
///
/// Output directories, LZ4 frames and the safetensors files inside them are hostile input to
/// `unpack`, `inspect` and `verify`: every case names the file (and the tensor, where there is one)
/// and says what was expected and what was found. Nothing here traps on file contents.
public enum SparseFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    /// liblz4 reported an error (its `LZ4F_getErrorName`).
    case lz4(file: String, operation: String, reason: String)
    /// The file does not start with the LZ4 frame magic number.
    case notLZ4Frame(file: String, magic: UInt32)
    /// The file ends before the LZ4 frame does.
    case truncatedFrame(file: String, decompressedBytes: UInt64)
    /// The frame's content checksum does not match its content.
    case frameChecksumMismatch(file: String)
    /// The frame does not declare its content size (dsnot always records it).
    case contentSizeMissing(file: String)
    /// The frame's declared content size differs from what it decompresses to.
    case contentSizeMismatch(file: String, declared: UInt64, actual: UInt64)
    /// Bytes follow the end of the LZ4 frame.
    case trailingData(file: String, frameEnd: UInt64)
    /// The safetensors file inside a frame is invalid.
    case safeTensors(SafeTensorsError)
    /// A sparse tensor group (`.shape`, `.compressed`, `.bitmask`, `.row_offsets`) is inconsistent.
    case invalidSparseTensor(file: String, tensor: String, reason: String)
    /// The bitmask selects a different number of values than `.compressed` holds.
    case popcountMismatch(file: String, tensor: String, bitmaskCount: Int, compressedCount: Int)
    /// `.row_offsets` disagrees with the bitmask's per-row counts.
    case rowOffsetsInconsistent(file: String, tensor: String, row: Int, expected: Int, found: Int)
    /// A `.shape` tensor is not two non-negative dimensions whose byte size fits in `Int`.
    case invalidShape(file: String, tensor: String, shape: String)
    /// A tensor meant for the 2:4 layout has more than two non-zeros in a group of four.
    case notTwoFour(tensor: String, row: Int, column: Int, nonZeros: Int)
    /// The writer was given a tensor the output plan does not contain, or twice, or with a bad size.
    case unexpectedTensor(tensor: String, reason: String)
    /// The output is incomplete: these planned tensors were never written.
    case missingTensors(shard: String, tensors: [String])
    /// A file's SHA-256 differs from the manifest.
    case checksumMismatch(file: String, expected: String, found: String)
    /// The output directory or its manifest/config/index is malformed.
    case invalidOutput(path: String, reason: String)
    /// A tensor cannot be read from a sparse output: absent, or its shard no longer matches what
    /// `SparseOutputReader` found when it opened the directory.
    case tensorUnreadable(file: String, tensor: String, reason: String)
    /// The publishing target already exists (never replaced).
    case targetExists(path: String)
    /// A system call failed.
    case io(path: String, operation: String, errno: Errno)

    public var description: String {
        switch self {
        case .lz4(let file, let operation, let reason):
            "\(file): liblz4 \(operation) failed: \(reason)"
        case .notLZ4Frame(let file, let magic):
            "\(file): not an LZ4 frame (magic 0x\(String(magic, radix: 16)), expected 0x184d2204)"
        case .truncatedFrame(let file, let produced):
            "\(file): LZ4 frame is truncated (file ends after \(produced) decompressed bytes)"
        case .frameChecksumMismatch(let file):
            "\(file): LZ4 content checksum mismatch (the frame is corrupt)"
        case .contentSizeMissing(let file):
            "\(file): LZ4 frame does not declare its content size"
        case .contentSizeMismatch(let file, let declared, let actual):
            "\(file): LZ4 frame declares \(declared) content bytes, decompresses to \(actual)"
        case .trailingData(let file, let end):
            "\(file): unexpected bytes after the LZ4 frame ending at offset \(end)"
        case .safeTensors(let error):
            error.description
        case .invalidSparseTensor(let file, let tensor, let reason):
            "\(file): sparse tensor '\(tensor)': \(reason)"
        case .popcountMismatch(let file, let tensor, let bits, let count):
            "\(file): sparse tensor '\(tensor)': bitmask selects \(bits) values, .compressed holds \(count)"
        case .rowOffsetsInconsistent(let file, let tensor, let row, let expected, let found):
            "\(file): sparse tensor '\(tensor)': row_offsets[\(row)] should be \(expected), found \(found)"
        case .invalidShape(let file, let tensor, let shape):
            "\(file): sparse tensor '\(tensor)': shape \(shape) is not [rows, cols] with a byte size that fits"
        case .notTwoFour(let tensor, let row, let column, let nonZeros):
            "tensor '\(tensor)': row \(row), columns \(column)..<\(column + 4) hold \(nonZeros) non-zeros, 2:4 allows 2"
        case .unexpectedTensor(let tensor, let reason):
            "tensor '\(tensor)': \(reason)"
        case .missingTensors(let shard, let tensors):
            "\(shard): \(tensors.count) planned tensors were never written (first: \(tensors.first ?? "?"))"
        case .checksumMismatch(let file, let expected, let found):
            "\(file): sha256 \(found), manifest says \(expected)"
        case .invalidOutput(let path, let reason):
            "\(path): \(reason)"
        case .tensorUnreadable(let file, let tensor, let reason):
            "\(file): tensor '\(tensor)': \(reason)"
        case .targetExists(let path):
            "\(path): already exists (outputs are never replaced)"
        case .io(let path, let operation, let errno):
            "\(path): \(operation) failed: \(errno)"
        }
    }
}
