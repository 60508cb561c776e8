// SPDX-License-Identifier: Apache-2.0
// Live journald: dsnotd logs through sd_journal_sendv to a private systemd-journald, read back with
// `journalctl -o json`. The journald runs in a private mount namespace over tmpfs, so the host's
// journal (if any) is untouched.

import DSnoTTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct JournaldLiveTests {
    static let available =
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/lib/systemd/systemd-journald")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/journalctl")

    @Test(.enabled(if: available, "needs root, unshare, systemd-journald and journalctl"))
    func lifecycleRecordsCarryStructuredFields() throws {
        let dsnotd = try Binaries.path("dsnotd")
        let root = try TemporaryDirectory("dsnot-jd").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try "state_dir = \"state\"\nsocket = \"\(root)/d.sock\"\n".write(
            toFile: root + "/d.toml",
            atomically: true,
            encoding: .utf8
        )
        let script = """
            set -e
            mkdir -p /run/systemd /run/log
            mount -t tmpfs tmpfs /run/systemd
            mount -t tmpfs tmpfs /run/log
            if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
            mkdir -p /run/systemd/journal
            /lib/systemd/systemd-journald >/dev/null 2>&1 & JPID=$!
            trap 'kill $JPID 2>/dev/null || true' EXIT
            for i in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.05; done
            JOURNAL_STREAM=0:0 "$1" --config "$2/d.toml" & DPID=$!
            for i in $(seq 200); do [ -S "$2/d.sock" ] && break; sleep 0.05; done
            sleep 0.3
            kill -TERM $DPID
            wait $DPID || true
            journalctl -D /run/log/journal -o json --no-pager SYSLOG_IDENTIFIER=dsnotd
            """
        let output = try runProgram(
            "/usr/bin/unshare",
            ["-m", "--propagation", "private", "sh", "-c", script, "sh", dsnotd, root]
        )
        #expect(output.status == 0, "\(output.stderr)")
        var records: [[String: Any]] = []
        for line in output.stdout.split(separator: "\n") {
            if let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] {
                records.append(object)
            }
        }
        let started = try #require(records.first { $0["DSNOT_EVENT"] as? String == "daemon.started" }, "\(output)")
        #expect(started["MESSAGE"] as? String == "dsnotd started")
        #expect(started["MESSAGE_ID"] as? String == "5a0c5f1e2b7d4c0f9e3a61d8b4c2e701")
        #expect(started["PRIORITY"] as? String == "5")
        #expect(started["DSNOT_LOGGER"] as? String == "dsnot.daemon")
        #expect((started["CODE_FILE"] as? String)?.hasSuffix("DaemonRuntime.swift") == true)
        #expect(Int(started["CODE_LINE"] as? String ?? "") != nil)
        #expect((started["CODE_FUNC"] as? String)?.isEmpty == false)
        #expect(records.contains { $0["DSNOT_EVENT"] as? String == "daemon.stopping" })
    }
}
