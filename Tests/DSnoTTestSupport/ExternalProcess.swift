// SPDX-License-Identifier: Apache-2.0
// ExternalProcess: runs a real program (python peer, lz4, …) to completion for a test.

public import Foundation

/// Runs external programs for tests: the Python interop peers, `lz4`, and other command-line tools.
public enum ExternalProcess {
    /// How a program ended: its exit status and its standard output and error, interleaved.
    public typealias Result = (status: Int32, output: String)

    /// Runs `executable` with `arguments` to completion, capturing stdout and stderr in one pipe.
    /// `environment` replaces the inherited environment when given.
    public static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String]? = nil
    ) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Runs a command found on `PATH` (through `/usr/bin/env`).
    public static func run(command arguments: [String], environment: [String: String]? = nil) throws -> Result {
        try run("/usr/bin/env", arguments, environment: environment)
    }

    /// The Python interpreter of the interop peers: `$DSNOT_PYTHON` (set by `make test` to the repository's
    /// `.venv`), when set and executable.
    public static var python: String? {
        ProcessInfo.processInfo.environment["DSNOT_PYTHON"].flatMap {
            FileManager.default.isExecutableFile(atPath: $0) ? $0 : nil
        }
    }
}
