// SPDX-License-Identifier: Apache-2.0
// The control socket on NIO: bind (or adopt a socket-activated fd), frame lines, isolate connections.

import DSnoTControlProtocol
import Foundation
public import Logging
import NIOCore
import NIOPosix
public import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// Serves `ControlHandler` on a Unix stream socket.
///
/// Each connection is served by its own child task, reading newline-delimited requests up to
/// `ProtocolVersion.maximumRequestBytes` and answering in order. A malformed request gets an error
/// line and the connection stays open; an oversized one or a client too slow to send a whole request
/// (`RequestDeadlineHandler`) gets an error line and is closed. Connections beyond `ControlLimits`
/// (in total, per uid, or into the writers' reserve) are answered `busy` and closed at once
/// (`ConnectionLimiter`). Nothing a client does can end the server.
public struct ControlServer: Service {
    /// Where the listening socket comes from.
    public enum Listener: Sendable {
        /// Bind `path` (removing only a stale socket there).
        case path(String)
        /// A listening descriptor received from systemd (`sd_listen_fds`).
        case activated(Int32)
    }

    let handler: ControlHandler
    let listener: Listener
    let logger: Logger
    let limiter: ConnectionLimiter
    let isWriter: @Sendable (PeerCredentials) -> Bool
    let ready: (@Sendable () -> Void)?

    /// - Parameters:
    ///   - limits: connection caps and the request deadline (`ControlLimits.standard`, fitted to the
    ///     descriptor limit, in the daemon; small ones in tests).
    ///   - ready: called once the socket accepts connections.
    public init(
        handler: ControlHandler,
        listener: Listener,
        logger: Logger,
        limits: ControlLimits = .standard,
        ready: (@Sendable () -> Void)? = nil
    ) {
        self.init(handler: handler, listener: listener, logger: logger, limits: limits, isWriter: nil, ready: ready)
    }

    /// `isWriter` overrides the handler's `AccessPolicy` for connection admission only: a test
    /// process running as root can then stand in for an unprivileged crowd.
    init(
        handler: ControlHandler,
        listener: Listener,
        logger: Logger,
        limits: ControlLimits,
        isWriter: (@Sendable (PeerCredentials) -> Bool)?,
        ready: (@Sendable () -> Void)? = nil
    ) {
        self.handler = handler
        self.listener = listener
        self.logger = logger
        self.limiter = ConnectionLimiter(limits: limits)
        let access = handler.access
        self.isWriter = isWriter ?? { access.mayWrite($0) }
        self.ready = ready
    }

    struct Connection: Sendable {
        let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
        let peer: PeerCredentials
    }

    /// An accepted connection: served, or already being answered `busy` and closed.
    enum Admission: Sendable {
        case admitted(Connection)
        case refused
    }

    public func run() async throws {
        let fd: Int32
        switch listener {
        case .path(let path): fd = try SocketFile.bindListening(path: path)
        case .activated(let descriptor): fd = descriptor
        }
        let timeout = TimeAmount.nanoseconds(Self.nanoseconds(limiter.limits.requestTimeout))
        let limiter = self.limiter
        let isWriter = self.isWriter
        let logger = self.logger
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(fd) { channel in
                Self.peerCredentials(of: channel).flatMapThrowing { peer -> Admission in
                    switch limiter.admit(peer, isWriter: { isWriter(peer) }) {
                    case .refused(let reason, let firstOfBurst):
                        if firstOfBurst {
                            logger.warning(
                                "Control connection refused: busy",
                                metadata: ["event": "control.busy", "peer.uid": "\(peer.uid)", "reason": "\(reason)"]
                            )
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            RefusalHandler(error: ControlError(code: .busy, message: reason))
                        )
                        return .refused
                    case .admitted:
                        channel.closeFuture.whenComplete { _ in limiter.release(peer) }
                        try channel.pipeline.syncOperations.addHandler(
                            RequestDeadlineHandler(timeout: timeout),
                            name: "deadline"
                        )
                        return .admitted(
                            Connection(
                                channel: try NIOAsyncChannel(wrappingChannelSynchronously: channel),
                                peer: peer
                            )
                        )
                    }
                }
            }
        logger.info("Control socket listening", metadata: ["socket": "\(listener)"])
        ready?()
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { inbound in
                for try await admission in inbound.cancelOnGracefulShutdown() {
                    guard case .admitted(let connection) = admission else { continue }
                    group.addTask { await self.serve(connection) }
                }
            }
            group.cancelAll()
        }
        if case .path(let path) = listener { unlink(path) }
    }

    private func serve(_ connection: Connection) async {
        do {
            try await connection.channel.executeThenClose { inbound, outbound in
                var framer = LineFramer(maximumLineBytes: ProtocolVersion.maximumRequestBytes)
                for try await buffer in inbound {
                    framer.append(buffer.readableBytesView)
                    while let item = framer.next() {
                        guard case .line(let line) = item else {
                            let error = ControlError(
                                code: .requestTooLarge,
                                message: "request exceeds \(ProtocolVersion.maximumRequestBytes) bytes"
                            )
                            try await outbound.write(Self.encode(.failure(error)))
                            return
                        }
                        if LineFramer.isBlank(line) { continue }
                        let reply = await handler.handle(line: Data(line), peer: connection.peer)
                        try await outbound.write(Self.encode(reply.response))
                        if case .stream(_, let events) = reply {
                            try await connection.channel.channel.pipeline.removeHandler(name: "deadline").get()
                            for await event in events { try await outbound.write(Self.encode(.event(event))) }
                            return
                        }
                    }
                }
            }
        } catch {
            logger.debug(
                "Control connection closed",
                metadata: ["error": "\(error)", "peer.uid": "\(connection.peer.uid)"]
            )
        }
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    static func encode(_ response: ControlResponse) -> ByteBuffer {
        let data =
            (try? WireCodec.encodeLine(response))
            ?? Data(
                #"{"ok":false,"error":{"code":"internal","message":"cannot encode response"},"version":1}"#.utf8 + [
                    0x0A
                ]
            )
        return ByteBuffer(bytes: data)
    }

    static func peerCredentials(of channel: any Channel) -> EventLoopFuture<PeerCredentials> {
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeSucceededFuture(PeerCredentials(pid: 0, uid: UInt32.max, gid: UInt32.max))
        }
        return provider.unsafeGetSocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_PEERCRED))
            .map { (credentials: LinuxUcred) in
                PeerCredentials(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid)
            }
    }
}

/// Layout of Linux `struct ucred` (`SO_PEERCRED`), which Glibc's module map hides behind `_GNU_SOURCE`.
struct LinuxUcred: Sendable {
    var pid: Int32
    var uid: UInt32
    var gid: UInt32
}
