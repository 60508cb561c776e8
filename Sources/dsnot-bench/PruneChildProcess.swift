// SPDX-License-Identifier: Apache-2.0
// ChildProcess: runs a command as a fresh child (posix_spawn) and reports its wall time and peak RSS (wait4).

import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A finished child process, measured by the kernel: `wait4`'s `ru_maxrss` is the child's own peak
/// resident set (not the benchmark's), so the prune and CLI-peer benchmarks measure a fresh process.
struct ChildProcess {
    var exitCode: Int32
    var wallSeconds: Double
    /// Peak resident set of the child (`ru_maxrss`, kilobytes on Linux, converted to bytes).
    var peakResidentBytes: Int
    /// User + system CPU seconds of the child.
    var cpuSeconds: Double

    enum Failure: Error, CustomStringConvertible {
        case spawn(command: String, errno: Int32)
        case exit(command: String, code: Int32)

        var description: String {
            switch self {
            case .spawn(let command, let code): "cannot start \(command): \(String(cString: strerror(code)))"
            case .exit(let command, let code): "\(command) exited with status \(code)"
            }
        }
    }

    /// Runs `arguments` (`arguments[0]` is looked up in `PATH`), stdin from `/dev/null` or `stdinPath`,
    /// stdout to `stdoutPath` (or `/dev/null`), stderr inherited. Throws unless it exits with 0.
    static func run(_ arguments: [String], stdinPath: String? = nil, stdoutPath: String? = nil) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinPath ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath ?? "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let start = BenchmarkSupport.now()
        let spawned = posix_spawnp(&pid, arguments[0], &actions, nil, argv, environ)
        guard spawned == 0 else { throw Failure.spawn(command: arguments[0], errno: spawned) }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw Failure.spawn(command: arguments[0], errno: errno) }
        }
        let wall = BenchmarkSupport.now() - start
        // WIFEXITED / WEXITSTATUS by hand (the macros are not imported into Swift).
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        guard code == 0 else { throw Failure.exit(command: arguments.joined(separator: " "), code: code) }
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) * 1e-6 }
        return ChildProcess(
            exitCode: code,
            wallSeconds: wall,
            peakResidentBytes: Int(usage.ru_maxrss) * 1024,
            cpuSeconds: seconds(usage.ru_utime) + seconds(usage.ru_stime)
        )
    }

    /// The directory of the running executable (`/proc/self/exe`), where SwiftPM puts sibling products.
    static func executableDirectory() -> String {
        let path =
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return (path as NSString).deletingLastPathComponent
    }

    /// A fresh empty directory under `/tmp` (or `$TMPDIR`).
    static func temporaryDirectory(_ prefix: String) throws -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        let path = base + "/\(prefix)-\(getpid())-\(Int(BenchmarkSupport.now() * 1000))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
