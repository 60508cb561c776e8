// SPDX-License-Identifier: Apache-2.0
// `dsnotctl cancel JOB` and `dsnotctl retry JOB`.

import ArgumentParser
import DSnoTClient
import DSnoTControlProtocol

extension DsnotCtl {
    struct Cancel: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cancel a job (a running job stops at its next block boundary)."
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The job id.") var job: String

        func run() throws {
            let record = try global.withClient { try $0.cancel(job) }
            if global.json {
                try global.printJSON(record)
            } else {
                print("\(record.id) \(record.state.rawValue)\(record.waitingReason.map { " (\($0))" } ?? "")")
            }
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Re-queue a failed or cancelled job.")

        @OptionGroup var global: GlobalOptions
        @Argument(help: "The job id.") var job: String

        func run() throws {
            let record = try global.withClient { try $0.retry(job) }
            if global.json { try global.printJSON(record) } else { print("\(record.id) \(record.state.rawValue)") }
        }
    }
}
