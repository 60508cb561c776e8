// SPDX-License-Identifier: Apache-2.0
// SparseInspector: `dsnotctl inspect` — per-tensor shape, dtype, sparsity, pattern, bytes before/after.

import Foundation
import SafeTensors

/// Describes a sparse output (a directory, one `.safetensors.lz4` frame or a plain `.safetensors`).
public enum SparseInspector {
    /// One logical (dense) tensor.
    public struct Tensor: Sendable, Codable, Equatable {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        /// `dense`, `sparse-bitmask` or `sparse-24-bitmask`.
        public var layout: String
        /// `unstructured`, `2:4`, or `nil` for a tensor stored as is.
        public var pattern: String?
        /// Fraction of elements that are not stored (sparse) or are `+0` (dense).
        public var sparsity: Double
        /// Bytes in dense form.
        public var denseBytes: Int
        /// Bytes in the sparse safetensors file (all member tensors of a group).
        public var storedBytes: Int

        enum CodingKeys: String, CodingKey {
            case name, dtype, shape, layout, pattern, sparsity
            case denseBytes = "dense_bytes"
            case storedBytes = "stored_bytes"
        }
    }

    /// One file.
    public struct File: Sendable, Codable, Equatable {
        public var name: String
        /// Size on disk.
        public var fileBytes: UInt64
        /// Size of the safetensors content (decompressed).
        public var safetensorsBytes: UInt64
        public var tensors: [Tensor]

        enum CodingKeys: String, CodingKey {
            case name, tensors
            case fileBytes = "file_bytes"
            case safetensorsBytes = "safetensors_bytes"
        }
    }

    /// The whole report (`--json` prints it).
    public struct Report: Sendable, Codable, Equatable {
        public var files: [File]
        /// Sum of the tensors' dense sizes.
        public var denseBytes: UInt64
        /// Sum of the files' sizes on disk.
        public var fileBytes: UInt64
        /// `denseBytes / fileBytes`.
        public var ratio: Double

        enum CodingKeys: String, CodingKey {
            case files, ratio
            case denseBytes = "dense_bytes"
            case fileBytes = "file_bytes"
        }
    }

    /// Inspects `path`: a directory (every `*.safetensors.lz4`, else every `*.safetensors`), or one file.
    /// Files are listed by name, and each file's tensors in natural order (`layers.2` before `layers.10`).
    /// - Parameter scratchDirectory: where frames are decompressed, one at a time (default: system temp).
    /// - Throws: any `SparseFormatError` about the files.
    public static func inspect(path: String, scratchDirectory: String? = nil) throws -> Report {
        var paths: [String]
        if FileIO.isDirectory(path) {
            let names = try FileIO.listDirectory(path)
            let frames = names.filter { SparseUnpacker.shardName(ofFrame: $0) != nil }
            paths = (frames.isEmpty ? names.filter { $0.hasSuffix(".safetensors") } : frames).map { path + "/" + $0 }
        } else {
            paths = [path]
        }
        guard !paths.isEmpty else {
            throw SparseFormatError.invalidOutput(path: path, reason: "no *.safetensors.lz4 or *.safetensors files")
        }
        let scratch = try FileIO.makeTemporaryDirectory(in: scratchDirectory ?? NSTemporaryDirectory())
        defer { try? FileIO.removeTree(scratch) }
        var files: [File] = []
        for file in paths {
            var content = file
            if file.hasSuffix(".lz4") {
                content = scratch + "/content.safetensors"
                try SparseUnpacker.decompressShard(at: file, to: content)
            }
            defer { if content != file { try? FileIO.removeTree(content) } }
            let safetensors = try FileIO.safeTensors { try SafeTensorsFile(path: content) }
            let groups = try SparseTensorGroups(file: safetensors)
            files.append(
                File(
                    name: String(file.split(separator: "/").last ?? ""),
                    fileBytes: try FileIO.fileSize(file),
                    safetensorsBytes: UInt64(safetensors.header.fileSize),
                    tensors: groups.items.map { describe($0, in: safetensors) }
                        .sorted { naturallyPrecedes($0.name, $1.name) }
                )
            )
        }
        let dense = files.reduce(UInt64(0)) { $0 + $1.tensors.reduce(0) { $0 + UInt64($1.denseBytes) } }
        let onDisk = files.reduce(UInt64(0)) { $0 + $1.fileBytes }
        return Report(
            files: files,
            denseBytes: dense,
            fileBytes: onDisk,
            ratio: onDisk == 0 ? 0 : Double(dense) / Double(onDisk)
        )
    }

