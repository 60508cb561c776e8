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
/// `renameat2(RENAME_NOREPLACE)` (an existing target is never replaced), then fsyncs the parent so
/// the rename itself is durable. A crash before the rename leaves only a hidden staging directory,
/// which `removeOrphans(in:)` deletes at the next start.
///
/// When the target is taken, `ifTaken` decides: `.fail` (`dsnotctl prune`, `unpack`) throws
/// `targetExists`; `.suffix(s)` (the daemon, with the job id) tries `<target>-s`, then `<target>-s-2`,
/// `<target>-s-3`, … each with its own no-replace rename, so two publishers racing for one name never
/// replace each other and never check-then-rename.
///
/// ```swift
/// let publisher = try AtomicPublisher(target: "/outbox/smollm2-wanda50", id: jobID)
/// // … write into publisher.stagingPath …
/// let published = try publisher.publish()
/// ```
public struct AtomicPublisher: Sendable {
    /// Prefix of staging directory names.
    public static let stagingPrefix = ".dsnot-tmp-"
    /// The most suffixed names `.suffix` tries before giving up with `targetExists`.
    public static let maximumSuffixedNames = 1000

    /// What `publish` does when the target name is taken.
    public enum TakenName: Sendable, Equatable {
        /// Throw `SparseFormatError.targetExists`.
        case fail
        /// Publish under the first free name of `<target>-<suffix>`, `<target>-<suffix>-2`, ….
        case suffix(String)
    }

    /// The preferred final directory.
    public let target: String
    /// The staging directory.
    public let stagingPath: String
    /// The target's parent directory.
    public let parent: String
    /// What a taken target name leads to.
    public let ifTaken: TakenName

    /// Creates the staging directory `<parent of target>/.dsnot-tmp-<id>` (mode 0755).
    /// - Throws: `SparseFormatError.targetExists` when the target already exists and `ifTaken` is
    ///   `.fail`; `.io` when the staging directory cannot be created (it must not exist already).
    public init(target: String, id: String, ifTaken: TakenName = .fail) throws {
        self.init(adopting: id, target: target, ifTaken: ifTaken)
        if ifTaken == .fail, FileIO.exists(self.target) { throw SparseFormatError.targetExists(path: self.target) }
        guard mkdir(stagingPath, 0o755) == 0 else {
            throw SparseFormatError.io(path: stagingPath, operation: "mkdir", errno: Errno(rawValue: errno))
        }
    }

    /// A publisher for a staging directory made earlier, by `init(target:id:ifTaken:)` or by hand at
    /// `stagingPath(in:id:)` (the daemon creates it when a job starts and publishes when the job ends).
    public init(adopting id: String, target: String, ifTaken: TakenName = .fail) {
        var trimmed = target
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.target = trimmed
        let slash = trimmed.lastIndex(of: "/")
        parent = slash.map { $0 == trimmed.startIndex ? "/" : String(trimmed[..<$0]) } ?? "."
        stagingPath = Self.stagingPath(in: parent, id: id)
        self.ifTaken = ifTaken
    }

    /// `<directory>/.dsnot-tmp-<id>`.
    public static func stagingPath(in directory: String, id: String) -> String {
        (directory.hasSuffix("/") ? directory : directory + "/") + stagingPrefix + id
    }

    /// The names `publish` tries, in order: the target, then (with `.suffix`) the suffixed names.
    public var candidates: [String] {
        guard case .suffix(let suffix) = ifTaken else { return [target] }
        let suffixed = target + "-" + suffix
        return [target, suffixed] + (2...Self.maximumSuffixedNames).map { suffixed + "-\($0)" }
    }

    /// Syncs the staging tree (every file, then the directories bottom-up) and renames it, never
    /// replacing, to the first free candidate name, then syncs the parent.
    /// - Returns: the path the output was published under.
    /// - Throws: `SparseFormatError.targetExists` when no candidate is free (the staging directory is
    ///   left for the caller to `discard`), `.io`.
    @discardableResult
    public func publish() throws -> String {
        try Self.syncTree(stagingPath)
        var published: String?
        for candidate in candidates {
            do {
                try FileIO.renameNoReplace(from: stagingPath, to: candidate)
                published = candidate
                break
            } catch SparseFormatError.targetExists {
                continue
            }
        }
        guard let published else { throw SparseFormatError.targetExists(path: target) }
        try FileIO.syncDirectory(parent)
        return published
    }

    /// Deletes the staging directory and everything in it.
    /// - Throws: `SparseFormatError.io`.
    public func discard() throws {
        if FileIO.exists(stagingPath) { try FileIO.removeTree(stagingPath) }
    }

    /// Removes every `.dsnot-tmp-*` directory in `directory` (left by a crash) except the names in
    /// `keeping` (staging directories of jobs that will resume from them). Returns the removed names.
    /// - Throws: `SparseFormatError.io`.
    @discardableResult
    public static func removeOrphans(in directory: String, keeping: Set<String> = []) throws -> [String] {
        var removed: [String] = []
        for name in try FileIO.listDirectory(directory) where name.hasPrefix(stagingPrefix) && !keeping.contains(name) {
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
}
