// SPDX-License-Identifier: Apache-2.0
// The control socket under a crowd: connection caps, the whole-request deadline, no busy loop.

import DSnoTClient
import DSnoTControlProtocol
import Foundation
import Testing

@testable import DSnoTDaemon

#if canImport(Glibc)
    import Glibc
#endif

/// A bare client socket for crowd tests: connect, write bytes, wait for a line or the close.
final class RawConnection {
    enum Outcome: Equatable {
        case line(String)
        case closed
        case silent
    }

    private let fd: Int32
    private var pending: [UInt8] = []
    private var sawEOF = false

    init(socketPath: String) throws {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in socketPath.utf8.enumerated() { raw[i] = byte }
        }
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
        }
    }

    deinit { close(fd) }

    /// Sends `text`; false when the daemon has closed the connection.
    @discardableResult
    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// The next line, the close, or `.silent` if nothing arrives within `seconds`.
    func next(within seconds: Double) -> Outcome {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let newline = pending.firstIndex(of: 0x0A) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                return .line(line)
            }
            if sawEOF { return .closed }
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0 else { return .silent }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, Int32(remaining * 1000) + 1) > 0 else { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count <= 0 {
                sawEOF = true
            } else {
                pending += chunk[..<count]
            }
        }
    }

    /// The error code and message of a response line.
    static func error(in outcome: Outcome) -> ControlError? {
        guard case .line(let line) = outcome else { return nil }
        return try? WireCodec.makeDecoder().decode(ControlResponse.self, from: Data(line.utf8)).error
    }
}

