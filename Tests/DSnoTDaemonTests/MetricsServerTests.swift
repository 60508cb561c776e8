// SPDX-License-Identifier: Apache-2.0
// The metrics endpoint, live: real HTTP from curl on a loopback port and on a Unix socket.

import DSnoTControlProtocol
import DSnoTTestSupport
import Foundation
import Testing

@testable import DSnoTDaemon

@Suite(.serialized) struct MetricsServerTests {
    /// Runs a `MetricsServer` on `endpoint` until `body` returns; `body` gets the bound address.
    func withServer(
        _ endpoint: MetricsEndpoint,
        maximumConnections: Int = 16,
        connectionTimeout: Duration = .seconds(10),
        _ body: @escaping @Sendable (MetricsEndpoint) throws -> Void
    ) async throws {
        let metrics = DaemonMetrics()
        metrics.recordPublished(bytes: 77)
        let (bound, continuation) = AsyncStream.makeStream(of: MetricsEndpoint.self)
        let server = MetricsServer(
            endpoint: endpoint,
            logger: testLogger,
            maximumConnections: maximumConnections,
            connectionTimeout: connectionTimeout,
            bound: { continuation.yield($0) }
        ) { metrics.render(counts: [.queued: 3]) }
        let task = Task { try await server.run() }
        var actual: MetricsEndpoint?
        for await address in bound {
            actual = address
            break
        }
        let address = try #require(actual)
        var failure: (any Error)?
        do { try await offPool { try body(address) } } catch { failure = error }
        task.cancel()
        _ = await task.result  // stopped: the Unix socket is gone
        if let failure { throw failure }
    }

    /// `curl` with `arguments`; stdout (with `-i`: the status line and headers too).
    static func curl(_ arguments: [String]) throws -> ExternalProcess.Result {
        try ExternalProcess.run("/usr/bin/curl", ["-sS", "--max-time", "10"] + arguments)
    }

    @Test func tcpScrapeServesTheExpositionAndRefusesWhatIsNotAScrape() async throws {
        try await withServer(.tcp(host: "127.0.0.1", port: 0)) { address in
            guard case .tcp(_, let port) = address else {
                Issue.record("not tcp: \(address)")
                return
            }
            #expect(port > 0)
            let base = "http://127.0.0.1:\(port)"
            let scrape = try Self.curl(["-i", base + "/metrics"])
            #expect(scrape.status == 0, "\(scrape.output)")
            #expect(scrape.output.hasPrefix("HTTP/1.1 200"), "\(scrape.output)")
            #expect(scrape.output.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"))
            #expect(scrape.output.contains("dsnot_output_written_bytes_total 77\n"), "\(scrape.output)")
            #expect(scrape.output.contains("dsnot_jobs{state=\"queued\"} 3.0\n"), "\(scrape.output)")
            #expect(scrape.output.contains("# TYPE dsnot_job_duration_seconds histogram"))

            let notFound = try Self.curl(["-o", "/dev/null", "-w", "%{http_code}", base + "/"])
            #expect(notFound.output == "404")
            let post = try Self.curl([
                "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-d", "x", base + "/metrics",
            ])
            #expect(post.output == "405")
            let head = try Self.curl(["-I", base + "/metrics?x=1"])
            #expect(head.output.hasPrefix("HTTP/1.1 200") && !head.output.contains("dsnot_"), "\(head.output)")
            let garbage = try Self.curl([
                "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Length: -5", base + "/metrics",
            ])
            #expect(garbage.output == "400", "\(garbage.output)")
            // Still serving after all of that.
            #expect(try Self.curl([base + "/metrics"]).output.contains("dsnot_blocks_pruned_total 0"))
        }
    }

    @Test func unixSocketScrape() async throws {
        let directory = try TemporaryDirectory("dsnot-metrics")
        let path = directory.path + "/metrics.sock"
        try await withServer(.unix(path: path)) { address in
            #expect(address == .unix(path: path))
            let scrape = try Self.curl(["--unix-socket", path, "http://localhost/metrics"])
            #expect(scrape.status == 0 && scrape.output.contains("dsnot_job_starts_total 0\n"), "\(scrape.output)")
        }
        #expect(!FileManager.default.fileExists(atPath: path), "the socket is removed at shutdown")
    }

    @Test func idleClientsCannotHoldTheEndpoint() async throws {
        try await withServer(.tcp(host: "127.0.0.1", port: 0), maximumConnections: 2, connectionTimeout: .seconds(1)) {
            address in
            guard case .tcp(_, let port) = address else { return }
            // Two clients connect and send nothing: they fill the cap until the connection timeout closes them.
            var idle: [Int32] = []
            for _ in 0..<2 {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                var address = sockaddr_in()
                address.sin_family = sa_family_t(AF_INET)
                address.sin_port = in_port_t(UInt16(port).bigEndian)
                address.sin_addr.s_addr = inet_addr("127.0.0.1")
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                #expect(connected == 0)
                idle.append(fd)
            }
            defer { idle.forEach { close($0) } }
            Thread.sleep(forTimeInterval: 0.3)
            let refused = try Self.curl(["-w", "%{http_code}", "-o", "/dev/null", "http://127.0.0.1:\(port)/metrics"])
            #expect(refused.output.hasSuffix("000"), "over the cap: closed on accept, got \(refused.output)")
            Thread.sleep(forTimeInterval: 1.2)
            let served = try Self.curl(["http://127.0.0.1:\(port)/metrics"])
            #expect(served.output.contains("dsnot_jobs"), "after the timeout closed the idle ones: \(served.output)")
        }
    }
}
