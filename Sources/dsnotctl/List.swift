// SPDX-License-Identifier: Apache-2.0
// `dsnotctl list`: jobs, newest first, filtered by state or watch.

public import ArgumentParser
import DSnoTClient
import DSnoTControlProtocol

extension JobState: ExpressibleByArgument {}

extension DsnotCtl {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs, newest first.")

        @OptionGroup var global: GlobalOptions
        @Option(help: "Only jobs in this state (queued, running, publishing, done, failed, cancelled).")
        var state: JobState?
        @Option(help: "Only jobs of this watch.") var watch: String?
        @Option(help: "At most this many jobs.") var limit: Int?

        func validate() throws {
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        }

        func run() throws {
            let jobs = try global.withClient { try $0.jobs(state: state, watch: watch, limit: limit) }
            if global.json { try global.printJSON(jobs) } else { print(Formatting.table(jobs)) }
        }
    }
}
