// SPDX-License-Identifier: Apache-2.0
// End to end with the real pipeline: checkpoints dropped into the inbox of a built dsnotd are pruned and
// published (and verify), or fail permanently with a clear reason while the daemon keeps serving.

import DSnoTControlProtocol
import DSnoTTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A dsnotd started on a temp directory with one or more watches; stopped with SIGTERM on `stop()`.
final class DaemonUnderTest {
    let root: String
    let socket: String
    let process = Process()
    /// A program and its arguments that run dsnotd (`strace …`); empty: dsnotd itself.
    let wrapper: [String]

    /// - Parameters:
    ///   - watches: TOML of the `[[watch]]` tables (inbox/outbox relative to `root`).
    ///   - wrapper: runs dsnotd under this command (`["/usr/bin/strace", "-f", …]`); `process` is then
    ///     the wrapper, and `daemonPID` the daemon.
    init(watches: String, rescanInterval: Double = 2, wrapper: [String] = []) throws {
        self.wrapper = wrapper
        root = try TemporaryDirectory("dsnot-pipe").path
        socket = root + "/d.sock"
        let config =
            "state_dir = \"state\"\nsocket = \"\(socket)\"\nsettle = 0.3\nrescan_interval = \(rescanInterval)\n"
            + watches
        try config.write(toFile: root + "/dsnotd.toml", atomically: true, encoding: .utf8)
        try start()
    }

    /// A second daemon on the same directory, configuration and state (a restart).
    init(reusing root: String) throws {
        self.root = root
        wrapper = []
        socket = root + "/d.sock"
        try start()
    }

    private func start() throws {
        let command = wrapper + [try Binaries.path("dsnotd"), "--config", root + "/dsnotd.toml"]
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        var environment = ProcessInfo.processInfo.environment
        environment.removeValue(forKey: "NOTIFY_SOCKET")
        environment.removeValue(forKey: "JOURNAL_STREAM")
        process.environment = environment
        if !FileManager.default.fileExists(atPath: root + "/daemon.log") {
            _ = FileManager.default.createFile(atPath: root + "/daemon.log", contents: nil)
        }
        let log = FileHandle(forWritingAtPath: root + "/daemon.log")
        _ = try log?.seekToEnd()
        process.standardError = log
        try process.run()
        #expect(waitUntil { (try? self.ctl("status").status) == 0 }, "dsnotd did not come up: \(log)")
    }

    var log: String { (try? String(contentsOfFile: root + "/daemon.log", encoding: .utf8)) ?? "" }

    /// The daemon's own process id (from `status`): not `process` when it runs under a wrapper.
    func daemonPID() throws -> Int32 {
        try WireCodec.makeDecoder().decode(StatusReport.self, from: Data(try ctl("status", "--json").stdout.utf8)).pid
    }

    func ctl(_ arguments: String...) throws -> Output {
        try runProgram(try Binaries.path("dsnotctl"), arguments + ["--socket", socket])
    }

    func jobs() throws -> [JobRecord] {
        try WireCodec.makeDecoder().decode([JobRecord].self, from: Data(try ctl("list", "--json").stdout.utf8))
    }

    /// Copies `source` into `<root>/<inbox>/<name>` the way a careful operator does: into a hidden
    /// directory first, then one rename, so the watcher never sees a half-copied checkpoint.
    func drop(_ source: String, into inbox: String, as name: String, edit: (String) throws -> Void = { _ in }) throws {
        let hidden = root + "/" + inbox + "/." + name
        try FileManager.default.copyItem(atPath: source, toPath: hidden)
        try edit(hidden)
        try FileManager.default.moveItem(atPath: hidden, toPath: root + "/" + inbox + "/" + name)
    }

    /// Copies `source` to each of `names` in a staging folder first, then renames them all into `inbox`
    /// one after another: many checkpoints appearing within a moment, as a sync tool would make them.
    func dropCopies(of source: String, into inbox: String, names: [String]) throws {
        let staging = root + "/staging"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        for name in names { try FileManager.default.copyItem(atPath: source, toPath: staging + "/" + name) }
        for name in names {
            try FileManager.default.moveItem(atPath: staging + "/" + name, toPath: root + "/" + inbox + "/" + name)
        }
    }

    /// Waits until `count` jobs are done.
    func waitForDone(_ count: Int, timeout: Double) -> Bool {
        waitUntil(timeout: timeout) { (try? self.jobs().filter { $0.state == .done }.count) == count }
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            _ = waitUntil(timeout: 15) { !self.process.isRunning }
        }
        if ProcessInfo.processInfo.environment["DSNOT_KEEP_E2E"] == nil {
            try? FileManager.default.removeItem(atPath: root)
        }
    }
}

