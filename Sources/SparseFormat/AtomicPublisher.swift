// SPDX-License-Identifier: Apache-2.0
// AtomicPublisher: build an output directory under a hidden staging name, fsync, rename without replacing.

import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Publishes an output directory atomically: a reader sees either nothing or the complete output.
///
/// The output is built in `<parent>/.dsnot-tmp-<id>/` (same filesystem as the target). `publish`
/// fsyncs every file and the staging directory, renames it to the target with
/// `renameat2(RENAME_NOREPLACE)` (an existing target is never replaced: `targetExists`), then
/// fsyncs the parent so the rename itself is durable. A crash before the rename leaves only a
/// hidden staging directory, which `removeOrphans(in:)` deletes at the next start.
///
/// ```swift
/// let publisher = try AtomicPublisher(target: "/outbox/smollm2-wanda50", id: jobID)
/// // … write into publisher.stagingPath …
/// try publisher.publish()
/// ```
public struct AtomicPublisher: Sendable {
    /// Prefix of staging directory names.
    public static let stagingPrefix = ".dsnot-tmp-"

    /// The final directory.
    public let target: String
    /// The staging directory, created by `init`.
    public let stagingPath: String
    /// The target's parent directory.
    public let parent: String

    /// Creates the staging directory `<parent of target>/.dsnot-tmp-<id>` (mode 0755).
    /// - Throws: `SparseFormatError.targetExists` when the target already exists; `.io` when the
    ///   staging directory cannot be created (it must not exist already).
    public init(target: String, id: String) throws {
        var trimmed = target
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.target = trimmed
        let slash = trimmed.lastIndex(of: "/")
        parent = slash.map { $0 == trimmed.startIndex ? "/" : String(trimmed[..<$0]) } ?? "."
        stagingPath = parent + "/" + Self.stagingPrefix + id
        guard !FileIO.exists(trimmed) else { throw SparseFormatError.targetExists(path: trimmed) }
        guard mkdir(stagingPath, 0o755) == 0 else {
            throw SparseFormatError.io(path: stagingPath, operation: "mkdir", errno: Errno(rawValue: errno))
        }
    }

    /// Syncs the staging tree and renames it to the target (never replacing), then syncs the parent.
    /// - Throws: `SparseFormatError.targetExists` (the staging directory is left for the caller
    ///   to `discard`), `.io`.
    public func publish() throws {
        try Self.syncTree(stagingPath)
        try Self.renameNoReplace(from: stagingPath, to: target)
        try FileIO.syncDirectory(parent)
    }

    /// Deletes the staging directory and everything in it.
    /// - Throws: `SparseFormatError.io`.
    public func discard() throws {
        if FileIO.exists(stagingPath) { try FileIO.removeTree(stagingPath) }
    }

    /// Removes every `.dsnot-tmp-*` directory in `directory` (left by a crash). Returns their names.
    /// - Throws: `SparseFormatError.io`.
    @discardableResult
    public static func removeOrphans(in directory: String) throws -> [String] {
        var removed: [String] = []
        for name in try FileIO.listDirectory(directory) where name.hasPrefix(stagingPrefix) {
            try FileIO.removeTree(directory + "/" + name)
            removed.append(name)
        }
        if !removed.isEmpty { try FileIO.syncDirectory(directory) }
        return removed
    }

    /// fsync of every regular file below `path`, then of the directories bottom-up.
    static func syncTree(_ path: String) throws {
        for name in try FileIO.listDirectory(path) {
            let child = path + "/" + name
            if FileIO.isDirectory(child) {
                try syncTree(child)
            } else {
                let fd = try FileIO.call(child, "open") {
                    try FileDescriptor.open(FilePath(child), .readOnly, options: [.closeOnExec])
                }
                defer { try? fd.close() }
                try FileIO.fsync(fd, child)
            }
        }
        try FileIO.syncDirectory(path)
    }

    /// `renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE)`. glibc declares the wrapper only
    /// under `_GNU_SOURCE`, which Swift's Glibc module does not see, so it is looked up with `dlsym`
    /// (glibc ≥ 2.28). The corresponding C function is `renameat2`.
    static func renameNoReplace(from source: String, to destination: String) throws {
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        guard let symbol = dlsym(nil, "renameat2") else {
            throw SparseFormatError.io(path: destination, operation: "renameat2 (not in libc)", errno: .noFunction)
        }
        let renameat2 = unsafeBitCast(symbol, to: RenameAt2.self)
        let renameNoReplace: UInt32 = 1  // RENAME_NOREPLACE from <linux/fs.h>
        guard renameat2(AT_FDCWD, source, AT_FDCWD, destination, renameNoReplace) == 0 else {
            let error = Errno(rawValue: errno)
            if error == .fileExists { throw SparseFormatError.targetExists(path: destination) }
            throw SparseFormatError.io(path: destination, operation: "renameat2", errno: error)
        }
    }
}
