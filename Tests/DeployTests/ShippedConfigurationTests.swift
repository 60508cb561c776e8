// SPDX-License-Identifier: Apache-2.0
// etc/dsnot/dsnotd.toml, the file `make install` ships: it loads, and the defaults it states are the loader's.

import DSnoTCore
import DSnoTDaemon
import DSnoTPipeline
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
        var expected = PruneJobOptions.defaults
        expected.recipe.calibration.path = "/srv/dsnot/calib.txt"
        #expect(try #require(configuration.watches.first).recipe == expected)
    }

    /// Every key of the recipe schema is in the file, set or commented out with its default.
    @Test func everyRecipeKeyIsShown() throws {
        let lines = try Self.source().split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        for key in PruneJobOptions.schemaKeys where !key.hasPrefix("pattern.") {
            let components = key.split(separator: ".").map(String.init)
            let name = components.last ?? key
            let table = components.count > 1 ? "[watch.recipe.\(components.dropLast().joined(separator: "."))]" : ""
            let start =
                table.isEmpty ? lines.firstIndex(of: "[watch.recipe]") : lines.firstIndex { $0.hasSuffix(table) }
            let index = try #require(start, "no table \(table) for \(key)")
            let section = lines[index...].dropFirst().prefix { !$0.hasPrefix("[") && !$0.hasPrefix("# [") }
            #expect(section.contains { $0.hasPrefix("\(name) = ") || $0.hasPrefix("# \(name) = ") }, "\(key)")
        }
    }

    /// The commented-out fleet example parses once uncommented, with its stated defaults.
    @Test func commentedFleetExampleParses() throws {
        var lines = try Self.source().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for prefix in [
            "# job_store = ", "# node_name = ", "# [postgresql]", "# url = ", "# password_file = ", "# lease = ",
            "# lease_settle = ",
        ] {
            let index = try #require(lines.firstIndex { $0.hasPrefix(prefix) }, "no commented \(prefix)")
            lines[index].removeFirst(2)
        }
        let configuration = try Self.parse(lines.joined(separator: "\n"))
        #expect(configuration.jobStore == .postgresql && configuration.nodeName == "gpu-01")
        let postgresql = try #require(configuration.postgresql)
        #expect(postgresql.url.socketPath == "/run/postgresql/.s.PGSQL.5432")
        #expect(postgresql.passwordFile == "/etc/dsnot/postgresql-password")
        let defaults = PostgreSQLConfiguration(url: postgresql.url)
        #expect(postgresql.leaseSeconds == defaults.leaseSeconds && postgresql.settleSeconds == defaults.settleSeconds)
        #expect(try Self.parse(Self.source()).jobStore == .sqlite)
    }

    /// The commented-out examples parse once uncommented.
    @Test func commentedExamplesParse() throws {
        var lines = try Self.source().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for key in [
            "accept", "[watch.recipe.evaluation]", "path", "sequence_length", "windows", "max_increase_percent",
        ] {
            let prefix = key.hasPrefix("[") ? "# \(key)" : "# \(key) = "
            let index = try #require(lines.lastIndex { $0.hasPrefix(prefix) }, "no commented \(key)")
            lines[index].removeFirst(2)
        }
        let recipe = try #require(try Self.parse(lines.joined(separator: "\n")).watches.first).recipe
        #expect(recipe.recipe.dsnot?.accept == .trueError)
        #expect(
            recipe.evaluation
                == EvaluationOptions(
                    textPath: "/srv/dsnot/eval.txt",
                    sequenceLength: 2048,
                    maxWindows: 64,
                    maxIncreasePercent: 10
                )
        )
    }
}