@Suite(.serialized) struct PipelineEndToEndTests {
    /// The repository, from this file's path (Tests/dsnotctlTests/…).
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    /// A two-block LLaMA (hidden 128, fp32) and its calibration ids `[4, 32]`: the golden block fixtures.
    static let model = repo + "/Tests/DSnoTCoreTests/Resources/golden/block/model"
    static let calibration = repo + "/Tests/DSnoTCoreTests/Resources/models/golden-block/calib.safetensors"

    static let watch = """
        [[watch]]
        name = "main"
        inbox = "in"
        outbox = "out"
        [watch.recipe]
        method = "wanda"
        pattern = 0.5
        dsnot = { skip = [] }
        calibration = { source = "tokens", path = "\(calibration)" }

        """

    @Test func droppedCheckpointIsPrunedPublishedAndVerifies() throws {
        let daemon = try DaemonUnderTest(watches: Self.watch)
        defer { daemon.stop() }
        let before = try FileManager.default.contentsOfDirectory(atPath: Self.model).sorted().map {
            try Data(contentsOf: URL(fileURLWithPath: Self.model + "/" + $0))
        }
        try daemon.drop(Self.model, into: "in", as: "tiny")
        #expect(waitUntil(timeout: 60) { (try? daemon.jobs().first?.state) == .done }, "\(daemon.log)")
        let job = try #require(try daemon.jobs().first)
        let output = try #require(job.outputPath)
        #expect(output == daemon.root + "/out/tiny-wanda-u50-dsnot")

        let status = try WireCodec.makeDecoder().decode(
            StatusReport.self,
            from: Data(try daemon.ctl("status", "--json").stdout.utf8)
        )
        #expect(status.counts["done"] == 1 && status.running.isEmpty)

        let files = try FileManager.default.contentsOfDirectory(atPath: output).sorted()
        #expect(files == ["config.json", "dsnot-report.json", "model.safetensors.lz4"])
        let verify = try runProgram(try Binaries.path("dsnotctl"), ["verify", output])
        #expect(verify.status == 0, "\(verify)")
        #expect(try runProgram("/usr/bin/lz4", ["-t", output + "/model.safetensors.lz4"]).status == 0)
        let report =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: output + "/dsnot-report.json"))
            ) as? [String: Any]
        let totals = try #require(report?["totals"] as? [String: Any])
        #expect(totals["sparsity"] as? Double == 0.5)
        // The report's recipe states what ran: the token file's 4 × 32 windows, not the default 128 × 2048.
        let calibration = try #require((report?["recipe"] as? [String: Any])?["calibration"] as? [String: Any])
        #expect(calibration["sequences"] as? Int == 4 && calibration["sequence_length"] as? Int == 32)
        #expect(calibration["source"] as? String == "tokens" && calibration["path"] as? String == Self.calibration)
        // Nothing partial is left in the outbox, and the input is untouched.
        #expect(try FileManager.default.contentsOfDirectory(atPath: daemon.root + "/out") == ["tiny-wanda-u50-dsnot"])
        let after = try FileManager.default.contentsOfDirectory(atPath: daemon.root + "/in/tiny").sorted().map {
            try Data(contentsOf: URL(fileURLWithPath: daemon.root + "/in/tiny/" + $0))
        }
        #expect(after == before)
    }

    // Hostile checkpoints: each becomes a failed job naming its problem, permanently; nothing is published.
    @Test func badCheckpointsFailWithAClearReasonWhileTheDaemonServes() throws {
        let daemon = try DaemonUnderTest(watches: Self.watch)
        defer { daemon.stop() }
        try daemon.drop(Self.model, into: "in", as: "nan") { try Self.poisonFirstWeight($0 + "/model.safetensors") }
        try daemon.drop(Self.model, into: "in", as: "gpt2") { dir in
            try Data(#"{"model_type": "gpt2", "n_embd": 128}"#.utf8).write(
                to: URL(fileURLWithPath: dir + "/config.json")
            )
        }
        #expect(
            waitUntil(timeout: 60) { (try? daemon.jobs().filter { $0.state == .failed }.count) == 2 },
            "\(daemon.log)"
        )
        let failed = try daemon.jobs()
        let nan = try #require(failed.first { $0.inputPath.hasSuffix("/nan") })
        #expect(nan.reason?.contains("model.layers.0.self_attn.q_proj.weight") == true, "\(nan)")
        #expect(nan.reason?.contains("NaN") == true || nan.reason?.contains("nan") == true, "\(nan)")
        let gpt2 = try #require(failed.first { $0.inputPath.hasSuffix("/gpt2") })
        #expect(gpt2.reason?.contains("gpt2") == true && gpt2.reason?.contains("llama") == true, "\(gpt2)")
        #expect(failed.allSatisfy { $0.retryable == false })
        #expect(try FileManager.default.contentsOfDirectory(atPath: daemon.root + "/out").isEmpty)
        #expect(try daemon.ctl("status").status == 0)
    }

    /// Writes a NaN over the first element of `model.layers.0.self_attn.q_proj.weight`.
    static func poisonFirstWeight(_ path: String) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let prefix = try #require(try handle.read(upToCount: 8))
        let length = prefix.enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try #require(try handle.read(upToCount: length))
        let object = try #require(try JSONSerialization.jsonObject(with: header) as? [String: Any])
        let entry = try #require(object["model.layers.0.self_attn.q_proj.weight"] as? [String: Any])
        let offsets = try #require(entry["data_offsets"] as? [Int])
        try handle.seek(toOffset: UInt64(8 + length + offsets[0]))
        try handle.write(contentsOf: withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { Data($0) })
    }
}

