// SPDX-License-Identifier: Apache-2.0
// `dsnotctl status`: daemon state, uptime, queue counts, the running job with its progress and ETA.

import ArgumentParser
import DSnoTClient
import DSnoTControlProtocol

extension DsnotCtl {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show dsnotd's state, queue counts and the running job.",
            discussion: "Exit status: 0 running, 3 dsnotd not running, 1 any other error."
        )

        @OptionGroup var global: GlobalOptions

        func run() throws {
            let report = try global.withClient { try $0.status() }
            if global.json { try global.printJSON(report) } else { print(Formatting.status(report)) }
        }
    }
}
