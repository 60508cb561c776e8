// SPDX-License-Identifier: Apache-2.0
// The Prometheus scrape endpoint: HTTP/1.1 `GET /metrics` on a loopback port or a Unix socket.

public import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Serves `GET /metrics` (and `HEAD`) in the Prometheus text format; anything else is 404 or 405.
///
/// One request per connection (`Connection: close`), a connection lives at most `connectionTimeout`
/// whatever the client sends, and at most `maximumConnections` are served at once (more are closed on
/// accept): a local client cannot hold the endpoint, and nothing it sends reaches the scheduler.
///
/// ```swift
/// let server = MetricsServer(endpoint: .tcp(host: "127.0.0.1", port: 9464), logger: logger) {
///     metrics.render(counts: (try? store.counts()) ?? [:])
/// }
/// try await ServiceGroup(services: [server], logger: logger).run()
/// ```
public struct MetricsServer: Service {
    let endpoint: MetricsEndpoint
    let logger: Logger
    let render: @Sendable () -> [UInt8]
    let bound: (@Sendable (MetricsEndpoint) -> Void)?
    let maximumConnections: Int
    let connectionTimeout: TimeAmount

    /// - Parameters:
    ///   - render: the exposition text, called once per scrape (off the event loop).
    ///   - bound: called with the address actually bound (a TCP port 0 resolved) once listening.
    public init(
        endpoint: MetricsEndpoint,
        logger: Logger,
        maximumConnections: Int = 16,
        connectionTimeout: Duration = .seconds(10),
        bound: (@Sendable (MetricsEndpoint) -> Void)? = nil,
        render: @escaping @Sendable () -> [UInt8]
    ) {
        self.endpoint = endpoint
        self.logger = logger
        self.render = render
        self.bound = bound
        self.maximumConnections = maximumConnections
        self.connectionTimeout = .nanoseconds(ControlServer.nanoseconds(connectionTimeout))
    }

    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    public func run() async throws {
        let open = Mutex(0)
        let limit = maximumConnections
        let timeout = connectionTimeout
        let initializer: @Sendable (any Channel) -> EventLoopFuture<Connection?> = { channel in
            channel.eventLoop.makeCompletedFuture {
                let admitted = open.withLock { count in
                    guard count < limit else { return false }
                    count += 1
                    return true
                }
                guard admitted else {
                    channel.close(promise: nil)
                    return nil
                }
                channel.closeFuture.whenComplete { _ in open.withLock { $0 -= 1 } }
                channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
                try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                return try Connection(wrappingChannelSynchronously: channel)
            }
        }
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
        let server: NIOAsyncChannel<Connection?, Never>
        switch endpoint {
        case .tcp(let host, let port):
            server = try await bootstrap.serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: host, port: port, childChannelInitializer: initializer)
        case .unix(let path):
            let fd = try SocketFile.bindListening(path: path)
            server = try await bootstrap.bind(fd, childChannelInitializer: initializer)
        }
        defer { if case .unix(let path) = endpoint { unlink(path) } }
        var actual = endpoint
        if case .tcp(let host, _) = endpoint, let port = server.channel.localAddress?.port {
            actual = .tcp(host: host, port: port)
        }
        logger.notice(
            "Metrics endpoint listening",
            metadata: ["event": "metrics.listening", "metrics.listen": "\(actual)"]
        )
        bound?(actual)
        let render = self.render
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { inbound in
                for try await connection in inbound.cancelOnGracefulShutdown() {
                    guard let connection else { continue }
                    group.addTask { await Self.serve(connection, render: render) }
                }
            }
            group.cancelAll()
        }
    }

    private static func serve(_ connection: Connection, render: @Sendable () -> [UInt8]) async {
        try? await connection.executeThenClose { inbound, outbound in
            var request: HTTPRequestHead?
            for try await part in inbound {
                switch part {
                case .head(let head): request = head
                case .body: continue  // a body is ignored (and bounded by the connection timeout)
                case .end:
                    guard let request else { return }
                    let reply = Self.reply(to: request, render: render)
                    var headers = HTTPHeaders()
                    headers.add(name: "Content-Type", value: reply.contentType)
                    headers.add(name: "Content-Length", value: "\(reply.body.count)")
                    headers.add(name: "Connection", value: "close")
                    if reply.status == .methodNotAllowed { headers.add(name: "Allow", value: "GET, HEAD") }
                    try await outbound.write(
                        .head(HTTPResponseHead(version: request.version, status: reply.status, headers: headers))
                    )
                    if request.method != .HEAD {
                        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: reply.body))))
                    }
                    try await outbound.write(.end(nil))
                    return
                }
            }
        }
    }

    struct Reply {
        var status: HTTPResponseStatus
        var contentType: String
        var body: [UInt8]
    }

    /// The answer to one request: the metrics, or why not.
    static func reply(to request: HTTPRequestHead, render: @Sendable () -> [UInt8]) -> Reply {
        let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard path == "/metrics" else {
            return Reply(
                status: .notFound,
                contentType: "text/plain; charset=utf-8",
                body: Array("not found: the metrics are at /metrics\n".utf8)
            )
        }
        guard request.method == .GET || request.method == .HEAD else {
            return Reply(
                status: .methodNotAllowed,
                contentType: "text/plain; charset=utf-8",
                body: Array("only GET and HEAD\n".utf8)
            )
        }
        return Reply(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: render())
    }
}
