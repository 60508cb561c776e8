// SPDX-License-Identifier: Apache-2.0
// Opening a file of an inbox checkpoint: never blocks, never leaves the checkpoint, regular files only.

import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Why a file of a checkpoint cannot be read.
enum InboxFileError: Error, Equatable, CustomStringConvertible {
    /// The name does not exist.
    case missing(name: String)
    /// The name exists but is not a regular file (a directory, a FIFO, a socket, a device).
    case notRegular(name: String, kind: String)
    /// A symbolic link resolves outside the checkpoint directory.
    case outsideCheckpoint(name: String, target: String)
    /// A system call failed (a symlink loop, permissions, I/O).
    case system(name: String, operation: String, errno: Int32)
    /// The file is larger than the reader accepts.
    case tooLarge(name: String, size: Int, limit: Int)

    var description: String {
        switch self {
        case .missing(let name): "'\(name)' does not exist"
        case .notRegular(let name, let kind): "'\(name)' is \(kind), not a regular file"
        case .outsideCheckpoint(let name, let target):
            "'\(name)' is a symbolic link to '\(target)', outside the checkpoint directory"
        case .system(let name, let operation, let code):
            "'\(name)': \(operation) failed: \(String(cString: strerror(code))) (errno \(code))"
        case .tooLarge(let name, let size, let limit): "'\(name)' is \(size) bytes, the limit is \(limit)"
        }
    }
}

/// One file of an inbox checkpoint, opened for reading.
///
/// Inbox files are hostile: a FIFO named `model.safetensors` must not block the watcher, and a
/// symbolic link must not make the daemon read a file outside the checkpoint. So `open` resolves a
/// symbolic link only when its target stays inside the checkpoint directory, opens with
/// `O_NONBLOCK | O_NOFOLLOW` (a FIFO opens at once; a link swapped in meanwhile fails with `ELOOP`),
/// and accepts only a regular file (`fstat`). Names must already be plain file names (no `/`).
///
/// ```swift
/// let file = try InboxFile.open("config.json", in: checkpoint)
/// defer { file.close() }
/// let bytes = try file.readAll(limit: 16 << 20)
/// ```
struct InboxFile: ~Copyable {
    /// The name inside the checkpoint, for messages.
    let name: String
    /// The file's size when it was opened.
    let size: Int
    private let descriptor: Int32

    private init(name: String, size: Int, descriptor: Int32) {
        self.name = name
        self.size = size
        self.descriptor = descriptor
    }

    deinit { Glibc.close(descriptor) }

    /// Opens `name` in `directory`.
    /// - Throws: `InboxFileError`.
    static func open(_ name: String, in directory: URL) throws(InboxFileError) -> InboxFile {
        let path = try resolve(name, in: directory)
        let fd = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            if code == ENOENT { throw .missing(name: name) }
            throw .system(name: name, operation: "open", errno: code)
        }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw .system(name: name, operation: "fstat", errno: code)
        }
        guard status.st_mode & S_IFMT == S_IFREG else {
            Glibc.close(fd)
            throw .notRegular(name: name, kind: kind(of: status.st_mode))
        }
        return InboxFile(name: name, size: Int(status.st_size), descriptor: fd)
    }

    /// The path to open for `name`: `directory/name`, or a symbolic link's target when that lies inside
    /// `directory`.
    private static func resolve(_ name: String, in directory: URL) throws(InboxFileError) -> String {
        let path = directory.appendingPathComponent(name).path
        var status = stat()
        guard lstat(path, &status) == 0 else {
            let code = errno
            if code == ENOENT { throw .missing(name: name) }
            throw .system(name: name, operation: "lstat", errno: code)
        }
        guard status.st_mode & S_IFMT == S_IFLNK else { return path }
        guard let target = realPath(path) else {
            throw .system(name: name, operation: "resolving the symbolic link", errno: errno)
        }
        guard let root = realPath(directory.path), target.hasPrefix(root.hasSuffix("/") ? root : root + "/") else {
            throw .outsideCheckpoint(name: name, target: target)
        }
        return target
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private static func kind(of mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: "a directory"
        case S_IFIFO: "a FIFO"
        case S_IFSOCK: "a socket"
        case S_IFCHR: "a character device"
        case S_IFBLK: "a block device"
        default: "a special file"
        }
    }

    /// Reads up to `count` bytes at `offset` (fewer only if the file is shorter).
    /// - Throws: `InboxFileError.system`.
    func read(at offset: Int, count: Int) throws(InboxFileError) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let got = bytes.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress! + filled, count - filled, off_t(offset + filled))
            }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else { throw .system(name: name, operation: "read", errno: errno) }
            if got == 0 { break }
            filled += got
        }
        return filled == count ? bytes : Array(bytes[0..<filled])
    }

    /// Reads the whole file, refusing one larger than `limit` bytes.
    /// - Throws: `InboxFileError.tooLarge` or `.system`.
    func readAll(limit: Int) throws(InboxFileError) -> [UInt8] {
        guard size <= limit else { throw .tooLarge(name: name, size: size, limit: limit) }
        return try read(at: 0, count: size)
    }
}