/// CPU seconds used so far by the NIO event-loop threads of this process (`/proc/self/task/*/stat`).
func eventLoopCPUSeconds() -> Double {
    let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
    var ticks = 0
    for task in tasks {
        guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8),
            comm.hasPrefix("NIO-"),
            let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { continue }
        // Fields after the command: state is field 3; utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        ticks += (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }
    return Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

extension ControlServerTests {
    static func limits(total: Int, perUser: Int, timeout: Duration) -> ControlLimits {
        ControlLimits(
            maximumConnections: total,
            maximumConnectionsPerUser: perUser,
            writerReserve: 0,
            requestTimeout: timeout
        )
    }

    /// Opens `count` connections; returns the refusals (each connection answered `busy` and closed),
    /// waiting up to `seconds` for `expectRefused` of them, and the connections left silent (admitted).
    static func crowd(
        _ socket: String,
        count: Int,
        expectRefused: Int,
        within seconds: Double = 5
    ) throws -> (refused: [ControlError], idle: [RawConnection]) {
        var silent = try (0..<count).map { _ in try RawConnection(socketPath: socket) }
        var refused: [ControlError] = []
        func sweep() {
            silent = silent.filter { connection in
                let outcome = connection.next(within: 0.005)
                guard outcome != .silent else { return true }
                guard let error = RawConnection.error(in: outcome) else {
                    Issue.record("expected an error line, got \(outcome)")
                    return false
                }
                refused.append(error)
                #expect(connection.next(within: 2) == .closed, "a refused connection is closed")
                return false
            }
        }
        let deadline = Date().addingTimeInterval(seconds)
        repeat { sweep() } while refused.count < expectRefused && Date() < deadline
        // A refusal too many would show by now.
        usleep(200_000)
        sweep()
        return (refused, silent)
    }

    @Test func connectionsPastTheCapAreRefusedBusyWhileAnOpenOneIsServed() async throws {
        try await withServer(limits: Self.limits(total: 16, perUser: 16, timeout: .seconds(10))) { socket, _ in
            try await offPool {
                let served = try ControlClient(socketPath: socket, timeoutSeconds: 5)
                #expect(try served.status().state == .running)
                // 15 more fill the cap; 10 beyond it are answered `busy` and closed.
                let refused: [ControlError]
                var idle: [RawConnection]
                (refused, idle) = try Self.crowd(socket, count: 25, expectRefused: 10)
                #expect(refused.count == 10)
                #expect(idle.count == 15)
                #expect(refused.allSatisfy { $0.code == .busy && $0.message.contains("its maximum") })
                // The connection already open is answered at once, many times over.
                let started = Date()
                for _ in 0..<20 { #expect(try served.status().state == .running) }
                #expect(Date().timeIntervalSince(started) < 2)
                // Closing idle connections makes room again.
                idle.removeAll()
                let deadline = Date().addingTimeInterval(3)
                var state: DaemonState?
                while state == nil && Date() < deadline {
                    state = try? ControlClient(socketPath: socket, timeoutSeconds: 5).status().state
                    if state == nil { usleep(20_000) }
                }
                #expect(state == .running)
            }
        }
    }

    @Test func perUserCapRefusesOnlyThatUsersExtraConnections() async throws {
        // The test process stands in for an unprivileged user (writers are bound by the total only).
        try await withServer(
            limits: Self.limits(total: 32, perUser: 4, timeout: .seconds(10)),
            peersMayWrite: false
        ) { socket, _ in
            try await offPool {
                let (refused, idle) = try Self.crowd(socket, count: 7, expectRefused: 3)
                #expect(idle.count == 4)
                #expect(refused.count == 3)
                let uid = getuid()
                #expect(
                    refused.allSatisfy {
                        $0.code == .busy
                            && $0.message.contains("uid \(uid) holds 4 control connections, the maximum per user")
                    },
                    "\(refused)"
                )
                // dsnotctl's client reports the refusal, not a bare "connection closed".
                #expect(throws: ClientError.daemon(refused[0])) {
                    try ControlClient(socketPath: socket, timeoutSeconds: 5).status()
                }
                withExtendedLifetime(idle) {}
            }
        }
    }

    // Root is a writer through the real AccessPolicy (SO_PEERCRED uid 0).
    @Test(.enabled(if: getuid() == 0, "needs a root test process"))
    func writersAreBoundByTheTotalOnly() async throws {
        try await withServer(limits: Self.limits(total: 8, perUser: 2, timeout: .seconds(10))) { socket, _ in
            try await offPool {
                let (refused, idle) = try Self.crowd(socket, count: 10, expectRefused: 2)
                #expect(idle.count == 8)
                #expect(refused.count == 2 && refused.allSatisfy { $0.message.contains("its maximum") }, "\(refused)")
                withExtendedLifetime(idle) {}
            }
        }
    }

    @Test func tricklingAndBlankLineClientsAreClosedAtTheWholeRequestDeadline() async throws {
        try await withServer(limits: Self.limits(total: 16, perUser: 16, timeout: .seconds(1))) { socket, _ in
            try await offPool {
                let request = #"{"version":1,"command":"status","watch":"\#(String(repeating: "x", count: 200))"}"#
                let trickler = try RawConnection(socketPath: socket)
                let blanks = try RawConnection(socketPath: socket)
                let started = Date()
                var byte = request.utf8.makeIterator()
                var trickleEnd: (Double, ControlError?)?
                var blanksEnd: (Double, ControlError?)?
                // A byte every 50 ms and a blank line every 100 ms, each a fraction of the 1 s deadline.
                var tick = 0
                while (trickleEnd == nil || blanksEnd == nil) && Date().timeIntervalSince(started) < 5 {
                    if trickleEnd == nil {
                        if let next = byte.next() { trickler.send(String(decoding: [next], as: UTF8.self)) }
                        let outcome = trickler.next(within: 0.05)
                        if outcome != .silent {
                            trickleEnd = (Date().timeIntervalSince(started), RawConnection.error(in: outcome))
                        }
                    } else {
                        usleep(50_000)
                    }
                    if blanksEnd == nil && tick % 2 == 0 {
                        blanks.send(tick % 4 == 0 ? "\n" : " \r\n")
                        let outcome = blanks.next(within: 0.001)
                        if outcome != .silent {
                            blanksEnd = (Date().timeIntervalSince(started), RawConnection.error(in: outcome))
                        }
                    }
                    tick += 1
                }
                for (name, end) in [("trickle", trickleEnd), ("blank lines", blanksEnd)] {
                    #expect(end?.1?.code == .timeout, "\(name)")
                    #expect((0.9..<2.0).contains(end?.0 ?? 0), "\(name) closed after \(end?.0 ?? 0) s")
                }
                #expect(trickler.next(within: 1) == .closed)
                #expect(blanks.next(within: 1) == .closed)
            }
        }
    }

    @Test func answeredRequestsStartANewDeadline() async throws {
        try await withServer(limits: Self.limits(total: 16, perUser: 16, timeout: .milliseconds(600))) { socket, _ in
            try await offPool {
                let client = try ControlClient(socketPath: socket, timeoutSeconds: 5)
                // 2 s of requests 300 ms apart on one connection: each answer hands the client a new 600 ms.
                for _ in 0..<7 {
                    #expect(try client.status().state == .running)
                    usleep(300_000)
                }
            }
        }
    }

    @Test func atTheCapTheEventLoopStaysIdle() async throws {
        try await withServer(limits: Self.limits(total: 8, perUser: 8, timeout: .seconds(10))) { socket, _ in
            let (used, refused) = try await offPool { () -> (Double, Int) in
                let (refused, idle) = try Self.crowd(socket, count: 28, expectRefused: 20)
                // Held at the cap (and past it) for a second: a spinning loop would burn about a second.
                let before = eventLoopCPUSeconds()
                usleep(1_000_000)
                let used = eventLoopCPUSeconds() - before
                withExtendedLifetime(idle) {}
                return (used, refused.count)
            }
            #expect(refused == 20)
            #expect(used < 0.25, "event loops used \(used) s of CPU in 1 s while at the cap")
        }
    }
}

