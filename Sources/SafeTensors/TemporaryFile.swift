// SPDX-License-Identifier: Apache-2.0
// TemporaryFile: the crash-safe publish protocol shared by the writers (O_EXCL temp, fsync, no-replace rename).

import SystemPackage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A hidden temporary file next to its final path, published atomically without replacing anything.
///
/// Protocol: create `<dir>/.<name>.tmp-<random>` with `O_CREAT | O_EXCL`, write, `fsync` the file,
/// link it to its final name with `renameat2(RENAME_NOREPLACE)` (or `link` + `unlink` where the
/// file system lacks it), then `fsync` the directory so the new name survives a crash. A reader never
/// sees a half-written file under the final name, and an existing file is never replaced.
struct TemporaryFile {
    let finalPath: String
    let temporaryPath: String
    let directory: String
    private(set) var descriptor: FileDescriptor?

    /// Creates the temporary file.
    /// - Throws: `SafeTensorsError.destinationExists` when `finalPath` exists, `.io` otherwise.
    init(finalPath: String) throws {
        let path = FilePath(finalPath)
        guard let name = path.lastComponent?.string, !name.isEmpty else {
            throw SafeTensorsError.io(path: finalPath, operation: "open (no file name)", errno: .invalidArgument)
        }
        var parent = path
        parent.removeLastComponent()
        directory = parent.isEmpty ? "." : parent.string
        self.finalPath = finalPath
        guard !Self.exists(finalPath) else { throw SafeTensorsError.destinationExists(path: finalPath) }
        var attempt = 0
        while true {
            let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
            let candidate = (parent.isEmpty ? "" : parent.string + "/") + ".\(name).tmp-\(suffix)"
            do {
                descriptor = try FileDescriptor.open(
                    FilePath(candidate),
                    .writeOnly,
                    options: [.create, .exclusiveCreate, .closeOnExec],
                    permissions: [.ownerReadWrite, .groupRead, .otherRead],
                    retryOnInterrupt: true
                )
                temporaryPath = candidate
                return
            } catch let errno as Errno {
                attempt += 1
                guard errno == .fileExists, attempt < 16 else {
                    throw SafeTensorsError.io(path: candidate, operation: "create", errno: errno)
                }
            }
        }
    }

    static func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }

    /// Writes all of `bytes` at the current position.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let descriptor else { throw SafeTensorsError.writerClosed(file: finalPath) }
        do {
            _ = try descriptor.writeAll(bytes)
        } catch let errno as Errno {
            throw SafeTensorsError.io(path: temporaryPath, operation: "write", errno: errno)
        }
    }

    /// Writes all of `bytes` at `offset`.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        guard let descriptor else { throw SafeTensorsError.writerClosed(file: finalPath) }
        do {
            _ = try descriptor.writeAll(toAbsoluteOffset: Int64(offset), bytes)
        } catch let errno as Errno {
            throw SafeTensorsError.io(path: temporaryPath, operation: "pwrite", errno: errno)
        }
    }

    /// Sets the file's size (sparse; later `pwrite`s fill it).
    func truncate(to size: Int) throws {
        guard let descriptor else { throw SafeTensorsError.writerClosed(file: finalPath) }
        guard ftruncate(descriptor.rawValue, off_t(size)) == 0 else {
            throw SafeTensorsError.io(path: temporaryPath, operation: "ftruncate", errno: Errno(rawValue: errno))
        }
    }

    /// fsyncs and closes the temporary file, publishes it under its final name, fsyncs the directory.
    /// On failure the temporary file is removed.
    mutating func publish() throws {
        guard let descriptor else { throw SafeTensorsError.writerClosed(file: finalPath) }
        self.descriptor = nil
        do {
            guard fsync(descriptor.rawValue) == 0 else {
                throw SafeTensorsError.io(path: temporaryPath, operation: "fsync", errno: Errno(rawValue: errno))
            }
            do { try descriptor.close() } catch let errno as Errno {
                throw SafeTensorsError.io(path: temporaryPath, operation: "close", errno: errno)
            }
            try Self.renameNoReplace(from: temporaryPath, to: finalPath)
        } catch {
            try? descriptor.close()
            unlink(temporaryPath)
            throw error
        }
        try Self.syncDirectory(directory)
    }

    /// Closes and removes the temporary file (idempotent).
    mutating func discard() {
        guard let descriptor else { return }
        self.descriptor = nil
        try? descriptor.close()
        unlink(temporaryPath)
    }

    private typealias Renameat2 =
        @convention(c) (
            Int32, UnsafePointer<CChar>?, Int32, UnsafePointer<CChar>?, UInt32
        ) -> Int32

    /// glibc's `renameat2`, looked up at run time: Swift's Glibc module does not export it
    /// (it is behind `_GNU_SOURCE`), and `syscall(2)` is variadic.
    private static let renameat2: Renameat2? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else { return nil }
        return unsafeBitCast(symbol, to: Renameat2.self)
    }()

    /// Renames `source` to `destination`, failing with `.destinationExists` if it exists.
    /// The corresponding C function is `renameat2(2)` with `RENAME_NOREPLACE`; file systems that do not
    /// support it get `link(2)` + `unlink(2)`, which is equally atomic and also refuses to replace.
    static func renameNoReplace(from source: String, to destination: String) throws {
        let renameNoReplaceFlag: UInt32 = 1
        if let renameat2 {
            if renameat2(AT_FDCWD, source, AT_FDCWD, destination, renameNoReplaceFlag) == 0 { return }
            let error = Errno(rawValue: errno)
            if error == .fileExists { throw SafeTensorsError.destinationExists(path: destination) }
            guard error == .invalidArgument || error == .noFunction || error == .notSupported else {
                throw SafeTensorsError.io(path: destination, operation: "renameat2", errno: error)
            }
        }
        guard link(source, destination) == 0 else {
            let error = Errno(rawValue: errno)
            if error == .fileExists { throw SafeTensorsError.destinationExists(path: destination) }
            throw SafeTensorsError.io(path: destination, operation: "link", errno: error)
        }
        unlink(source)
    }

    /// fsyncs a directory so that a rename inside it is durable.
    static func syncDirectory(_ directory: String) throws {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw SafeTensorsError.io(path: directory, operation: "open directory", errno: Errno(rawValue: errno))
        }
        defer { close(fd) }
        guard fsync(fd) == 0 else {
            throw SafeTensorsError.io(path: directory, operation: "fsync directory", errno: Errno(rawValue: errno))
        }
    }
}
