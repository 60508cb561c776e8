// SPDX-License-Identifier: Apache-2.0
// ModelTestSupport: fixture paths, tensor slicing and a minimal safetensors writer for the model tests.

import DSnoTCore
import Foundation
import SafeTensors

enum ModelFixtures {
    /// `Resources/models` inside the test bundle.
    static var root: String {
        let resources = Bundle.module.bundleURL
        return resources.appendingPathComponent("Resources/models").path
    }

    static func path(_ model: String, _ file: String = "") -> String {
        file.isEmpty ? "\(root)/\(model)" : "\(root)/\(model)/\(file)"
    }

    /// Rows `[first, first + count)` of a `[N, L, C]` or `[L, C]` fp32 tensor flattened to `(count·…, C)`;
    /// `sequence` picks one `[L, C]` slice of a 3-D tensor.
    static func matrix(_ file: SafeTensorsFile, _ name: String, sequence: Int? = nil) throws -> Matrix {
        let info = try file.info(named: name)
        let values = try file.floats(named: name)
        let columns = info.shape.last ?? 1
        guard let sequence else { return Matrix(rows: values.count / columns, columns: columns, storage: values) }
        let rows = info.shape[info.shape.count - 2]
        let start = sequence * rows * columns
        return Matrix(rows: rows, columns: columns, storage: Array(values[start..<(start + rows * columns)]))
    }
}

/// A tensor to write: name, dtype, shape, little-endian bytes.
struct RawTensor {
    var name: String
    var dtype: DType
    var shape: [Int]
    var bytes: [UInt8]

    /// Every tensor of a file, as stored.
    static func all(in file: SafeTensorsFile) throws -> [RawTensor] {
        try file.tensorNames.map { name in
            let info = try file.info(named: name)
            return RawTensor(name: name, dtype: info.dtype, shape: info.shape, bytes: Array(file.rawBytes(of: info)))
        }
    }

    /// An F32 tensor.
    static func f32(_ name: String, shape: [Int], values: [Float]) -> RawTensor {
        RawTensor(
            name: name,
            dtype: .f32,
            shape: shape,
            bytes: values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
        )
    }

    /// Writes a safetensors file (header padded to 8 bytes, tensors contiguous in the given order).
    static func write(_ tensors: [RawTensor], to path: String) throws {
        var entries: [String] = []
        var offset = 0
        for t in tensors {
            entries.append(
                "\"\(t.name)\":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],"
                    + "\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}"
            )
            offset += t.bytes.count
        }
        var header = Array("{\(entries.joined(separator: ","))}".utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        var data = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header
        for t in tensors { data += t.bytes }
        try Data(data).write(to: URL(fileURLWithPath: path))
    }
}
