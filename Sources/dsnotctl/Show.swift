// SPDX-License-Identifier: Apache-2.0
// `dsnotctl show JOB`: one job in detail.

import ArgumentParser
import DSnoTClient
import DSnoTControlProtocol

extension DsnotCtl {
    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one job.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The job id (see list).") var job: String

        func run() throws {
            let record = try global.withClient { try $0.job(job) }
            if global.json { try global.printJSON(record) } else { print(Formatting.details(record)) }
        }
    }
}
