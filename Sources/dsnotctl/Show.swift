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

        /// The `--json` form: the job and its history.
        struct Output: Encodable {
            var job: JobRecord
            var history: [JobHistoryItem]
        }

        func run() throws {
            let (record, history) = try global.withClient { try $0.jobWithHistory(job) }
            if global.json {
                try global.printJSON(Output(job: record, history: history))
            } else {
                print(Formatting.details(record))
                print(Formatting.history(history))
            }
        }
    }
}
