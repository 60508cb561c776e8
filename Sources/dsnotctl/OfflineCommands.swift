// SPDX-License-Identifier: Apache-2.0
// The offline subcommands (prune, eval, unpack, inspect, verify) that call the libraries directly,
// and the terminal progress line they share.

import ArgumentParser
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

extension DsnotCtl {
    /// Offline subcommands: no daemon needed.
    static let offlineCommands: [any ParsableCommand.Type] = [
        Prune.self, Eval.self, Unpack.self, Inspect.self, Verify.self,
    ]
}

/// A one-line progress display on stderr, drawn only when stderr is a terminal.
struct ProgressLine {
    let enabled: Bool = isatty(STDERR_FILENO) == 1
    private var lastDraw = ContinuousClock.now - .seconds(1)

    /// Redraws at most ten times a second.
    mutating func update(_ label: String, done: Int, total: Int) {
        guard enabled else { return }
        let now = ContinuousClock.now
        guard now - lastDraw >= .milliseconds(100) || done == total else { return }
        lastDraw = now
        let percent = total > 0 ? 100 * done / total : 0
        let line = "\r\(Formatting.bar(done: done, total: total)) \(percent)% \(label)"
        FileHandle.standardError.write(Data((line + "\u{1B}[K").utf8))
    }

    func finish() {
        guard enabled else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}

/// Prints `message` to stderr and exits 1: the offline commands' error path (`code: message` style).
func failOffline(_ error: any Error) -> ExitCode {
    GlobalOptions.printError("\(error)")
    return ExitCode.failure
}
