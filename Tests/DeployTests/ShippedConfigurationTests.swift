// SPDX-License-Identifier: Apache-2.0
// etc/dsnot/dsnotd.toml, the file `make install` ships: it loads, and the defaults it states are the loader's.

import DSnoTDaemon
import Foundation
import Testing

@Suite struct ShippedConfigurationTests {
    /// The repository's `etc/dsnot/dsnotd.toml`, found from this file's path.
    static let path = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("etc/dsnot/dsnotd.toml").path

    static func source() throws -> String { try String(contentsOfFile: path, encoding: .utf8) }

    static func parse(_ source: String) throws -> DaemonConfiguration {
        try ConfigurationLoader.parse(source, file: "dsnotd.toml", baseDirectory: URL(fileURLWithPath: "/etc/dsnot"))
    }

    @Test func loadsWithTheSystemPathsAndOneWatch() throws {
        let configuration = try ConfigurationLoader.load(path: Self.path)
        #expect(configuration.stateDirectory == "/var/lib/dsnot")
        #expect(configuration.socketPath == "/run/dsnotd.sock")
        #expect(configuration.adminGroup == "dsnot")
        #expect(configuration.watches.map(\.name) == ["default"])
        let watch = try #require(configuration.watches.first)
        #expect(watch.inbox == "/srv/dsnot/inbox" && watch.outbox == "/srv/dsnot/outbox")
        #expect(watch.priority == 0 && !watch.paused)
    }

    /// The file writes every other key with its default value: they must equal the loader's defaults.
    @Test func statedDefaultsAreTheLoadersDefaults() throws {
        let configuration = try ConfigurationLoader.load(path: Self.path)
        let defaults = DaemonConfiguration.unprivilegedDefault(in: "/etc/dsnot")
        #expect(configuration.workers == defaults.workers)
        #expect(configuration.rescanInterval == defaults.rescanInterval)
        #expect(configuration.settle == defaults.settle)
        #expect(configuration.freeDiskMargin == defaults.freeDiskMargin)
        #expect(configuration.memoryBudget == defaults.memoryBudget)
        #expect(configuration.logLevel == defaults.logLevel)
        var expected = RecipeConfiguration()
        expected.calibrationText = "/srv/dsnot/calib.txt"
        #expect(try #require(configuration.watches.first).recipe == expected)
    }

    /// Each commented-out example parses once uncommented (with the key it excludes removed).
    @Test(
        arguments: [
            (["pattern"], "sparsity"),
            (["accept"], nil),
            (["calibration_tokens"], "calibration_text"),
            (["eval_text", "eval_seqlen", "eval_windows", "max_ppl_increase_percent"], nil),
        ] as [([String], String?)]
    )
    func commentedExamplesParse(keys: [String], removing: String?) throws {
        var lines = try Self.source().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for key in keys {
            let index = try #require(lines.firstIndex { $0.hasPrefix("# \(key) = ") }, "no commented \(key)")
            lines[index].removeFirst(2)
        }
        if let removing { lines.removeAll { $0.hasPrefix("\(removing) = ") } }
        let recipe = try #require(try Self.parse(lines.joined(separator: "\n")).watches.first).recipe
        switch keys[0] {
        case "pattern": #expect(recipe.pattern == "2:4" && recipe.sparsity == nil)
        case "accept": #expect(recipe.accept == .trueError)
        case "calibration_tokens":
            #expect(recipe.calibrationTokens == "/srv/dsnot/calib-tokens.safetensors" && recipe.calibrationText == nil)
        default:
            #expect(recipe.evalText == "/srv/dsnot/eval.txt" && recipe.evalSeqlen == 2048 && recipe.evalWindows == 64)
            #expect(recipe.maxPerplexityIncreasePercent == 10)
        }
    }
}
