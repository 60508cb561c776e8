// SPDX-License-Identifier: Apache-2.0
// Errors of the control client, with the connection failures rewritten into hints.

public import DSnoTControlProtocol

#if canImport(Glibc)
    import Glibc
#endif

/// What can go wrong talking to dsnotd.
public enum ClientError: Error, CustomStringConvertible, Equatable {
    /// Nothing listens at the socket path (ENOENT or ECONNREFUSED).
    case daemonNotRunning(socketPath: String, errno: Int32)
    /// The socket exists but this user may not connect (EACCES).
    case socketPermissionDenied(socketPath: String)
    /// The socket path does not fit in `sockaddr_un.sun_path`.
    case socketPathTooLong(socketPath: String, limit: Int)
    /// Another system call failed.
    case system(call: String, errno: Int32)
    /// The daemon closed the connection before answering.
    case connectionClosed
    /// The daemon did not answer in time.
    case timedOut(seconds: Int)
    /// The daemon's answer was not a valid response line.
    case badResponse(reason: String)
    /// The daemon answered with an error.
    case daemon(ControlError)

    public var description: String {
        switch self {
        case .daemonNotRunning(let path, let code):
            return "dsnotd does not appear to be running (no daemon at \(path): \(String(cString: strerror(code))))\n"
                + "hint: start it with 'sudo systemctl start dsnotd', or pass --socket PATH"
        case .socketPermissionDenied(let path):
            return "permission denied connecting to \(path)\n"
                + "hint: the socket is readable by root and the dsnot group; try sudo or join the group"
        case .socketPathTooLong(let path, let limit):
            return "socket path '\(path)' is \(path.utf8.count) bytes; a Unix socket path holds at most \(limit)"
        case .system(let call, let code): return "\(call) failed: \(String(cString: strerror(code)))"
        case .connectionClosed: return "dsnotd closed the connection without answering"
        case .timedOut(let seconds): return "dsnotd did not answer within \(seconds) s"
        case .badResponse(let reason): return "dsnotd sent an unreadable response: \(reason)"
        case .daemon(let error): return error.description
        }
    }
}
