// SPDX-License-Identifier: Apache-2.0
// Header: parses and fully validates a safetensors header (hostile input).

import Foundation

/// The validated header of a safetensors file.
///
/// Layout: an 8-byte little-endian header length `n`, `n` bytes of UTF-8 JSON, then the data
/// section. Validation follows huggingface/safetensors `validate` and goes further: every tensor
/// entry is well formed, every byte size is computed with overflow checks, the tensors tile the
/// data section exactly (sorted by offset: contiguous, no gap, no overlap, no trailing bytes).
public struct Header: Sendable, Equatable {
    /// Largest accepted header, in bytes: 100 MB, the limit of the reference implementation.
    /// A real 7B checkpoint's header is about 30 KB.
    public static let maximumLength = 100_000_000

    /// Tensors in data-offset order.
    public let tensors: [TensorInfo]
    /// The `__metadata__` object (string to string), empty when absent.
    public let metadata: [String: String]
    /// The JSON header's length in bytes (the value of the 8-byte prefix).
    public let length: Int

    /// Offset of the data section from the start of the file.
    public var dataStart: Int { 8 + length }
    /// Size of the data section in bytes (the end offset of the last tensor).
    public var dataSize: Int { tensors.last?.dataOffsets.upperBound ?? 0 }
    /// Total size of a file with this header.
    public var fileSize: Int { dataStart + dataSize }

    /// Reads the 8-byte little-endian length prefix and checks it against the limit and the file size.
    /// - Parameters:
    ///   - prefix: at least the first 8 bytes of the file.
    ///   - fileSize: the whole file's size.
    ///   - file: the file's name, for error messages.
    /// - Returns: the header length.
    /// - Throws: `SafeTensorsError` when the file is too small or the length is out of range.
    public static func headerLength(prefix: UnsafeRawBufferPointer, fileSize: Int, file: String) throws -> Int {
        guard fileSize >= 8, prefix.count >= 8 else { throw SafeTensorsError.fileTooSmall(file: file, size: fileSize) }
        var raw: UInt64 = 0
        for i in 0..<8 { raw |= UInt64(prefix[i]) << (8 * UInt64(i)) }
        guard raw <= UInt64(maximumLength) else {
            throw SafeTensorsError.headerTooLarge(file: file, declared: raw, limit: maximumLength)
        }
        guard raw <= UInt64(fileSize - 8) else {
            throw SafeTensorsError.headerBeyondFile(file: file, declared: raw, fileSize: fileSize)
        }
        return Int(raw)
    }

