// SPDX-License-Identifier: Apache-2.0
// The control server live on a Unix socket: bad clients are answered and isolated, others unaffected.

import DSnoTClient
import DSnoTControlProtocol
import DSnoTTestSupport
import Foundation
import Testing

@testable import DSnoTDaemon

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct ControlServerTests {
    /// Runs a server on a temp socket for the duration of `body`.
    func withServer(
        runner: ScriptedJobRunner = ScriptedJobRunner(),
        limits: ControlLimits = ControlLimits(
            maximumConnections: 64,
            maximumConnectionsPerUser: 64,
            writerReserve: 0,
            requestTimeout: .seconds(1)
        ),
        peersMayWrite: Bool? = nil,
        _ body: (String, TemporaryDirectory) async throws -> Void
    ) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let configuration = testConfiguration(in: directory)
        let store = try SQLiteJobStore(path: directory.sub("jobs.sqlite").path)
        let events = EventHub()
        let scheduler = PruneScheduler(
            store: store,
            runner: runner,
            settings: .init(configuration),
            events: events,
            logger: testLogger
        )
        let schedulerTask = Task { try await scheduler.run() }
        defer { schedulerTask.cancel() }
        let handler = ControlHandler(
            scheduler: scheduler,
            store: store,
            events: events,
            daemon: DaemonStatus(configuration: configuration, configPath: nil),
            access: AccessPolicy(daemonUID: 999, adminGroupID: nil),
            reload: { .success("ok") }
        )
        var isWriter: (@Sendable (PeerCredentials) -> Bool)?
        if let peersMayWrite { isWriter = { _ in peersMayWrite } }
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Void.self)
        let server = ControlServer(
            handler: handler,
            listener: .path(directory.socketPath),
            logger: testLogger,
            limits: limits,
            isWriter: isWriter,
            ready: { readyContinuation.yield() }
        )
        let task = Task { try await server.run() }
        defer { task.cancel() }
        for await _ in ready { break }
        try await body(directory.socketPath, directory)
    }

    @Test func badRequestsGetErrorsAndTheConnectionStaysUsable() async throws {
        try await withServer { socket, _ in
            let state = try await offPool { () -> DaemonState in
                let client = try ControlClient(socketPath: socket, timeoutSeconds: 5)
                let cases: [(String, ControlError.Code)] = [
                    ("this is not json\n", .malformedRequest),
                    (#"{"version":1,"command":"teleport"}"# + "\n", .unknownCommand),
                    (#"{"version":7,"command":"status"}"# + "\n", .versionMismatch),
                    (#"{"version":1,"command":"show"}"# + "\n", .malformedRequest),
                ]
                for (line, code) in cases {
                    let response = try client.sendRaw(Data(line.utf8))
                    #expect(!response.ok && response.error?.code == code, "\(line)")
                }
                // Same connection, still answering.
                return try client.status().state
            }
            #expect(state == .running)
        }
    }

    @Test func oversizedRequestClosesOnlyThatConnection() async throws {
        try await withServer { socket, _ in
            let state = try await offPool { () -> DaemonState in
                let bystander = try ControlClient(socketPath: socket, timeoutSeconds: 5)
                let attacker = try ControlClient(socketPath: socket, timeoutSeconds: 5)
                let huge = Data(repeating: UInt8(ascii: "x"), count: ProtocolVersion.maximumRequestBytes + 10)
                let response = try attacker.sendRaw(huge)
                #expect(response.error?.code == .requestTooLarge)
                #expect(throws: ClientError.self) { try attacker.status() }
                return try bystander.status().state
            }
            #expect(state == .running)
        }
    }

    @Test func slowClientTimesOutWithoutBlockingOthers() async throws {
        try await withServer { socket, _ in
            let started = Date()
            let state = try await offPool { () -> DaemonState in
                let slow = try ControlClient(socketPath: socket, timeoutSeconds: 5)
                // Half a request, then silence.
                try slow.sendPartial(Data(#"{"version":1,"#.utf8))
                // Meanwhile another client is served at once.
                let duringStall = try ControlClient(socketPath: socket, timeoutSeconds: 5).status().state
                #expect(duringStall == .running)
                // The server answers `timeout` after its 1 s deadline and closes the slow connection.
                let response = try slow.readResponse()
                #expect(response.error?.code == .timeout)
                #expect(throws: ClientError.self) { try slow.status() }
                return try ControlClient(socketPath: socket, timeoutSeconds: 5).status().state
            }
            #expect(Date().timeIntervalSince(started) < 4)
            #expect(state == .running)
        }
    }

    @Test func manyConcurrentClientsAreServed() async throws {
        try await withServer { socket, _ in
            let counts = try await offPool { () -> [Int] in
                let clients = try (0..<16).map { _ in try ControlClient(socketPath: socket, timeoutSeconds: 5) }
                return try clients.map { try $0.jobs().count }
            }
            #expect(counts == Array(repeating: 0, count: 16))
        }
    }

    // As root (CI), SO_PEERCRED says uid 0 and the policy admits writes; the unprivileged path runs as
    // `nobody` in the end-to-end test.
    @Test(.enabled(if: getuid() == 0, "SO_PEERCRED uid 0 needs a root test process"))
    func peerCredentialsComeFromTheKernel() async throws {
        try await withServer { socket, _ in
            let message = try await offPool {
                try ControlClient(socketPath: socket, timeoutSeconds: 5).perform(.pause(watch: nil))
            }
            #expect(message == "queue paused")
        }
    }

    @Test func watchStreamOutlivesTheRequestDeadline() async throws {
        // 30 blocks × 60 ms ≈ 1.8 s of progress: longer than the 1 s request deadline, which a stream
        // must not be subject to.
        try await withServer(runner: ScriptedJobRunner(blocks: 30, blockDelay: 0.06)) { socket, directory in
            let checkpoint = try CheckpointFixture.write(to: directory.sub("m"))
            let (blocks, final) = try await offPool { () -> ([Int], JobState?) in
                let watcher = try ControlClient(socketPath: socket, timeoutSeconds: 10)
                let submitter = try ControlClient(socketPath: socket, timeoutSeconds: 10)
                var blocks: [Int] = []
                var final: JobState?
                var submitted = false
                try watcher.watch { event in
                    if event.kind == "progress", event.job.phase == .pruning, let block = event.job.block {
                        blocks.append(block)
                    }
                    if event.job.state.isFinal {
                        final = event.job.state
                        return false
                    }
                    return true
                } afterSubscribing: {
                    if !submitted {
                        submitted = true
                        _ = try submitter.submit(path: checkpoint.path)
                    }
                }
                return (blocks, final)
            }
            #expect(final == .done)
            #expect(blocks == Array(1...30))
        }
    }

    @Test func missingSocketIsReportedAsDaemonNotRunning() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        #expect(throws: ClientError.daemonNotRunning(socketPath: directory.socketPath, errno: ENOENT)) {
            try ControlClient(socketPath: directory.socketPath)
        }
    }
}

@Suite struct SocketFileTests {
    @Test func staleSocketIsReplacedRegularFileIsNot() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.socketPath
        // A stale socket: bound, then its listener closed without unlinking.
        let stale = try SocketFile.bindListening(path: path)
        close(stale)
        let fresh = try SocketFile.bindListening(path: path)
        // A live one: refuses to steal it.
        #expect(throws: SocketFileError.alreadyRunning(path: path)) { try SocketFile.bindListening(path: path) }
        close(fresh)
        unlink(path)
        // A regular file is never removed.
        try Data("precious".utf8).write(to: URL(fileURLWithPath: path))
        #expect(throws: SocketFileError.notASocket(path: path)) { try SocketFile.bindListening(path: path) }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "precious")
    }

    @Test func boundSocketIsReadableByEveryone() throws {
        // Read commands are open to anyone who can connect; SO_PEERCRED gates the writes.
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let fd = try SocketFile.bindListening(path: directory.socketPath)
        defer { close(fd) }
        var info = stat()
        #expect(lstat(directory.socketPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o666)
    }

    @Test func socketPathLongerThanSunPathIsRejected() {
        let path = "/tmp/" + String(repeating: "d", count: 120)
        #expect(throws: SocketFileError.self) { try SocketFile.bindListening(path: path) }
    }
}

@Suite struct LineFramerTests {
    @Test func framesLinesAcrossChunksAndStripsCR() {
        var framer = LineFramer(maximumLineBytes: 10)
        framer.append(Array("ab".utf8))
        #expect(framer.next() == nil)
        framer.append(Array("c\r\nde\nf".utf8))
        #expect(framer.next() == .line(Array("abc".utf8)))
        #expect(framer.next() == .line(Array("de".utf8)))
        #expect(framer.next() == nil)
        #expect(framer.pendingBytes == 1)
    }

    @Test func overlongLineFailsOnceEvenWithoutNewline() {
        var framer = LineFramer(maximumLineBytes: 4)
        framer.append(Array("12345".utf8))
        #expect(framer.next() == .tooLong)
        framer.append(Array("ok\n".utf8))
        #expect(framer.next() == nil)
    }

    @Test func lineOfExactlyTheLimitIsAccepted() {
        var framer = LineFramer(maximumLineBytes: 4)
        framer.append(Array("1234\n".utf8))
        #expect(framer.next() == .line(Array("1234".utf8)))
    }
}
