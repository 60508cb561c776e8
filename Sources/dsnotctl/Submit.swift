// SPDX-License-Identifier: Apache-2.0
// `dsnotctl submit PATH`: queue a checkpoint directory, with recipe overrides.

import ArgumentParser
import DSnoTClient
import DSnoTControlProtocol
import Foundation

extension DsnotCtl {
    struct Submit: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue a checkpoint directory for pruning.",
            discussion: """
                The recipe is the first watch's, then the checkpoint's dsnot.toml, then each --set, with the \
                keys of dsnotd.toml(5)'s [watch.recipe], dotted for sub-tables (e.g. --set pattern=0.6 \
                --set method=sparsegpt --set dsnot.max_cycles=scaled --set calibration.sequences=32). The \
                output goes to the first watch's outbox.
                """
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The checkpoint directory.") var path: String
        @Option(name: .customLong("set"), help: ArgumentHelp("A recipe override (repeatable).", valueName: "key=value"))
        var overrides: [String] = []
        @Option(help: "Priority (higher runs first).") var priority: Int?

        func validate() throws {
            for item in overrides where !item.contains("=") {
                throw ValidationError("--set expects key=value, got '\(item)'")
            }
        }

        var parsedOverrides: [String: String] {
            var result: [String: String] = [:]
            for item in overrides {
                let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
                result[parts[0]] = parts.count > 1 ? parts[1] : ""
            }
            return result
        }

        var absolutePath: String {
            URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
                .standardizedFileURL.path
        }

        func run() throws {
            let job = try global.withClient {
                try $0.submit(path: absolutePath, overrides: parsedOverrides, priority: priority)
            }
            if global.json {
                try global.printJSON(job)
            } else {
                print("\(job.id) \(job.state.rawValue) \(job.inputPath)")
            }
        }
    }
}
