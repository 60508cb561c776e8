// SPDX-License-Identifier: Apache-2.0
// End to end: the built dsnotd on a temp config and socket, driven by the built dsnotctl; sd_notify
// messages read from a test NOTIFY_SOCKET; SIGHUP, SIGTERM; an unprivileged client via setpriv.

import DSnoTClient
import DSnoTControlProtocol
import DSnoTTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The built executables, next to the test bundle.
enum Binaries {
    static var directory: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    static func path(_ name: String) throws -> String {
        for candidate in [directory, directory.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url.path }
        }
        throw POSIXError(.ENOENT)
    }
}

struct Output {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion, optionally as `nobody` through setpriv.
func runProgram(_ path: String, _ arguments: [String], asNobody: Bool = false, cwd: String? = nil) throws -> Output {
    let process = Process()
    if asNobody {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", path] + arguments
    } else {
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
    }
    if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
    process.environment = cleanEnvironment()
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Output(
        status: process.terminationStatus,
        stdout: String(decoding: stdout, as: UTF8.self),
        stderr: String(decoding: stderr, as: UTF8.self)
    )
}

/// A datagram socket standing in for systemd's notification socket. Like systemd, it reads all the
/// time (on a thread of its own): an unread socket fills up and blocks the sender.
final class NotifySocket: @unchecked Sendable {
    let path: String
    let fd: Int32
    private let lock = NSLock()
    private var messages: [String] = []
    private var stopped = false

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard fd >= 0, bound == 0 else { throw POSIXError(.EADDRINUSE) }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        Thread { [self] in self.readLoop() }.start()
    }

    func stop() {
        lock.withLock { stopped = true }
    }

    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !lock.withLock({ stopped }) {
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { continue }
            let message = String(decoding: buffer[0..<count], as: UTF8.self)
            lock.withLock { messages.append(message) }
        }
        close(fd)
    }

    /// Removes and returns the messages received so far, once one contains `needle` (or at `timeout`).
    func wait(for needle: String, timeout: Double = 15) -> [String] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if lock.withLock({ messages.contains { $0.contains(needle) } }) { break }
            usleep(20_000)
        }
        return lock.withLock {
            defer { messages.removeAll() }
            return messages
        }
    }
}

@Suite(.serialized) struct EndToEndTests {
    @Test func daemonAndEveryOnlineCommand() throws {
        let dsnotd = try Binaries.path("dsnotd")
        let dsnotctl = try Binaries.path("dsnotctl")
        let root = try TemporaryDirectory("dsnot-e2e").path
        defer {
            if ProcessInfo.processInfo.environment["DSNOT_KEEP_E2E"] == nil {
                try? FileManager.default.removeItem(atPath: root)
            }
        }
        chmod(root, 0o755)  // `nobody` must reach the socket
        let socket = root + "/d.sock"
        let config = root + "/dsnotd.toml"
        try """
        state_dir = "state"
        socket = "\(socket)"
        settle = 0.2
        [[watch]]
        name = "main"
        inbox = "in"
        outbox = "out"
        """.write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try runProgram(dsnotd, ["--config", config, "--check-config"]).status == 0)

        let notify = try NotifySocket(path: root + "/n.sock")
        defer { notify.stop() }
        let daemon = Process()
        daemon.executableURL = URL(fileURLWithPath: dsnotd)
        daemon.arguments = ["--config", config]
        var environment = cleanEnvironment()
        environment["NOTIFY_SOCKET"] = notify.path
        environment["WATCHDOG_USEC"] = "400000"
        daemon.environment = environment
        _ = FileManager.default.createFile(atPath: root + "/daemon.log", contents: nil)
        daemon.standardError = FileHandle(forWritingAtPath: root + "/daemon.log")
        try daemon.run()
        defer { if daemon.isRunning { kill(daemon.processIdentifier, SIGKILL) } }
        #expect(notify.wait(for: "READY=1").contains { $0.contains("READY=1") })
        // WatchdogSec=0.4 s → WATCHDOG=1 every 0.2 s from a task independent of job threads.
        #expect(notify.wait(for: "WATCHDOG=1", timeout: 3).contains("WATCHDOG=1"))

