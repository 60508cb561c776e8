// SPDX-License-Identifier: Apache-2.0
// dsnotctl's argument parsing and its behaviour with no daemon (exit 3 and a hint).

import ArgumentParser
import DSnoTControlProtocol
import Foundation
import Testing

@testable import dsnotctl

@Suite struct CommandLineTests {
    @Test func everyCommandIsRegistered() {
        let names = DsnotCtl.configuration.subcommands.map { $0._commandName }
        #expect(
            names == [
                "status", "list", "show", "submit", "cancel", "retry", "pause", "resume", "reload", "watch",
                "prune", "eval", "unpack", "inspect", "verify",
            ]
        )
    }

    @Test func statusTakesSocketAndJSON() throws {
        let command = try #require(
            try DsnotCtl.parseAsRoot(["status", "--json", "--socket", "/tmp/x.sock"]) as? DsnotCtl.Status
        )
        #expect(command.global.json && command.global.socketPath == "/tmp/x.sock")
    }

    @Test func listParsesStateFilter() throws {
        let command = try #require(
            try DsnotCtl.parseAsRoot(["list", "--state", "failed", "--limit", "3"]) as? DsnotCtl.List
        )
        #expect(command.state == .failed && command.limit == 3)
        #expect(throws: (any Error).self) { try DsnotCtl.parseAsRoot(["list", "--state", "sleeping"]) }
        #expect(throws: (any Error).self) { try DsnotCtl.parseAsRoot(["list", "--limit", "0"]) }
    }

    @Test func submitCollectsOverridesAndMakesThePathAbsolute() throws {
        let command = try #require(
            try DsnotCtl.parseAsRoot(["submit", "models/llama", "--set", "sparsity=0.6", "--set", "method=sparsegpt"])
                as? DsnotCtl.Submit
        )
        #expect(command.parsedOverrides == ["sparsity": "0.6", "method": "sparsegpt"])
        #expect(command.absolutePath == FileManager.default.currentDirectoryPath + "/models/llama")
        #expect(throws: (any Error).self) { try DsnotCtl.parseAsRoot(["submit", "m", "--set", "novalue"]) }
    }

    @Test func jobCommandsNeedAJob() {
        for name in ["show", "cancel", "retry"] {
            #expect(throws: (any Error).self) { try DsnotCtl.parseAsRoot([name]) }
        }
        #expect((try? DsnotCtl.parseAsRoot(["reload", "--wait"])) is DsnotCtl.Reload)
        #expect((try? DsnotCtl.parseAsRoot(["pause", "main"])) is DsnotCtl.Pause)
        #expect((try? DsnotCtl.parseAsRoot(["watch"])) is DsnotCtl.Watch)
    }

    @Test func statusWithoutDaemonExitsThree() throws {
        let command = try #require(
            try DsnotCtl.parseAsRoot(["status", "--socket", "/tmp/dsnot-no-such-daemon.sock"]) as? DsnotCtl.Status
        )
        do {
            try command.run()
            Issue.record("status succeeded without a daemon")
        } catch let exit as ExitCode {
            #expect(exit.rawValue == 3)
        }
    }

    @Test func statusHelpDocumentsExitCodes() {
        let help = DsnotCtl.Status.helpMessage()
        #expect(help.contains("Exit status: 0 running, 3 dsnotd not running, 1 any other error."))
        #expect(help.contains("--socket <path>") && help.contains("--json"))
    }
}
