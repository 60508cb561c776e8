// SPDX-License-Identifier: Apache-2.0
// Human output: the status summary, job tables and details, the progress bar.

import DSnoTControlProtocol
import Foundation

enum Formatting {
    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        if total >= 3600 { return "\(total / 3600)h\(String(format: "%02d", total % 3600 / 60))m" }
        if total >= 60 { return "\(total / 60)m\(String(format: "%02d", total % 60))s" }
        return "\(total)s"
    }

    static func progress(_ job: JobRecord) -> String {
        let phase = job.phase?.rawValue ?? job.state.rawValue
        guard let block = job.block, let count = job.blockCount, count > 0 else { return phase }
        return "\(phase) block \(block)/\(count)"
    }

    static func bar(done: Int, total: Int, width: Int = 30) -> String {
        guard total > 0 else { return "[" + String(repeating: " ", count: width) + "]" }
        let filled = min(width, done * width / total)
        return "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
    }

    static func status(_ report: StatusReport) -> String {
        var lines = [
            "dsnotd \(report.state.rawValue) (pid \(report.pid), up \(duration(report.uptimeSeconds)))",
            "config: \(report.configPath ?? "built-in default")",
        ]
        let order = JobState.allCases.map(\.rawValue)
        lines.append("jobs: " + order.map { "\($0) \(report.counts[$0] ?? 0)" }.joined(separator: ", "))
        for running in report.running {
            let eta = running.etaSeconds.map { ", ETA \(duration($0))" } ?? ""
            lines.append("running: \(running.job.id) \(running.job.inputPath) (\(progress(running.job))\(eta))")
        }
        if report.running.isEmpty { lines.append("running: none") }
        if let reason = report.waitingReason { lines.append("waiting: \(reason)") }
        if let node = report.node { lines.append("node: \(node)") }
        // Every node sharing the job store (one with SQLite), with its last heartbeat.
        for node in report.nodes ?? [] {
            let age = max(0, Date().timeIntervalSince(node.heartbeatAt))
            lines.append(
                "node \(node.name): last heartbeat \(duration(age)) ago, started "
                    + ISO8601DateFormatter().string(from: node.startedAt)
            )
        }
        for watch in report.watches {
            lines.append(
                "watch \(watch.name): \(watch.inbox) → \(watch.outbox) [\(watch.recipe)]\(watch.paused ? " paused" : "")"
            )
        }
        return lines.joined(separator: "\n")
    }

    static func table(_ jobs: [JobRecord]) -> String {
        guard !jobs.isEmpty else { return "no jobs" }
        var rows = [["ID", "STATE", "PROGRESS", "WATCH", "RECIPE", "INPUT"]]
        for job in jobs {
            rows.append([
                job.id, job.state.rawValue, job.state == .running ? progress(job) : (job.reason ?? ""), job.watch,
                job.recipe, job.inputPath,
            ])
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func details(_ job: JobRecord) -> String {
        let iso = ISO8601DateFormatter()
        var lines = [
            "job \(job.id)",
            "  state:    \(job.state.rawValue)\(job.phase.map { " (\($0.rawValue))" } ?? "")",
            "  input:    \(job.inputPath)",
            "  outbox:   \(job.outbox)",
            "  recipe:   \(job.recipe)",
            "  watch:    \(job.watch)",
            "  priority: \(job.priority)",
            "  attempts: \(job.attempts)",
            "  created:  \(iso.string(from: job.createdAt))",
        ]
        if let node = job.node { lines.append("  node:     \(node)") }
        if let block = job.block, let count = job.blockCount { lines.append("  blocks:   \(block)/\(count)") }
        if let output = job.outputPath { lines.append("  output:   \(output)") }
        if let reason = job.reason {
            lines.append("  reason:   \(reason)\(job.retryable.map { $0 ? " (retryable)" : " (permanent)" } ?? "")")
        }
        if let waiting = job.waitingReason { lines.append("  waiting:  \(waiting)") }
        if let notBefore = job.notBefore { lines.append("  retry at: \(iso.string(from: notBefore))") }
        if let finished = job.finishedAt { lines.append("  finished: \(iso.string(from: finished))") }
        return lines.joined(separator: "\n")
    }

    static func history(_ items: [JobHistoryItem]) -> String {
        let iso = ISO8601DateFormatter()
        var lines = ["  history:"]
        for item in items {
            let from = item.from.map { "\($0.rawValue) → " } ?? ""
            lines.append(
                "    \(iso.string(from: item.at))  \(from)\(item.to.rawValue)\(item.detail.map { "  \($0)" } ?? "")"
            )
        }
        return lines.joined(separator: "\n")
    }
}
