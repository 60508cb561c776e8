// SPDX-License-Identifier: Apache-2.0
// Options shared by the online subcommands: --socket, --json; connecting with helpful errors.

import ArgumentParser
import DSnoTClient
import DSnoTControlProtocol
import Foundation

/// `--socket` and `--json`, and the connection logic every online subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "dsnotd's control socket (default: $DSNOT_SOCKET, /run/dsnotd.sock, .dsnot/dsnotd.sock).",
            valueName: "path"
        )
    )
    var socket: String?

    @Flag(name: .long, help: "Print the daemon's answer as JSON (schema: docs/protocol.md).")
    var json = false

    /// Exit status when dsnotd is not running.
    static let notRunningExitCode: Int32 = 3

    var socketPath: String { socket ?? ControlClient.defaultSocketPath }

    /// Runs `body` with a connected client; every failure becomes one line on stderr and an exit code
    /// (3 when dsnotd is not running, 1 otherwise).
    func withClient<T>(timeoutSeconds: Int = 30, _ body: (ControlClient) throws -> T) throws -> T {
        do {
            let client = try ControlClient(socketPath: socketPath, timeoutSeconds: timeoutSeconds)
            return try body(client)
        } catch let error as ClientError {
            Self.printError(error.description)
            if case .daemonNotRunning = error { throw ExitCode(Self.notRunningExitCode) }
            throw ExitCode.failure
        }
    }

    /// Prints a value as pretty JSON with the wire settings.
    func printJSON<T: Encodable>(_ value: T) throws {
        let data = try WireCodec.makeEncoder(pretty: true).encode(value)
        print(String(decoding: data, as: UTF8.self))
    }

    static func printError(_ message: String) {
        FileHandle.standardError.write(Data("dsnotctl: \(message)\n".utf8))
    }
}
