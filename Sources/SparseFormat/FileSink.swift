// SPDX-License-Identifier: Apache-2.0
// FileSink and file helpers: write, read in chunks, fsync, with errors that keep errno and the path.

public import SafeTensors
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A `ByteSink` that appends to a newly created file (never an existing one: `O_EXCL`).
public final class FileSink: ByteSink {
    /// The file's path.
    public let path: String
    /// Bytes written so far.
    public private(set) var bytesWritten: UInt64 = 0
    private var fd: FileDescriptor?

    /// Bytes after which `write` starts the kernel's writeback of what was written (0: never).
    private let writebackInterval: UInt64
    private var writebackStart: UInt64 = 0

    /// Creates `path` (which must not exist) for writing, mode 0644.
    /// - Parameters:
    ///   - startingWriteback: for a file that will be published (fsynced): every 8 MiB written, start
    ///     the kernel writing them to disk (`posix_fadvise(POSIX_FADV_DONTNEED)`, which on Linux
    ///     starts writeback without waiting), so that the publishing fsync finds little left to
    ///     write. Durability still comes only from that fsync.
    /// - Throws: `SparseFormatError.io` (`EEXIST` when the file exists).
    public init(creating path: String, startingWriteback: Bool = false) throws {
        self.path = path
        writebackInterval = startingWriteback ? 8 << 20 : 0
        fd = try FileIO.durable { try DurableFile.create(path) }
    }

    /// Reopens an existing file (not through a symlink) for appending after its first `size` bytes,
    /// cutting off the rest: a writer continuing a file up to a known-good length.
    /// - Throws: `SparseFormatError.io` (`ENOENT` when the file is missing).
    public init(continuing path: String, truncatingTo size: UInt64) throws {
        self.path = path
        let fd = try FileIO.call(path, "open") {
            try FileDescriptor.open(FilePath(path), .writeOnly, options: [.closeOnExec, .noFollow])
        }
        do {
            guard ftruncate(fd.rawValue, off_t(size)) == 0 else {
                throw SparseFormatError.io(path: path, operation: "ftruncate", errno: Errno(rawValue: errno))
            }
            _ = try FileIO.call(path, "lseek") { try fd.seek(offset: Int64(size), from: .start) }
        } catch {
            try? fd.close()
            throw error
        }
        self.fd = fd
        bytesWritten = size
        writebackInterval = 0
    }

    deinit { try? fd?.close() }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let fd else { preconditionFailure("FileSink.write after close") }
        _ = try FileIO.call(path, "write") { try fd.writeAll(bytes) }
        bytesWritten += UInt64(bytes.count)
        if writebackInterval > 0 && bytesWritten - writebackStart >= writebackInterval {
            // Advisory: on Linux POSIX_FADV_DONTNEED starts writeback of the range's dirty pages
            // without waiting (WB_SYNC_NONE) and drops the pages already clean; a failure changes
            // nothing the publishing fsync does not check.
            _ = posix_fadvise(
                fd.rawValue,
                off_t(writebackStart),
                off_t(bytesWritten - writebackStart),
                POSIX_FADV_DONTNEED
            )
            writebackStart = bytesWritten
        }
    }

    /// Closes the file without syncing it (temporary files; published outputs are synced by
    /// `AtomicPublisher.publish`, which fsyncs every file of the tree).
    /// - Throws: `SparseFormatError.io`.
    public func close() throws {
        guard let fd else { return }
        self.fd = nil
        try FileIO.call(path, "close") { try fd.close() }
    }

    /// Flushes the file's data to disk (`fsync`), keeping it open.
    /// - Throws: `SparseFormatError.io`.
    public func sync() throws {
        guard let fd else { return }
        try FileIO.fsync(fd, path)
    }

    /// Flushes the file's data to disk (`fsync`) and closes it.
    /// - Throws: `SparseFormatError.io`.
    public func syncAndClose() throws {
        guard let fd else { return }
        self.fd = nil
        try FileIO.fsync(fd, path)
        try FileIO.call(path, "close") { try fd.close() }
    }
}

/// Small file-system helpers shared by the writer, the unpacker and the verifier.
enum FileIO {
    /// Chunk size for streaming reads and copies.
    static let chunkSize = 1 << 20

    /// Runs `body`, turning a thrown `Errno` into `SparseFormatError.io` with the path.
    static func call<R>(_ path: String, _ operation: String, _ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let errno as Errno {
            throw SparseFormatError.io(path: path, operation: operation, errno: errno)
        }
    }

