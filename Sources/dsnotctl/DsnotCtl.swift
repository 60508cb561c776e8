// SPDX-License-Identifier: Apache-2.0
// dsnotctl: the root command; online subcommands talk to dsnotd, offline ones call the libraries.

import ArgumentParser

@main
struct DsnotCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dsnotctl",
        abstract: "Control dsnotd and prune checkpoints.",
        discussion: """
            Online commands talk to dsnotd over its Unix socket (--socket, $DSNOT_SOCKET, \
            /run/dsnotd.sock, or .dsnot/dsnotd.sock). --json prints the daemon's own types \
            (docs/protocol.md). Exit status: 0 success, 1 error, 3 dsnotd not running.
            """,
        subcommands: onlineCommands + offlineCommands
    )

    /// Subcommands that need a running dsnotd.
    static let onlineCommands: [any ParsableCommand.Type] = [
        Status.self, List.self, Show.self, Submit.self, Cancel.self, Retry.self, Pause.self, Resume.self,
        Reload.self, Watch.self,
    ]
}
