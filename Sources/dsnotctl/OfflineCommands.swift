// SPDX-License-Identifier: Apache-2.0
// The offline subcommands (prune, eval, unpack, inspect) that call the libraries directly.

import ArgumentParser

extension DsnotCtl {
    /// Offline subcommands: add `Prune.self`, `Eval.self`, `Unpack.self`, `Inspect.self` here.
    static let offlineCommands: [any ParsableCommand.Type] = []
}
