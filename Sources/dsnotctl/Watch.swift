// SPDX-License-Identifier: Apache-2.0
// `dsnotctl watch [JOB]`: live progress of one job or all jobs.

import ArgumentParser
import DSnoTClient
import DSnoTControlProtocol
import Foundation

extension DsnotCtl {
    struct Watch: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow job progress live (one job, or all).",
            discussion: "With --json, prints one JobEvent per line. Following one job ends when it finishes."
        )

        @OptionGroup var global: GlobalOptions
        @Argument(help: "A job id; omit to follow every job.") var job: String?

        func run() throws {
            let interactive = isatty(STDOUT_FILENO) == 1 && !global.json
            try global.withClient(timeoutSeconds: 0) { client in
                if let job {
                    let record = try client.job(job)
                    if record.state.isFinal {
                        print(Formatting.details(record))
                        return
                    }
                }
                try client.watch(job: job) { event in
                    if global.json {
                        let data = try WireCodec.makeEncoder().encode(event)
                        print(String(decoding: data, as: UTF8.self))
                    } else {
                        render(event, interactive: interactive)
                    }
                    fflush(nil)
                    return !(job != nil && event.job.state.isFinal)
                }
            }
        }

        private func render(_ event: JobEvent, interactive: Bool) {
            let job = event.job
            let eta = event.etaSeconds.map { " ETA \(Formatting.duration($0))" } ?? ""
            if event.kind == "progress", let block = job.block, let count = job.blockCount {
                let line = "\(job.id) \(Formatting.bar(done: block, total: count)) \(block)/\(count)\(eta)"
                if interactive {
                    print("\r\(line)", terminator: "")
                } else {
                    print(line)
                }
            } else {
                if interactive { print("") }
                print(
                    "\(job.id) \(job.state.rawValue)\(job.phase.map { " \($0.rawValue)" } ?? "")"
                        + "\(job.reason.map { ": \($0)" } ?? "")"
                )
            }
        }
    }
}
