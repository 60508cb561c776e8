// SPDX-License-Identifier: Apache-2.0
// SafeTensorsFile: one safetensors file, validated and memory-mapped read-only.

import SystemPackage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A validated, memory-mapped, read-only safetensors file.
///
/// The whole header is validated when the file is opened (see `Header`), so every tensor's bytes
/// are in bounds. Raw bytes are zero-copy views into the mapping and stay valid while the
/// `SafeTensorsFile` is alive.
///
/// ```swift
/// let file = try SafeTensorsFile(path: "model.safetensors")
/// let info = try file.info(named: "model.norm.weight")
/// let values: [Float] = try file.floats(named: "model.norm.weight")  // any float dtype → F32
/// ```
public final class SafeTensorsFile: @unchecked Sendable {
    // @unchecked: the mapping is read-only and immutable for the object's lifetime.

    /// The path the file was opened with.
    public let path: String
    /// The validated header.
    public let header: Header
    private let base: UnsafeRawPointer?
    private let mappedLength: Int
    private let byName: [String: Int]

    /// Opens, maps and validates a file.
    /// - Parameter path: the file's path.
    /// - Throws: `SafeTensorsError` for an unreadable or invalid file.
    public init(path: String) throws {
        self.path = path
        let fd: FileDescriptor
        do {
            // Non-blocking: a FIFO must be refused below, not block the open until a writer appears.
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
            throw SafeTensorsError.io(path: path, operation: "open (not a regular file)", errno: .invalidArgument)
        }
        let size = Int(status.st_size)
        guard size >= 8 else { throw SafeTensorsError.fileTooSmall(file: path, size: size) }
        guard let mapping = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd.rawValue, 0), mapping != MAP_FAILED else {
            throw SafeTensorsError.io(path: path, operation: "mmap", errno: Errno(rawValue: errno))
        }
        let bytes = UnsafeRawBufferPointer(start: mapping, count: size)
        do {
            let length = try Header.headerLength(prefix: bytes, fileSize: size, file: path)
            let json = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + length)])
            header = try Header.parse(json: json, dataSize: size - 8 - length, file: path)
        } catch {
            munmap(mapping, size)
            throw error
        }
        base = UnsafeRawPointer(mapping)
        mappedLength = size
        var index: [String: Int] = [:]
        for (i, tensor) in header.tensors.enumerated() { index[tensor.name] = i }
        byName = index
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), mappedLength) }
    }

    /// Tensor names in data-offset order.
    public var tensorNames: [String] { header.tensors.map(\.name) }

    /// The header entry of a tensor, or `nil` when there is none of that name.
    public func info(ifPresent name: String) -> TensorInfo? {
        byName[name].map { header.tensors[$0] }
    }

    /// The header entry of a tensor.
    /// - Throws: `SafeTensorsError.tensorNotFound`.
    public func info(named name: String) throws -> TensorInfo {
        guard let info = info(ifPresent: name) else { throw SafeTensorsError.tensorNotFound(name: name, file: path) }
        return info
    }

    /// A zero-copy view of a tensor's bytes. Valid while this object is alive.
    /// - Precondition: `info` comes from this file's header.
    public func rawBytes(of info: TensorInfo) -> UnsafeRawBufferPointer {
        precondition(info.dataOffsets.upperBound <= header.dataSize, "rawBytes(of:): tensor not from this file")
        let start = header.dataStart + info.dataOffsets.lowerBound
        return UnsafeRawBufferPointer(start: base.map { $0 + start }, count: info.byteCount)
    }

    /// A zero-copy view of a tensor's bytes. Valid while this object is alive.
    /// - Throws: `SafeTensorsError.tensorNotFound`.
    public func rawBytes(named name: String) throws -> UnsafeRawBufferPointer {
        rawBytes(of: try info(named: name))
    }

    /// Drops the resident pages of a tensor's bytes from this process (`madvise(MADV_DONTNEED)`),
    /// once a caller has converted or copied them. Mapped pages count toward the process's RSS until
    /// unmapped or dropped, so without this a block-by-block pass over a checkpoint ends up with
    /// the whole file resident. Safe at any time: the mapping is private, read-only and never
    /// written, so a later read faults the same bytes back in from the file (page cache). The range
    /// is widened to whole pages; neighbouring tensors' pages are simply re-read if used.
    public func releasePages(of info: TensorInfo) {
        guard let base, info.byteCount > 0, info.dataOffsets.upperBound <= header.dataSize else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = header.dataStart + info.dataOffsets.lowerBound
        let first = start / page * page
        let end = min(mappedLength, (start + info.byteCount + page - 1) / page * page)
        // Advisory: a failure only leaves the pages resident.
        _ = madvise(UnsafeMutableRawPointer(mutating: base + first), end - first, MADV_DONTNEED)
    }

    /// Calls `body` with a typed view of a tensor's elements: zero-copy when the data is aligned for
    /// `Element` (always, for files whose header length is a multiple of 8, as writers produce),
    /// otherwise a temporary aligned copy.
    ///
    /// ```swift
    /// try file.withElements(named: "w", as: UInt16.self) { bits in … }   // BF16 or F16 bits
    /// ```
    /// - Throws: `SafeTensorsError.tensorNotFound`, `.typeMismatch` when `Element` cannot represent the
    ///   dtype, or what `body` throws.
    public func withElements<Element: SafeTensorsElement, R>(
        named name: String,
        as type: Element.Type,
        _ body: (UnsafeBufferPointer<Element>) throws -> R
    ) throws -> R {
        let info = try info(named: name)
        guard Element.dtypes.contains(info.dtype) else {
            throw SafeTensorsError.typeMismatch(
                file: path,
                tensor: name,
                dtype: info.dtype,
                requested: "\(Element.self)"
            )
        }
        let raw = rawBytes(of: info)
        let count = info.elementCount
        if let start = raw.baseAddress, Int(bitPattern: start) % MemoryLayout<Element>.alignment == 0 {
            return try raw.withMemoryRebound(to: Element.self) { try body($0) }
        }
        let copy = [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: raw)
            initialized = count
        }
        return try copy.withUnsafeBufferPointer(body)
    }

    /// A tensor's values converted to `Float` (from F64, F32, F16 or BF16) in a new array.
    /// - Throws: `SafeTensorsError.tensorNotFound` or `.typeMismatch` for a non-float dtype.
    public func floats(named name: String) throws -> [Float] {
        let info = try floatInfo(named: name)
        return [Float](unsafeUninitializedCapacity: info.elementCount) { buffer, count in
            FloatConversion.convert(rawBytes(of: info), dtype: info.dtype, into: buffer)
            count = info.elementCount
        }
    }

    /// Converts a tensor's values to `Float` into a caller-owned buffer (reused across tensors, it
    /// saves the page faults of a fresh allocation, which cost more than the conversion).
    /// - Parameters:
    ///   - name: a tensor of dtype F64, F32, F16 or BF16.
    ///   - destination: exactly `elementCount` floats.
    /// - Throws: `SafeTensorsError.tensorNotFound`, `.typeMismatch`, or `.wrongByteCount` when
    ///   `destination` does not hold exactly the tensor's elements.
    public func floats(named name: String, into destination: UnsafeMutableBufferPointer<Float>) throws {
        let info = try floatInfo(named: name)
        guard destination.count == info.elementCount else {
            throw SafeTensorsError.wrongByteCount(
                file: path,
                tensor: name,
                expectedBytes: 4 * info.elementCount,
                actualBytes: 4 * destination.count
            )
        }
        FloatConversion.convert(rawBytes(of: info), dtype: info.dtype, into: destination)
    }

    private func floatInfo(named name: String) throws -> TensorInfo {
        let info = try info(named: name)
        guard info.dtype.isFloatingPoint else {
            throw SafeTensorsError.typeMismatch(file: path, tensor: name, dtype: info.dtype, requested: "Float")
        }
        return info
    }

    /// A tensor's values as `Int` (from I64, I32, I16, I8, U8 or BOOL).
    /// - Throws: `SafeTensorsError.tensorNotFound` or `.typeMismatch` for a float dtype.
    public func integers(named name: String) throws -> [Int] {
        let info = try info(named: name)
        let raw = rawBytes(of: info)
        let n = info.elementCount
        switch info.dtype {
        case .i64:
            return (0..<n).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }
        case .i32:
            return (0..<n).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }
        case .i16:
            return (0..<n).map { Int(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: Int16.self))) }
        case .i8: return (0..<n).map { Int(Int8(bitPattern: raw[$0])) }
        case .u8, .bool: return (0..<n).map { Int(raw[$0]) }
        case .f64, .f32, .f16, .bf16:
            throw SafeTensorsError.typeMismatch(file: path, tensor: name, dtype: info.dtype, requested: "Int")
        }
    }
}