@Suite struct ConnectionLimiterTests {
    let limits = ControlLimits(
        maximumConnections: 6,
        maximumConnectionsPerUser: 3,
        writerReserve: 2,
        requestTimeout: .seconds(1)
    )

    func peer(_ uid: UInt32) -> PeerCredentials { PeerCredentials(pid: 1, uid: uid, gid: uid) }

    func reason(_ decision: ConnectionLimiter.Decision) -> String? {
        guard case .refused(let reason, _) = decision else { return nil }
        return reason
    }

    @Test func totalPerUserAndWriterReserve() {
        let limiter = ConnectionLimiter(limits: limits)
        // Unprivileged users fill the first four (6 − reserve 2), at most three each.
        for uid: UInt32 in [1000, 1000, 1000] { #expect(limiter.admit(peer(uid), isWriter: { false }) == .admitted) }
        let perUser = reason(limiter.admit(peer(1000), isWriter: { false }))
        #expect(perUser?.contains("uid 1000 holds 3 control connections, the maximum per user") == true)
        #expect(limiter.admit(peer(1001), isWriter: { false }) == .admitted)
        // Uid 1000 as a writer (say, in admin_group) is not held to the per-uid cap.
        #expect(limiter.admit(peer(1000), isWriter: { true }) == .admitted)
        limiter.release(peer(1000))
        let reserve = reason(limiter.admit(peer(1002), isWriter: { false }))
        #expect(
            reserve?.contains("the last 2 are kept for users who may write") == true,
            "\(String(describing: reserve))"
        )
        // A writer still gets in, up to the total.
        #expect(limiter.admit(peer(0), isWriter: { true }) == .admitted)
        #expect(limiter.admit(peer(0), isWriter: { true }) == .admitted)
        let total = reason(limiter.admit(peer(0), isWriter: { true }))
        #expect(total?.contains("holds 6 control connections, its maximum") == true)
        // Releasing frees the total's share, but the freed slot is in the writers' reserve.
        limiter.release(peer(1000))
        #expect(limiter.openConnections == 5)
        #expect(
            reason(limiter.admit(peer(1000), isWriter: { false }))?.contains("5 control connections; the last 2")
                == true
        )
        limiter.release(peer(0))
        limiter.release(peer(0))
        #expect(limiter.admit(peer(1000), isWriter: { false }) == .admitted)
        #expect(limiter.openConnections == 4)
    }

    @Test func onlyTheFirstRefusalOfABurstIsFlaggedForTheLog() {
        let limiter = ConnectionLimiter(limits: limits)
        for uid: UInt32 in 1...4 { #expect(limiter.admit(peer(uid), isWriter: { false }) == .admitted) }
        let burst = (0..<3).map { _ -> Bool? in
            guard case .refused(_, let first) = limiter.admit(peer(9), isWriter: { false }) else { return nil }
            return first
        }
        #expect(burst == [true, false, false])
        #expect(limiter.admit(peer(0), isWriter: { true }) == .admitted)
        guard case .refused(_, true) = limiter.admit(peer(9), isWriter: { false }) else {
            Issue.record("the first refusal after an admission starts a new burst")
            return
        }
    }

    @Test func writerCheckRunsOnlyWhenALimitWouldRefuse() {
        let limiter = ConnectionLimiter(limits: limits)
        var checks = 0
        for uid: UInt32 in 1...4 {
            _ = limiter.admit(
                peer(uid),
                isWriter: {
                    checks += 1
                    return false
                }
            )
        }
        #expect(checks == 0)
    }

    @Test func limitsShrinkToKeepTheDescriptorReserve() {
        let standard = ControlLimits.standard
        #expect(standard.fitted(toDescriptorLimit: 65536) == standard)
        let tight = standard.fitted(toDescriptorLimit: 1024 - 400)
        #expect(tight.maximumConnections == 1024 - 400 - ControlLimits.descriptorReserve)
        #expect(tight.maximumConnectionsPerUser == 32)
        let tiny = standard.fitted(toDescriptorLimit: 100)
        #expect(tiny.maximumConnections == 1 && tiny.maximumConnectionsPerUser == 1 && tiny.writerReserve == 0)
    }

    @Test func softDescriptorLimitIsRaisedToTheHardLimit() {
        var limit = rlimit()
        #expect(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0)
        let raised = DescriptorLimit.raiseSoftToHard()
        #expect(raised == Int(min(limit.rlim_max, rlim_t(DescriptorLimit.ceiling))))
        #expect(DescriptorLimit.current() == raised)
    }
}
