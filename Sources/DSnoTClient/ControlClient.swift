// SPDX-License-Identifier: Apache-2.0
// A small blocking client for dsnotd's control socket: one connection, one request at a time.

public import DSnoTControlProtocol
public import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking client of dsnotd's Unix control socket (newline-delimited JSON, `docs/protocol.md`).
///
/// ```swift
/// let client = try ControlClient(socketPath: "/run/dsnotd.sock")
/// let report = try client.status()
/// print(report.state, report.counts)
/// ```
///
/// Blocking on purpose: the CLI does one thing at a time, and a plain socket keeps `dsnotctl` free of
/// an event loop. Not thread-safe; use one client per thread.
public final class ControlClient {
    /// The default socket: `$DSNOT_SOCKET`, else `/run/dsnotd.sock` when it exists, else the
    /// unprivileged default `.dsnot/dsnotd.sock` in the current directory (the daemon's default config).
    public static var defaultSocketPath: String {
        if let path = ProcessInfo.processInfo.environment["DSNOT_SOCKET"], !path.isEmpty { return path }
        if FileManager.default.fileExists(atPath: systemSocketPath) { return systemSocketPath }
        return ".dsnot/dsnotd.sock"
    }

    /// The socket path under systemd.
    public static let systemSocketPath = "/run/dsnotd.sock"

    private let fd: Int32
    private var buffer: [UInt8] = []
    private var nextID = 1
    /// The socket path connected to.
    public let socketPath: String

    /// Connects to the daemon.
    /// - Parameters:
    ///   - socketPath: the Unix socket path.
    ///   - timeoutSeconds: how long to wait for each response (0 = forever).
    /// - Throws: `ClientError`, with `daemonNotRunning` for a missing or refused socket.
    public init(socketPath: String, timeoutSeconds: Int = 30) throws {
        self.socketPath = socketPath
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let limit = MemoryLayout.size(ofValue: address.sun_path) - 1
        let bytes = Array(socketPath.utf8)
        guard bytes.count <= limit else { throw ClientError.socketPathTooLong(socketPath: socketPath, limit: limit) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in bytes.enumerated() { raw[i] = byte }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ClientError.system(call: "socket", errno: errno) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if result != 0 {
            let code = errno
            close(fd)
            switch code {
            case ENOENT, ECONNREFUSED, ENOTSOCK: throw ClientError.daemonNotRunning(socketPath: socketPath, errno: code)
            case EACCES, EPERM: throw ClientError.socketPermissionDenied(socketPath: socketPath)
            default: throw ClientError.system(call: "connect", errno: code)
            }
        }
        if timeoutSeconds > 0 {
            var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        self.fd = fd
        self.timeoutSeconds = timeoutSeconds
    }

    private let timeoutSeconds: Int

    deinit { close(fd) }

    /// Sends a command and waits for its response.
    /// - Returns: the response, whose `ok` is true.
    /// - Throws: `ClientError.daemon` when the daemon answers with an error; other `ClientError`s.
    public func send(_ command: ControlCommand) throws -> ControlResponse {
        let id = nextID
        nextID += 1
        do {
            try writeLine(ControlRequest(command, id: id))
        } catch ClientError.connectionClosed {
            // A daemon refusing the connection (`busy`) or timing it out wrote why before closing.
            if let error = (try? readResponse())?.error { throw ClientError.daemon(error) }
            throw ClientError.connectionClosed
        }
        let response = try readResponse()
        if !response.ok {
            throw ClientError.daemon(
                response.error ?? ControlError(code: .internalError, message: "failure without an error")
            )
        }
        return response
    }

    /// Sends a raw line (for tests and debugging) and reads one response.
    public func sendRaw(_ line: Data) throws -> ControlResponse {
        try writeAll(Array(line))
        return try readResponse()
    }

    /// Sends bytes without reading a response (for tests of partial requests).
    public func sendPartial(_ bytes: Data) throws {
        try writeAll(Array(bytes))
    }

    /// Reads the next response or event line.
    public func readResponse() throws -> ControlResponse {
        let line = try readLine()
        do {
            return try WireCodec.makeDecoder().decode(ControlResponse.self, from: Data(line))
        } catch {
            throw ClientError.badResponse(reason: "\(error)")
        }
    }

    private func writeLine(_ request: ControlRequest) throws {
        let data: Data
        do { data = try WireCodec.encodeLine(request) } catch { throw ClientError.badResponse(reason: "\(error)") }
        try writeAll(Array(data))
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EPIPE || errno == ECONNRESET { throw ClientError.connectionClosed }
                throw ClientError.system(call: "send", errno: errno)
            }
            offset += written
        }
    }

    private func readLine() throws -> [UInt8] {
        while true {
            if let newline = buffer.firstIndex(of: 0x0A) {
                let line = Array(buffer[..<newline])
                buffer.removeSubrange(...newline)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { throw ClientError.connectionClosed }
            if count < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK { throw ClientError.timedOut(seconds: timeoutSeconds) }
                if errno == ECONNRESET { throw ClientError.connectionClosed }
                throw ClientError.system(call: "recv", errno: errno)
            }
            buffer.append(contentsOf: chunk[..<count])
        }
    }
}
