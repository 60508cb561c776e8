// SPDX-License-Identifier: Apache-2.0
// SparseTensorGroups: recognises and validates the compressed-tensors sparse groups of a safetensors file.

public import SafeTensors

/// A safetensors file's tensors, with each sparse group (`X.shape`, `X.compressed`, `X.bitmask`,
/// optional `X.row_offsets`) resolved into one logical dense tensor `X.weight`.
public struct SparseTensorGroups {
    /// One sparse weight, validated against its `.shape`.
    public struct Group {
        /// The module name `X`; the dense tensor is `X.weight`.
        public var module: String
        public var structure: SparsityStructure
        public var rows: Int
        public var cols: Int
        public var compressed: TensorInfo
        public var bitmask: TensorInfo
        public var rowOffsets: TensorInfo?
        public var shape: TensorInfo
        /// Its member tensors: `.shape`, `.compressed`, `.bitmask` and `.row_offsets` when present.
        public var members: [TensorInfo] { [shape, compressed, bitmask] + (rowOffsets.map { [$0] } ?? []) }
        /// Name of the dense tensor.
        public var denseName: String { module + ".weight" }
        /// Element type of the dense tensor.
        public var dtype: DType { compressed.dtype }
        /// Byte size of the dense tensor.
        public var denseBytes: Int { rows * cols * dtype.byteWidth }
        /// Bytes stored for it in the sparse file (all member tensors).
        public var storedBytes: Int { members.reduce(0) { $0 + $1.byteCount } }
        /// Fraction of the dense tensor not stored.
        public var sparsity: Double {
            rows * cols == 0 ? 0 : 1 - Double(compressed.elementCount) / Double(rows * cols)
        }
    }

    /// A tensor of the file: stored as is, or a sparse group.
    public enum Item {
        case plain(TensorInfo)
        case sparse(Group)

        /// The name of the dense tensor this item restores.
        public var denseName: String {
            switch self {
            case .plain(let info): info.name
            case .sparse(let group): group.denseName
            }
        }
    }

    /// Items in data order (a group sits where its first member is).
    public let items: [Item]

    static let suffixes = [".shape", ".compressed", ".bitmask", ".row_offsets"]

    /// Classifies and checks every tensor of `file` (header plus the 16-byte `.shape` values).
    /// - Throws: `SparseFormatError.invalidSparseTensor`, `.invalidShape`.
    public init(file: SafeTensorsFile) throws {
        try self.init(tensors: file.header.tensors, path: file.path) { Array(file.rawBytes(of: $0)) }
    }

    /// Classifies and checks `tensors` (a safetensors header's entries, in data order) when the data
    /// section is not mapped: `shapeBytes` returns the 16 bytes of a group's `.shape` tensor.
    /// - Parameter path: the file's name, for error messages.
    /// - Throws: `SparseFormatError.invalidSparseTensor`, `.invalidShape`, or what `shapeBytes` throws.
    public init(tensors: [TensorInfo], path: String, shapeBytes: (TensorInfo) throws -> [UInt8]) throws {
        var byName: [String: TensorInfo] = [:]
        for info in tensors { byName[info.name] = info }
        var modules = Set<String>()
        for info in tensors {
            for suffix in [".compressed", ".bitmask"] where info.name.hasSuffix(suffix) {
                modules.insert(String(info.name.dropLast(suffix.count)))
            }
        }
        var groups: [String: Group] = [:]
        for module in modules {
            groups[module] = try Self.group(module: module, path: path, byName: byName, shapeBytes: shapeBytes)
        }
        var items: [Item] = []
        var emitted = Set<String>()
        for info in tensors {
            let module = Self.suffixes.lazy.filter { info.name.hasSuffix($0) }
                .map { String(info.name.dropLast($0.count)) }.first { groups[$0] != nil }
            if let module, let group = groups[module] {
                if emitted.insert(module).inserted { items.append(.sparse(group)) }
            } else {
                items.append(.plain(info))
            }
        }
        var denseNames = Set<String>()
        for item in items where !denseNames.insert(item.denseName).inserted {
            throw SparseFormatError.invalidSparseTensor(
                file: path,
                tensor: item.denseName,
                reason: "the dense name is produced twice"
            )
        }
        self.items = items
    }