        func ctl(_ arguments: String..., asNobody: Bool = false) throws -> Output {
            try runProgram(dsnotctl, arguments + ["--socket", socket], asNobody: asNobody)
        }

        let status = try ctl("status")
        #expect(status.status == 0 && status.stdout.hasPrefix("dsnotd running"), "\(status)")
        let statusJSON = try ctl("status", "--json")
        let report = try WireCodec.makeDecoder().decode(StatusReport.self, from: Data(statusJSON.stdout.utf8))
        #expect(report.pid == daemon.processIdentifier && report.watches.map(\.name) == ["main"])
        #expect(try ctl("list").stdout == "no jobs\n")

        // A checkpoint dropped in the inbox is found by the watcher; one submitted is queued directly.
        try writeCheckpoint(root + "/in/dropped")
        try writeCheckpoint(root + "/elsewhere/submitted")
        let submitted = try ctl("submit", root + "/elsewhere/submitted", "--set", "pattern=0.7", "--json")
        #expect(submitted.status == 0, "\(submitted)")
        let job = try WireCodec.makeDecoder().decode(JobRecord.self, from: Data(submitted.stdout.utf8))
        #expect(job.recipe == "wanda-u70-dsnot")
        // The watch's recipe (Wanda, the default) names no calibration source: the real pipeline refuses
        // the job permanently, saying what is missing; the daemon keeps serving.
        #expect(waitUntil { (try? ctl("show", job.id).stdout.contains("state:    failed")) == true })
        #expect(waitUntil { (try? ctl("list", "--state", "failed").stdout.contains("/in/dropped")) == true })
        let show = try ctl("show", job.id)
        #expect(show.stdout.contains("calibration.path") && show.stdout.contains("(permanent)"), "\(show.stdout)")
        // Refused at its estimate, before it takes a worker: it fails from the queue, without an attempt.
        #expect(show.stdout.contains("queued → failed") && !show.stdout.contains("running"), "\(show)")
        let listed = try ctl("list", "--json")
        #expect(try WireCodec.makeDecoder().decode([JobRecord].self, from: Data(listed.stdout.utf8)).count == 2)

        #expect(try ctl("retry", job.id).stdout == "\(job.id) queued\n")
        #expect(waitUntil { (try? ctl("show", job.id).stdout.contains("state:    failed")) == true })
        let cancelDone = try ctl("cancel", job.id)
        #expect(cancelDone.status == 1 && cancelDone.stderr.contains("invalid-state"))
        #expect(try ctl("show", "j-missing").stderr.contains("not-found"))
        #expect(try ctl("pause").stdout == "queue paused\n")
        #expect(try ctl("status").stdout.contains("dsnotd paused"))
        #expect(try ctl("resume", "--json").stdout.contains(#""message" : "queue resumed""#))
        #expect(try ctl("pause", "main").stdout == "watch 'main' paused\n")
        #expect(try ctl("resume", "main").stdout == "watch 'main' resumed\n")
        let watchFinished = try ctl("watch", job.id)
        #expect(watchFinished.status == 0 && watchFinished.stdout.contains("job \(job.id)"))

        // Unprivileged: reads work, writes are refused by SO_PEERCRED.
        #expect(try ctl("status", asNobody: true).status == 0)
        let denied = try ctl("pause", asNobody: true)
        #expect(denied.status == 1 && denied.stderr.contains("permission-denied"), "\(denied)")

        // Reload: a bad file is rejected and the old configuration kept; a good one is applied.
        let good = try String(contentsOfFile: config, encoding: .utf8)
        try (good + "\nbogus = 1\n").write(toFile: config, atomically: true, encoding: .utf8)
        let rejected = try ctl("reload")
        #expect(rejected.status == 1 && rejected.stderr.contains("unknown key 'watch[0].bogus'"), "\(rejected)")
        try good.write(toFile: config, atomically: true, encoding: .utf8)
        let reloaded = try ctl("reload", "--wait")
        #expect(reloaded.status == 0 && reloaded.stdout.hasPrefix("configuration reloaded"))
        kill(daemon.processIdentifier, SIGHUP)
        let afterHup = notify.wait(for: "READY=1")
        #expect(afterHup.contains { $0.contains("RELOADING=1") })

