// SPDX-License-Identifier: Apache-2.0
// Binding the control socket path carefully: unlink only a stale socket, never a regular file.

#if canImport(Glibc)
    import Glibc
#endif

/// Errors preparing the control socket.
public enum SocketFileError: Error, Equatable, CustomStringConvertible {
    case alreadyRunning(path: String)
    case notASocket(path: String)
    case pathTooLong(path: String, limit: Int)
    case system(call: String, path: String, errno: Int32)

    public var description: String {
        switch self {
        case .alreadyRunning(let path): return "another dsnotd answers on \(path)"
        case .notASocket(let path): return "\(path) exists and is not a socket; refusing to remove it"
        case .pathTooLong(let path, let limit): return "socket path \(path) is longer than \(limit) bytes"
        case .system(let call, let path, let code): return "\(call)(\(path)) failed: \(String(cString: strerror(code)))"
        }
    }
}

/// Creates the listening Unix socket at a path.
public enum SocketFile {
    /// Prepares `path` and returns a listening socket descriptor bound to it, with mode `mode`.
    ///
    /// An existing socket that accepts a connection belongs to a live daemon (`alreadyRunning`); one that
    /// refuses is stale and is unlinked. Anything that is not a socket is left alone (`notASocket`).
    /// The check-then-unlink has a race with a second daemon starting at the same instant; systemd's
    /// socket activation avoids it, and two daemons on one state directory are a misconfiguration anyway.
    /// - Throws: `SocketFileError`.
    public static func bindListening(path: String, mode: UInt32 = 0o666, backlog: Int32 = 64) throws -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let limit = MemoryLayout.size(ofValue: address.sun_path) - 1
        let bytes = Array(path.utf8)
        guard bytes.count <= limit else { throw SocketFileError.pathTooLong(path: path, limit: limit) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        try removeStale(path: path, address: address)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketFileError.system(call: "socket", path: path, errno: errno) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw SocketFileError.system(call: "bind", path: path, errno: code)
        }
        guard chmod(path, mode_t(mode)) == 0, listen(fd, backlog) == 0 else {
            let code = errno
            close(fd)
            throw SocketFileError.system(call: "listen", path: path, errno: code)
        }
        return fd
    }

    private static func removeStale(path: String, address: sockaddr_un) throws {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else { throw SocketFileError.notASocket(path: path) }
        let probe = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard probe >= 0 else { throw SocketFileError.system(call: "socket", path: path, errno: errno) }
        defer { close(probe) }
        var address = address
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(probe, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if connected == 0 { throw SocketFileError.alreadyRunning(path: path) }
        guard unlink(path) == 0 || errno == ENOENT else {
            throw SocketFileError.system(call: "unlink", path: path, errno: errno)
        }
    }
}
