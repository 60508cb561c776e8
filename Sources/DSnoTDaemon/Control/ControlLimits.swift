// SPDX-License-Identifier: Apache-2.0
// The control socket's limits in one place: connections in total and per user, the request deadline,
// and the file descriptors kept free for everything else.

#if canImport(Glibc)
    import Glibc
#endif

/// How many control connections dsnotd holds, from whom, and for how long. These are constants, not
/// configuration keys: they bound what one local user can hold, not what an administrator tunes.
///
/// Rationale for the numbers in `standard`:
/// - `dsnotctl` opens one connection per command and `watch` holds one, so 256 connections at once is
///   far beyond legitimate use; each costs one file descriptor and one small task.
/// - 32 per uid: one local user can hold at most an eighth of them, so it takes eight colluding
///   accounts to fill the socket; the others are answered `busy` at once, never queued. Users who may
///   write are trusted (docs/threat-model.md) and bound by the total only, so an operator's scripts
///   can run 100 `dsnotctl status` at once.
/// - 16 of the 256 are kept for writers (root, the daemon's uid, `admin_group`), so an administrator's
///   `dsnotctl status` still gets through when unprivileged users hold everything else.
/// - 30 s to send a whole request, counted from the connection's opening or from the daemon's previous
///   answer; bytes that do not complete a request (a trickle, blank lines) never extend it.
/// - `descriptorReserve` (512) descriptors stay free for the watcher (inotify and the files it
///   inspects), running jobs (input shards, output files), SQLite (database, WAL, shared memory),
///   journald and NIO itself. `fitted(toDescriptorLimit:)` shrinks the connection caps when
///   `RLIMIT_NOFILE` is too small to keep that reserve.
///
/// ```swift
/// let limits = ControlLimits.standard.fitted(toDescriptorLimit: DescriptorLimit.raiseSoftToHard())
/// ```
public struct ControlLimits: Sendable, Equatable {
    /// Connections open at once, from everyone.
    public var maximumConnections: Int
    /// Connections open at once from one uid (`SO_PEERCRED`) that may not write.
    public var maximumConnectionsPerUser: Int
    /// The last this-many of `maximumConnections` are admitted only for peers who may write.
    public var writerReserve: Int
    /// Time a client has to send one complete request line.
    public var requestTimeout: Duration

    /// Descriptors kept free for everything but control connections.
    public static let descriptorReserve = 512

    /// The limits dsnotd runs with (before `fitted(toDescriptorLimit:)`).
    public static let standard = ControlLimits(
        maximumConnections: 256,
        maximumConnectionsPerUser: 32,
        writerReserve: 16,
        requestTimeout: .seconds(30)
    )

    /// Creates limits; tests inject small ones.
    public init(maximumConnections: Int, maximumConnectionsPerUser: Int, writerReserve: Int, requestTimeout: Duration) {
        self.maximumConnections = maximumConnections
        self.maximumConnectionsPerUser = maximumConnectionsPerUser
        self.writerReserve = writerReserve
        self.requestTimeout = requestTimeout
    }

    /// These limits shrunk so that, with every connection open, `descriptorReserve` descriptors of
    /// `limit` (the soft `RLIMIT_NOFILE`) stay free. At least one connection is always allowed.
    public func fitted(toDescriptorLimit limit: Int) -> ControlLimits {
        var fitted = self
        fitted.maximumConnections = max(1, min(maximumConnections, limit - Self.descriptorReserve))
        fitted.maximumConnectionsPerUser = max(1, min(maximumConnectionsPerUser, fitted.maximumConnections))
        fitted.writerReserve = max(0, min(writerReserve, fitted.maximumConnections / 4))
        return fitted
    }
}

/// The process's open-file limit (`RLIMIT_NOFILE`).
public enum DescriptorLimit {
    /// The highest soft limit set: above it, a kernel's `fs.nr_open` may refuse, and nothing here
    /// needs more.
    static let ceiling = 1 << 20

    /// Raises the soft limit to the hard limit (capped at 2^20) and returns the soft limit in force.
    /// Raising needs no privilege; if it fails the old limit stays and is returned. The corresponding
    /// C function is `setrlimit`.
    public static func raiseSoftToHard() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return current() }
        let target = min(limit.rlim_max, rlim_t(ceiling))
        if limit.rlim_cur < target {
            var raised = limit
            raised.rlim_cur = target
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised)
        }
        return current()
    }

    /// The soft limit in force (2^20 when unlimited).
    public static func current() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return Int(min(limit.rlim_cur, rlim_t(ceiling)))
    }
}