        // SIGTERM: STOPPING=1, a clean exit in bounded time, the socket removed.
        let stopAsked = Date()
        kill(daemon.processIdentifier, SIGTERM)
        #expect(notify.wait(for: "STOPPING=1").contains { $0.contains("STOPPING=1") })
        #expect(waitUntil(timeout: 15) { !daemon.isRunning })
        #expect(Date().timeIntervalSince(stopAsked) < 15)
        #expect(daemon.terminationStatus == 0)
        #expect(!FileManager.default.fileExists(atPath: socket))

        let gone = try ctl("status")
        #expect(gone.status == 3 && gone.stderr.contains("dsnotd does not appear to be running"), "\(gone)")
        #expect(gone.stderr.contains("hint:"))
    }

    // systemd socket activation: systemd-socket-activate listens, starts dsnotd on the first connection
    // and passes the listening descriptor (LISTEN_FDS=1); that first client is answered.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-socket-activate")))
    func socketActivatedDaemonAnswersTheFirstConnection() throws {
        let dsnotd = try Binaries.path("dsnotd")
        let root = try TemporaryDirectory("dsnot-act").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let socket = root + "/a.sock"
        try "state_dir = \"state\"\nsocket = \"\(root)/unused.sock\"\n".write(
            toFile: root + "/d.toml",
            atomically: true,
            encoding: .utf8
        )
        let activator = Process()
        activator.executableURL = URL(fileURLWithPath: "/usr/bin/systemd-socket-activate")
        activator.arguments = ["-l", socket, dsnotd, "--config", root + "/d.toml"]
        activator.standardError = FileHandle(forWritingAtPath: "/dev/null")
        activator.environment = cleanEnvironment()
        try activator.run()
        defer { if activator.isRunning { kill(activator.processIdentifier, SIGKILL) } }
        #expect(waitUntil { FileManager.default.fileExists(atPath: socket) })
        // The first connection makes systemd-socket-activate exec dsnotd with the listening socket.
        let report = try ControlClient(socketPath: socket, timeoutSeconds: 15).status()
        #expect(report.pid == activator.processIdentifier)
        // The daemon used the passed socket, not the configured path.
        #expect(!FileManager.default.fileExists(atPath: root + "/unused.sock"))
        kill(activator.processIdentifier, SIGTERM)
        #expect(waitUntil(timeout: 15) { !activator.isRunning })
    }

    @Test func checkConfigRejectsABadFileNamingKeyAndLine() throws {
        let dsnotd = try Binaries.path("dsnotd")
        let path = "/tmp/dsnot-check-\(getpid()).toml"
        defer { unlink(path) }
        try "workers = 1\n\n[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\nprority = 2\n".write(
            toFile: path,
            atomically: true,
            encoding: .utf8
        )
        let output = try runProgram(dsnotd, ["--config", path, "--check-config"])
        #expect(output.status != 0)
        #expect(output.stderr.contains("\(path):6: unknown key 'watch[0].prority'"), "\(output.stderr)")
    }
}

/// This process's environment without systemd's variables: other suites (ShimTests) set NOTIFY_SOCKET
/// in-process for a moment, and a child must never inherit it by accident.
func cleanEnvironment() -> [String: String] {
    var environment = ProcessInfo.processInfo.environment
    for name in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "JOURNAL_STREAM"] {
        environment.removeValue(forKey: name)
    }
    return environment
}

func writeCheckpoint(_ path: String) throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    try Data(#"{"model_type":"llama"}"#.utf8).write(to: URL(fileURLWithPath: path + "/config.json"))
    let header = Array(#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#.utf8)
    var bytes: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: header.count >> (8 * $0)) }
    bytes += header + [UInt8](repeating: 0, count: 8)
    try Data(bytes).write(to: URL(fileURLWithPath: path + "/model.safetensors"))
}

func waitUntil(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}
