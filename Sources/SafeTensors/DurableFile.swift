// SPDX-License-Identifier: Apache-2.0
// DurableFile: the one home of the crash-safe file primitives (no-replace rename, fsync of files and directories).

public import SystemPackage

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The durable-file primitives every writer and publisher uses: `TemporaryFile` (one file),
/// SparseFormat's `FileSink` and `AtomicPublisher` (a directory tree) create, sync and publish
/// through these.
///
/// A name appears durably only after: the data is fsynced under its temporary name, the rename is
/// done without replacing (`renameNoReplace`), and the directory holding the new name is fsynced
/// (`syncDirectory`).
///
/// ```swift
/// try DurableFile.sync(fd, path: temporary)
/// try DurableFile.renameNoReplace(from: temporary, to: final)
/// try DurableFile.syncDirectory(parent)
/// ```
public enum DurableFile {
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

    /// Renames `source` (a file or a directory) to `destination`, never replacing what is there.
    /// The corresponding C function is `renameat2(2)` with `RENAME_NOREPLACE`; file systems that do not
    /// support it get `link(2)` + `unlink(2)` for files, which is equally atomic and also refuses to
    /// replace (directories cannot be linked: they get the `renameat2` error).
    /// - Throws: `SafeTensorsError.destinationExists` when `destination` exists, `.io` otherwise.
    public static func renameNoReplace(from source: String, to destination: String) throws {
        let renameNoReplaceFlag: UInt32 = 1  // RENAME_NOREPLACE from <linux/fs.h>
        if let renameat2 {
            if renameat2(AT_FDCWD, source, AT_FDCWD, destination, renameNoReplaceFlag) == 0 { return }
            let error = Errno(rawValue: errno)
            if error == .fileExists { throw SafeTensorsError.destinationExists(path: destination) }
            guard error == .invalidArgument || error == .noFunction || error == .notSupported, !isDirectory(source)
            else {
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

    /// Creates a new file for writing, mode 0644, failing if anything exists at `path` (`O_EXCL`:
    /// never an existing file, never through a symlink).
    /// - Throws: `SafeTensorsError.io` (`EEXIST` when `path` exists).
    public static func create(_ path: String) throws -> FileDescriptor {
        do {
            return try FileDescriptor.open(
                FilePath(path),
                .writeOnly,
                options: [.create, .exclusiveCreate, .closeOnExec],
                permissions: [.ownerReadWrite, .groupRead, .otherRead],
                retryOnInterrupt: true
            )
        } catch let errno as Errno {
            throw SafeTensorsError.io(path: path, operation: "create", errno: errno)
        }
    }

    /// `fsync(2)` of an open descriptor (swift-system has no wrapper).
    /// - Throws: `SafeTensorsError.io` naming `path`.
    public static func sync(_ descriptor: FileDescriptor, path: String) throws {
        guard fsync(descriptor.rawValue) == 0 else {
            throw SafeTensorsError.io(path: path, operation: "fsync", errno: Errno(rawValue: errno))
        }
    }

    /// fsyncs a directory so that the names created or renamed in it are durable.
    /// - Throws: `SafeTensorsError.io`.
    public static func syncDirectory(_ directory: String) throws {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else {
            throw SafeTensorsError.io(path: directory, operation: "open directory", errno: Errno(rawValue: errno))
        }
        defer { close(fd) }
        guard fsync(fd) == 0 else {
            throw SafeTensorsError.io(path: directory, operation: "fsync directory", errno: Errno(rawValue: errno))
        }
    }

    /// Whether anything (file, directory, dangling link) exists at `path`.
    public static func exists(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0
    }

    /// Whether `path` is a directory (not following a final symlink).
    public static func isDirectory(_ path: String) -> Bool {
        var status = stat()
        return lstat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }
}