@Suite(.serialized) struct ManyCheckpointsTests {
    // 50 checkpoints appear in the inbox within a moment (renamed in, as a sync tool would): the
    // watcher's events and its periodic rescans both see them; every one becomes exactly one job
    // and one output. Magnitude 2:4 needs no calibration, so each prune takes a fraction of a second.
    @Test func fiftyCheckpointsDroppedAtOnceAreEachProcessedExactlyOnce() throws {
        let daemon = try DaemonUnderTest(
            watches: """
                [[watch]]
                name = "main"
                inbox = "in"
                outbox = "out"
                [watch.recipe]
                method = "magnitude"
                pattern = "2:4"
                dsnot = false

                """
        )
        defer { daemon.stop() }
        let names = (0..<50).map { String(format: "m%02d", $0) }
        try daemon.dropCopies(of: PipelineEndToEndTests.model, into: "in", names: names)
        #expect(daemon.waitForDone(50, timeout: 240), "\(daemon.log.suffix(2000))")
        let jobs = try daemon.jobs()
        #expect(jobs.count == 50)
        #expect(Set(jobs.map(\.inputPath)).count == 50)
        let outputs = try FileManager.default.contentsOfDirectory(atPath: daemon.root + "/out").sorted()
        #expect(outputs == names.map { $0 + "-magnitude-2of4" })
    }

    // An inotify queue that overflows loses events: the watcher must rescan. The kernel reads
    // max_queued_events when an inotify instance is created, so the daemon starts with a queue of 4
    // events (the system value is restored at once), and periodic rescans are an hour apart: only the
    // overflow's rescan can find these checkpoints.
    @Test(.enabled(if: getuid() == 0, "setting fs.inotify.max_queued_events needs root"))
    func inotifyOverflowTriggersARescanThatFindsEveryCheckpoint() throws {
        let knob = "/proc/sys/fs/inotify/max_queued_events"
        let original = try String(contentsOfFile: knob, encoding: .utf8)
        try "4\n".write(toFile: knob, atomically: false, encoding: .utf8)
        let daemon: DaemonUnderTest
        do {
            daemon = try DaemonUnderTest(
                watches: """
                    [[watch]]
                    name = "main"
                    inbox = "in"
                    outbox = "out"
                    [watch.recipe]
                    method = "magnitude"
                    pattern = "2:4"
                    dsnot = false

                    """,
                rescanInterval: 3600
            )
        } catch {
            try original.write(toFile: knob, atomically: false, encoding: .utf8)
            throw error
        }
        try original.write(toFile: knob, atomically: false, encoding: .utf8)
        defer { daemon.stop() }
        let names = (0..<20).map { String(format: "o%02d", $0) }
        // The daemon is stopped while the 20 checkpoints land, so their events pile up in the kernel
        // queue and overflow it whatever the timing (a running daemon may drain 4 events in time).
        kill(daemon.process.processIdentifier, SIGSTOP)
        defer { kill(daemon.process.processIdentifier, SIGCONT) }
        try daemon.dropCopies(of: PipelineEndToEndTests.model, into: "in", names: names)
        kill(daemon.process.processIdentifier, SIGCONT)
        #expect(daemon.waitForDone(20, timeout: 120), "\(daemon.log.suffix(2000))")
        #expect(daemon.log.contains("overflow"), "the queue never overflowed: \(daemon.log.suffix(1000))")
        #expect(try daemon.jobs().count == 20)
    }
}
