// SPDX-License-Identifier: Apache-2.0
// TemporaryFile: one file published crash-safely (O_EXCL temp, fsync, no-replace rename: DurableFile).

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
        guard !DurableFile.exists(finalPath) else { throw SafeTensorsError.destinationExists(path: finalPath) }
        var attempt = 0
        while true {
            let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 16)
            let candidate = (parent.isEmpty ? "" : parent.string + "/") + ".\(name).tmp-\(suffix)"
            do {
                descriptor = try DurableFile.create(candidate)
                temporaryPath = candidate
                return
            } catch SafeTensorsError.io(_, _, let errno) where errno == .fileExists && attempt < 15 {
                attempt += 1
            }
        }
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
            try DurableFile.sync(descriptor, path: temporaryPath)
            do { try descriptor.close() } catch let errno as Errno {
                throw SafeTensorsError.io(path: temporaryPath, operation: "close", errno: errno)
            }
            try DurableFile.renameNoReplace(from: temporaryPath, to: finalPath)
        } catch {
            try? descriptor.close()
            unlink(temporaryPath)
            throw error
        }
        try DurableFile.syncDirectory(directory)
    }

    /// Closes and removes the temporary file (idempotent).
    mutating func discard() {
        guard let descriptor else { return }
        self.descriptor = nil
        try? descriptor.close()
        unlink(temporaryPath)
    }
}