    /// Runs `body`, turning SafeTensors' durable-file errors into `SparseFormatError.targetExists`/`.io`.
    static func durable<R>(_ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch SafeTensorsError.destinationExists(let path) {
            throw SparseFormatError.targetExists(path: path)
        } catch SafeTensorsError.io(let path, let operation, let errno) {
            throw SparseFormatError.io(path: path, operation: operation, errno: errno)
        }
    }

    /// `fsync(2)` of an open descriptor (`DurableFile.sync`).
    static func fsync(_ fd: FileDescriptor, _ path: String) throws {
        try durable { try DurableFile.sync(fd, path: path) }
    }

    /// `DurableFile.renameNoReplace`: `targetExists` when `destination` is taken.
    static func renameNoReplace(from source: String, to destination: String) throws {
        try durable { try DurableFile.renameNoReplace(from: source, to: destination) }
    }

    /// Streams the file at `path` into `body`, `chunkSize` bytes at a time.
    static func forEachChunk(of path: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let fd = try call(path, "open") { try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) }
        defer { try? fd.close() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let count = try call(path, "read") { try fd.read(into: buffer) }
            if count == 0 { return }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    /// Copies `source` to the new file `destination` (not synced: see `FileSink.close`).
    static func copy(from source: String, to destination: String) throws {
        let sink = try FileSink(creating: destination)
        try forEachChunk(of: source) { try sink.write($0) }
        try sink.close()
    }

    /// Writes `bytes` to the new file `path` (not synced: see `FileSink.close`).
    static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
        let sink = try FileSink(creating: path)
        try bytes.withUnsafeBytes { try sink.write($0) }
        try sink.close()
    }

    /// Reads a whole (small) file: configs, indexes, manifests. Refuses files above `limit` bytes.
    static func readSmallFile(_ path: String, limit: Int = 64 << 20) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try forEachChunk(of: path) { chunk in
            guard bytes.count + chunk.count <= limit else {
                throw SparseFormatError.invalidOutput(path: path, reason: "larger than the \(limit)-byte limit")
            }
            bytes.append(contentsOf: chunk)
        }
        return bytes
    }

    /// `fsync` of a directory, so that entries created or renamed in it are durable.
    static func syncDirectory(_ path: String) throws {
        try durable { try DurableFile.syncDirectory(path) }
    }

    /// Size of the file at `path`.
    static func fileSize(_ path: String) throws -> UInt64 {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw SparseFormatError.io(path: path, operation: "stat", errno: Errno(rawValue: errno))
        }
        return UInt64(info.st_size)
    }

    /// Whether anything (file, directory, dangling link) exists at `path`.
    static func exists(_ path: String) -> Bool { DurableFile.exists(path) }

    /// Names in a directory, sorted, without `.` and `..`.
    static func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else {
            throw SparseFormatError.io(path: path, operation: "opendir", errno: Errno(rawValue: errno))
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Whether `path` is a directory (not following a final symlink).
    static func isDirectory(_ path: String) -> Bool { DurableFile.isDirectory(path) }

    /// Creates a fresh private directory `<parent>/<prefix>XXXXXX` (`mkdtemp`).
    static func makeTemporaryDirectory(in parent: String, prefix: String = ".dsnot-scratch-") throws -> String {
        var template = Array((parent + "/" + prefix + "XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else {
            throw SparseFormatError.io(path: parent, operation: "mkdtemp", errno: Errno(rawValue: errno))
        }
        return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs `body`, turning a thrown `SafeTensorsError` into `SparseFormatError.safeTensors`.
    static func safeTensors<R>(_ body: () throws -> R) throws -> R {
        do {
            return try body()
        } catch let error as SafeTensorsError {
            throw SparseFormatError.safeTensors(error)
        }
    }

    /// Removes a file tree (best effort for cleanup; errors on the top level are thrown).
    static func removeTree(_ path: String) throws {
        if isDirectory(path) {
            for name in try listDirectory(path) { try removeTree(path + "/" + name) }
            guard rmdir(path) == 0 else {
                throw SparseFormatError.io(path: path, operation: "rmdir", errno: Errno(rawValue: errno))
            }
        } else if unlink(path) != 0 && errno != ENOENT {
            throw SparseFormatError.io(path: path, operation: "unlink", errno: Errno(rawValue: errno))
        }
    }
}
