// SPDX-License-Identifier: Apache-2.0
// `dsnotctl pause [WATCH]`, `resume [WATCH]`, `reload [--wait]`.

import ArgumentParser
import DSnoTClient
import DSnoTControlProtocol
import Foundation

/// The `--json` form of commands that answer with a message.
struct MessageOutput: Encodable {
    var message: String
}

extension DsnotCtl {
    struct Pause: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pause the queue, or one watch (running jobs continue)."
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "A watch name; omit to pause the whole queue.") var watch: String?

        func run() throws {
            let message = try global.withClient { try $0.perform(.pause(watch: watch)) }
            if global.json { try global.printJSON(MessageOutput(message: message)) } else { print(message) }
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume the queue, or one watch.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "A watch name; omit to resume the whole queue.") var watch: String?

        func run() throws {
            let message = try global.withClient { try $0.perform(.resume(watch: watch)) }
            if global.json { try global.printJSON(MessageOutput(message: message)) } else { print(message) }
        }
    }

    struct Reload: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Reload dsnotd's configuration (an invalid file is rejected and the old one kept).",
            discussion: "--wait returns only once dsnotd reports itself running again after the reload."
        )

        @OptionGroup var global: GlobalOptions
        @Flag(help: "Wait until the daemon is running again.") var wait = false

        func run() throws {
            let message = try global.withClient { client -> String in
                let message = try client.perform(.reload)
                if wait {
                    for _ in 0..<100 {
                        if try client.status().state != .reloading { break }
                        Thread.sleep(forTimeInterval: 0.1)
                    }
                }
                return message
            }
            if global.json { try global.printJSON(MessageOutput(message: message)) } else { print(message) }
        }
    }
}