    private static func group(
        module: String,
        path: String,
        byName: [String: TensorInfo],
        shapeBytes: (TensorInfo) throws -> [UInt8]
    ) throws -> Group {
        func member(_ suffix: String) throws -> TensorInfo {
            guard let info = byName[module + suffix] else {
                throw SparseFormatError.invalidSparseTensor(
                    file: path,
                    tensor: module,
                    reason: "missing '\(module + suffix)'"
                )
            }
            return info
        }
        func fail(_ reason: String) -> SparseFormatError {
            .invalidSparseTensor(file: path, tensor: module, reason: reason)
        }
        let shape = try member(".shape")
        let compressed = try member(".compressed")
        let bitmask = try member(".bitmask")
        let rowOffsets = byName[module + ".row_offsets"]
        let structure: SparsityStructure = rowOffsets == nil ? .twoFour : .unstructured
        guard shape.dtype == .i64, shape.elementCount == 2, shape.shape.count == (structure == .twoFour ? 2 : 1) else {
            throw fail(".shape must be I64 [2] (or [2, 1] for 2:4), got \(shape.dtype.rawValue) \(shape.shape)")
        }
        let dims = try shapeBytes(shape)
        guard dims.count == 16 else { throw fail(".shape holds \(dims.count) bytes, expected 16") }
        let (rows64, cols64) = dims.withUnsafeBytes {
            (
                Int64(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: Int64.self)),
                Int64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: Int64.self))
            )
        }
        guard rows64 >= 0, cols64 >= 0, let rows = Int(exactly: rows64), let cols = Int(exactly: cols64),
            TensorInfo.checkedByteCount(shape: [rows, cols], dtype: compressed.dtype) != nil,
            TensorInfo.checkedByteCount(shape: [rows, cols + 7], dtype: .u8) != nil
        else {
            throw SparseFormatError.invalidShape(file: path, tensor: module, shape: "[\(rows64), \(cols64)]")
        }
        guard bitmask.dtype == .u8, bitmask.shape == [rows, SparseBitmask.bitmaskRowBytes(cols: cols)] else {
            throw fail(
                ".bitmask must be U8 [\(rows), \(SparseBitmask.bitmaskRowBytes(cols: cols))], got \(bitmask.dtype.rawValue) \(bitmask.shape)"
            )
        }
        switch structure {
        case .unstructured:
            guard compressed.shape.count == 1 else { throw fail(".compressed must be 1-D, got \(compressed.shape)") }
            guard let rowOffsets, rowOffsets.dtype == .i64, rowOffsets.shape == [rows] else {
                throw fail(".row_offsets must be I64 [\(rows)]")
            }
        case .twoFour:
            guard cols % 4 == 0, compressed.shape == [rows, cols / 2] else {
                throw fail("2:4 .compressed must be [\(rows), \(cols / 2)] with cols % 4 == 0, got \(compressed.shape)")
            }
        }
        return Group(
            module: module,
            structure: structure,
            rows: rows,
            cols: cols,
            compressed: compressed,
            bitmask: bitmask,
            rowOffsets: rowOffsets,
            shape: shape
        )
    }

    /// Validates a group's contents and returns its dense bytes.
    /// - Throws: `SparseFormatError.popcountMismatch`, `.rowOffsetsInconsistent`, `.invalidSparseTensor`.
    public static func denseBytes(of group: Group, in file: SafeTensorsFile) throws -> [UInt8] {
        try denseBytes(of: group, path: file.path) { file.rawBytes(of: $0) }
    }

    /// Validates a group's contents and returns its dense bytes, its members' bytes given by `bytes`
    /// (each exactly the member's byte count; valid during the call).
    /// - Parameter path: the file's name, for error messages.
    /// - Throws: `SparseFormatError.popcountMismatch`, `.rowOffsetsInconsistent`, `.invalidSparseTensor`.
    public static func denseBytes(
        of group: Group,
        path: String,
        bytes: (TensorInfo) -> UnsafeRawBufferPointer
    ) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: group.denseBytes) { buffer, count in
            try expand(group, path: path, into: UnsafeMutableRawBufferPointer(buffer), bytes: bytes)
            count = group.denseBytes
        }
    }

    /// Validates a group's contents and writes its dense bytes into `dense` (exactly
    /// `group.denseBytes` bytes, every one written, so it may be reused from tensor to tensor).
    /// - Throws: as `denseBytes(of:path:bytes:)`.
    public static func expand(
        _ group: Group,
        path: String,
        into dense: UnsafeMutableRawBufferPointer,
        bytes: (TensorInfo) -> UnsafeRawBufferPointer
    ) throws {
        let width = group.dtype.byteWidth
        switch group.structure {
        case .unstructured:
            guard let rowOffsets = group.rowOffsets else {
                throw SparseFormatError.invalidSparseTensor(file: path, tensor: group.module, reason: "no .row_offsets")
            }
            let offsetsRaw = bytes(rowOffsets)
            let offsets = (0..<group.rows).map {
                Int64(littleEndian: offsetsRaw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))
            }
            try SparseBitmask.unpack(
                compressed: bytes(group.compressed),
                bitmask: bytes(group.bitmask),
                rowOffsets: offsets,
                rows: group.rows,
                cols: group.cols,
                width: width,
                into: dense,
                file: path,
                tensor: group.module
            )
        case .twoFour:
            try Sparse24Bitmask.unpack(
                compressed: bytes(group.compressed),
                bitmask: bytes(group.bitmask),
                rows: group.rows,
                cols: group.cols,
                width: width,
                into: dense,
                file: path,
                tensor: group.module
            )
        }
    }
}