    /// Parses and validates a header.
    /// - Parameters:
    ///   - json: the header's JSON bytes (without the length prefix).
    ///   - dataSize: the size of the data section (file size − 8 − header length), or `nil` to skip
    ///     the bounds and trailing-bytes checks (used when only the header has been read).
    ///   - file: the file's name, for error messages.
    /// - Throws: `SafeTensorsError` naming the first problem found.
    public static func parse(json: UnsafeRawBufferPointer, dataSize: Int?, file: String) throws -> Header {
        let object = try StrictJSON.parseObject(json, file: file)
        var tensors: [TensorInfo] = []
        var metadata: [String: String] = [:]
        for (key, value) in object {
            if key == "__metadata__" {
                metadata = try parseMetadata(value, file: file)
            } else {
                tensors.append(try parseEntry(name: key, value: value, file: file))
            }
        }
        // Sort by (begin, end) like the reference's `validate`, so zero-sized tensors come before a
        // tensor starting at the same offset; ties by name keep the order deterministic.
        tensors.sort {
            ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name)
                < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name)
        }
        var expected = 0
        var previous: String?
        for tensor in tensors {
            let begin = tensor.dataOffsets.lowerBound
            if begin > expected {
                throw SafeTensorsError.dataGap(file: file, tensor: tensor.name, expectedBegin: expected, begin: begin)
            }
            if begin < expected, let previous {
                throw SafeTensorsError.tensorsOverlap(
                    file: file,
                    tensor: tensor.name,
                    previous: previous,
                    previousEnd: expected,
                    begin: begin
                )
            }
            if let dataSize, tensor.dataOffsets.upperBound > dataSize {
                throw SafeTensorsError.dataOutOfBounds(
                    file: file,
                    tensor: tensor.name,
                    end: tensor.dataOffsets.upperBound,
                    dataSize: dataSize
                )
            }
            expected = tensor.dataOffsets.upperBound
            previous = tensor.name
        }
        if let dataSize, expected != dataSize {
            throw SafeTensorsError.trailingBytes(file: file, dataEnd: expected, dataSize: dataSize)
        }
        return Header(tensors: tensors, metadata: metadata, length: json.count)
    }

    private static func parseMetadata(_ value: StrictJSON.Value, file: String) throws -> [String: String] {
        guard case .object(let pairs) = value else {
            throw SafeTensorsError.invalidMetadata(file: file, key: "__metadata__", reason: "expected an object")
        }
        var result: [String: String] = [:]
        for (key, entry) in pairs {
            guard case .string(let string) = entry else {
                throw SafeTensorsError.invalidMetadata(
                    file: file,
                    key: key,
                    reason: "expected a string value, found \(entry.kindName)"
                )
            }
            result[key] = string
        }
        return result
    }

    private static func parseEntry(name: String, value: StrictJSON.Value, file: String) throws -> TensorInfo {
        guard case .object(let pairs) = value else {
            throw SafeTensorsError.malformedEntry(
                file: file,
                tensor: name,
                reason: "expected an object, found \(value.kindName)"
            )
        }
        var fields: [String: StrictJSON.Value] = [:]
        for (key, entry) in pairs { fields[key] = entry }
        for key in fields.keys where !["dtype", "shape", "data_offsets"].contains(key) {
            throw SafeTensorsError.malformedEntry(file: file, tensor: name, reason: "unknown field '\(key)'")
        }
        guard case .string(let dtypeName) = fields["dtype"] else {
            throw SafeTensorsError.malformedEntry(file: file, tensor: name, reason: "missing or non-string 'dtype'")
        }
        guard let dtype = DType(rawValue: dtypeName) else {
            throw SafeTensorsError.unsupportedDType(file: file, tensor: name, dtype: dtypeName)
        }
        guard case .array(let shapeValues) = fields["shape"] else {
            throw SafeTensorsError.malformedEntry(file: file, tensor: name, reason: "missing or non-array 'shape'")
        }
        var shape: [Int] = []
        for dim in shapeValues {
            switch dim {
            case .integer(let value) where value >= 0:
                shape.append(value)
            case .number(let value) where value > Double(Int.max) && value.rounded() == value:
                throw SafeTensorsError.sizeOverflow(file: file, tensor: name, shape: shapeText(shapeValues))
            default:
                throw SafeTensorsError.invalidShape(file: file, tensor: name, shape: shapeText(shapeValues))
            }
        }
        guard case .array(let offsetValues) = fields["data_offsets"], offsetValues.count == 2,
            case .integer(let begin) = offsetValues[0], case .integer(let end) = offsetValues[1]
        else {
            throw SafeTensorsError.malformedEntry(
                file: file,
                tensor: name,
                reason: "'data_offsets' must be an array of two integers"
            )
        }
        guard begin >= 0, end >= begin else {
            throw SafeTensorsError.invalidOffsets(file: file, tensor: name, begin: begin, end: end)
        }
        guard let bytes = TensorInfo.checkedByteCount(shape: shape, dtype: dtype) else {
            throw SafeTensorsError.sizeOverflow(file: file, tensor: name, shape: "\(shape)")
        }
        guard bytes == end - begin else {
            throw SafeTensorsError.sizeMismatch(
                file: file,
                tensor: name,
                expectedBytes: bytes,
                declaredBytes: end - begin
            )
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end)
    }

    /// Renders a hostile shape for an error message, shortened to its first 16 dimensions.
    private static func shapeText(_ values: [StrictJSON.Value]) -> String {
        "[" + values.prefix(16).map(\.debugText).joined(separator: ", ") + (values.count > 16 ? ", …]" : "]")
    }
}