    /// Natural order of tensor names: runs of digits compare as numbers, so `layers.2` comes before
    /// `layers.10` (files written by Python's safetensors store them in string order); other bytes
    /// compare as bytes. Names equal as numbers (`01`, `1`) fall back to byte order: a total order.
    static func naturallyPrecedes(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }
        func digitRun(_ bytes: [UInt8], from start: Int) -> (significant: ArraySlice<UInt8>, end: Int) {
            var end = start
            while end < bytes.count && isDigit(bytes[end]) { end += 1 }
            var first = start
            while first < end - 1 && bytes[first] == 0x30 { first += 1 }
            return (bytes[first..<end], end)
        }
        var i = 0
        var j = 0
        while i < x.count && j < y.count {
            if isDigit(x[i]) && isDigit(y[j]) {
                let (m, nextI) = digitRun(x, from: i)
                let (n, nextJ) = digitRun(y, from: j)
                if m.count != n.count { return m.count < n.count }
                if m != n { return m.lexicographicallyPrecedes(n) }
                (i, j) = (nextI, nextJ)
            } else {
                if x[i] != y[j] { return x[i] < y[j] }
                (i, j) = (i + 1, j + 1)
            }
        }
        if i < x.count || j < y.count { return i == x.count }
        return x.lexicographicallyPrecedes(y)
    }

    private static func describe(_ item: SparseTensorGroups.Item, in file: SafeTensorsFile) -> Tensor {
        switch item {
        case .plain(let info):
            let raw = file.rawBytes(of: info)
            let width = info.dtype.byteWidth
            var zeros = 0
            for i in 0..<info.elementCount where !ElementBytes.isNonZero(raw, index: i, width: width) { zeros += 1 }
            return Tensor(
                name: info.name,
                dtype: info.dtype.rawValue,
                shape: info.shape,
                layout: "dense",
                pattern: nil,
                sparsity: info.elementCount == 0 ? 0 : Double(zeros) / Double(info.elementCount),
                denseBytes: info.byteCount,
                storedBytes: info.byteCount
            )
        case .sparse(let group):
            return Tensor(
                name: group.denseName,
                dtype: group.dtype.rawValue,
                shape: [group.rows, group.cols],
                layout: group.structure.formatName,
                pattern: group.structure.rawValue,
                sparsity: group.sparsity,
                denseBytes: group.denseBytes,
                storedBytes: group.storedBytes
            )
        }
    }

    /// A human-readable table of `report`.
    public static func render(_ report: Report) -> String {
        var lines: [String] = []
        for file in report.files {
            lines.append("\(file.name): \(file.fileBytes) bytes on disk, \(file.safetensorsBytes) bytes of safetensors")
            for t in file.tensors {
                let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
                let sparsity = String(format: "%.2f%%", t.sparsity * 100)
                lines.append(
                    "  \(t.name)  \(t.dtype) \(shape)  \(t.layout)\(t.pattern.map { " \($0)" } ?? "")  sparsity \(sparsity)  "
                        + "\(t.denseBytes) → \(t.storedBytes) bytes"
                )
            }
        }
        lines.append(
            "total: \(report.denseBytes) dense bytes → \(report.fileBytes) bytes on disk, ratio "
                + String(format: "%.3f", report.ratio)
        )
        return lines.joined(separator: "\n")
    }
}
