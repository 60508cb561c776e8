// SPDX-License-Identifier: Apache-2.0
// The daemon publishes durably, traced with strace on a real dsnotd: every output file and the staging
// directory fsynced before the no-replace rename, the outbox after it, the `done` commit last; and a
// kill -9 between the rename and the commit finishes the job at restart without running it again.

import DSnoTControlProtocol
import DSnoTTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.serialized) struct PublishDurabilityTests {
    static let strace = "/usr/bin/strace"
    static var hasStrace: Bool { FileManager.default.isExecutableFile(atPath: strace) }

    /// One strace line: the index in the trace, the system call, the path of its first descriptor.
    struct Call {
        var index: Int
        var name: String
        var path: String?
        var line: String
    }

    /// Parses an `strace -f -y` trace into calls, in the order strace saw them start.
    static func calls(in trace: String) -> [Call] {
        let pattern = /^(?:\[pid\s+)?\d+\]?\s+([a-z0-9_]+)\((?:\d+<([^>]*)>)?/
        return trace.split(separator: "\n").enumerated().compactMap { index, line in
            guard let match = line.firstMatch(of: pattern) else { return nil }
            return Call(index: index, name: String(match.1), path: match.2.map(String.init), line: String(line))
        }
    }

    /// Stops a daemon run under strace: SIGTERM to the daemon, then strace exits with it.
    static func stop(_ daemon: DaemonUnderTest, pid: Int32) {
        kill(pid, SIGTERM)
        _ = waitUntil(timeout: 20) { !daemon.process.isRunning }
        daemon.stop()
    }

    @Test(.enabled(if: hasStrace, "needs strace (scripts/install-deps.sh)"))
    func daemonPublishFsyncsEverythingBeforeTheRenameAndCommitsDoneAfterTheOutboxSync() throws {
        let traceDirectory = try TemporaryDirectory("dsnot-trace").path
        defer { try? FileManager.default.removeItem(atPath: traceDirectory) }
        let tracePath = traceDirectory + "/trace"
        let daemon = try DaemonUnderTest(
            watches: PipelineEndToEndTests.watch,
            wrapper: [
                Self.strace, "-f", "-y", "-qq", "-o", tracePath,
                "-e", "trace=fsync,fdatasync,rename,renameat2,openat,pwrite64",
            ]
        )
        let pid = try daemon.daemonPID()
        defer { Self.stop(daemon, pid: pid) }
        try daemon.drop(PipelineEndToEndTests.model, into: "in", as: "tiny")
        #expect(waitUntil(timeout: 120) { (try? daemon.jobs().first?.state) == .done }, "\(daemon.log)")
        let job = try #require(try daemon.jobs().first)
        let output = try #require(job.outputPath)
        let outbox = daemon.root + "/out"
        let staging = outbox + "/.dsnot-tmp-\(job.id)"
        let wal = daemon.root + "/state/jobs.sqlite-wal"
        let calls = Self.calls(in: try String(contentsOfFile: tracePath, encoding: .utf8))

        // The one rename of the staging directory: renameat2 with RENAME_NOREPLACE, to the final name.
        // Renames of the staging directory itself (not of the resume points written inside it per block).
        let renames = calls.filter {
            ($0.name == "rename" || $0.name == "renameat2") && $0.line.contains("\"\(staging)\"")
        }
        #expect(renames.count == 1, "\(renames.map(\.line))")
        let rename = try #require(renames.first)
        #expect(rename.name == "renameat2" && rename.line.contains("RENAME_NOREPLACE"), "\(rename.line)")
        #expect(rename.line.contains("\"\(output)\""), "\(rename.line)")

        let syncs = calls.filter { $0.name == "fsync" || $0.name == "fdatasync" }
        // Every output file was fsynced under its staging name before the rename, then the staging directory.
        let files = try FileManager.default.contentsOfDirectory(atPath: output).sorted()
        #expect(files == ["config.json", "dsnot-report.json", "model.safetensors.lz4"])
        var lastFileSync = -1
        for file in files {
            let sync = syncs.last { $0.path == staging + "/" + file && $0.index < rename.index }
            #expect(sync != nil, "\(file) was not fsynced before the rename")
            lastFileSync = max(lastFileSync, sync?.index ?? Int.max)
        }
        let stagingSync = syncs.last { $0.path == staging && $0.index < rename.index }
        #expect(stagingSync.map { $0.index > lastFileSync } == true, "staging directory not fsynced after its files")
        // The outbox is fsynced after the rename.
        let outboxSync = try #require(
            syncs.first { $0.path == outbox && $0.index > rename.index },
            "outbox not fsynced"
        )
        // The `done` commit comes after the outbox fsync: nothing reaches the job database's WAL between the
        // rename and the outbox fsync; after it, the commit is written and fsynced (synchronous = FULL).
        let walWrites = calls.filter { $0.name == "pwrite64" && $0.path == wal }
        #expect(!walWrites.contains { $0.index > rename.index && $0.index < outboxSync.index })
        let commitWrite = try #require(walWrites.first { $0.index > outboxSync.index }, "no commit after the publish")
        #expect(syncs.contains { $0.path == wal && $0.index > commitWrite.index }, "the done commit was not fsynced")
        // The publishing commit, before the rename, was fsynced too.
        #expect(syncs.contains { $0.path == wal && $0.index < rename.index })
        // And the commit after the rename is the one that made the job `done`.
        let history = try daemon.ctl("show", job.id).stdout
        #expect(history.contains("running → publishing") && history.contains("publishing → done"), "\(history)")
        #expect(try runProgram(try Binaries.path("dsnotctl"), ["verify", output]).status == 0)
    }

    /// SIGKILL after the rename, before the `done` commit: strace holds the daemon in the exit of its
    /// renameat2 for 15 s (`inject=renameat2:delay_exit`, the rename done: the only renameat2 of a
    /// sparse-format job), the test kills it with SIGKILL there; no test hook in the daemon. The restarted daemon finds the published output by the job id in its
    /// report and finishes the job without running it again; there is one output, not two.
    @Test(.enabled(if: hasStrace, "needs strace (scripts/install-deps.sh)"))
    func killBetweenRenameAndCommitIsFinishedAtRestartWithoutARerun() throws {
        let first = try DaemonUnderTest(
            watches: PipelineEndToEndTests.watch,
            wrapper: [
                Self.strace, "-f", "-qq", "-o", "/dev/null",
                "-e", "trace=renameat2", "-e", "inject=renameat2:delay_exit=15000000",
            ]
        )
        let root = first.root
        let pid = try first.daemonPID()
        defer { if first.process.isRunning { kill(pid, SIGKILL) } }
        try first.drop(PipelineEndToEndTests.model, into: "in", as: "tiny")
        let published = root + "/out/tiny-wanda-u50-dsnot"
        #expect(
            waitUntil(timeout: 120) { FileManager.default.fileExists(atPath: published + "/dsnot-report.json") },
            "\(first.log)"
        )
        // The scheduler is held inside the rename: read the job database directly, not through the daemon.
        let row = try runProgram("/usr/bin/sqlite3", [root + "/state/jobs.sqlite", "SELECT id, state FROM job"])
        #expect(row.stdout.hasSuffix("|publishing\n"), "\(row)")
        let id = String(row.stdout.prefix { $0 != "|" })
        kill(pid, SIGKILL)
        // strace lets the killed daemon finish exiting (closing its socket and database) only when the
        // 15 s delay ends; the daemon never runs another instruction of its own.
        #expect(waitUntil(timeout: 60) { !first.process.isRunning })
        let report = try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: published + "/dsnot-report.json"))
        )
        #expect((report as? [String: Any])?["job"] as? String == id)

        let second = try DaemonUnderTest(reusing: root)
        defer { second.stop() }
        #expect(waitUntil(timeout: 30) { (try? second.jobs().first?.state) == .done }, "\(second.log)")
        let done = try #require(try second.jobs().first)
        #expect(done.outputPath == published && done.attempts == 1, "\(done)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/out") == ["tiny-wanda-u50-dsnot"])
        let history = try second.ctl("show", done.id).stdout
        #expect(history.components(separatedBy: "→ running").count == 2, "the job ran again: \(history)")
        #expect(history.contains("publishing → done") && history.contains("found published at start"), "\(history)")
        #expect(try runProgram(try Binaries.path("dsnotctl"), ["verify", published]).status == 0)
    }
}
