// SPDX-License-Identifier: Apache-2.0
// BenchmarkSupport: monotonic timer, best-of-N, and the `name: ratio = X (what / what)` report line.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// One benchmark of the suite: a name and a body that measures and prints its ratio lines.
struct Benchmark: Sendable {
    /// Short name, used to select benchmarks on the command line (`dsnot-bench conversion`).
    let name: String
    /// Measures and prints (through `BenchmarkSupport.report`).
    let run: @Sendable () throws -> Void
}

/// Timing helpers shared by every benchmark. Results are reported as ratios of two measurements
/// taken in the same run (absolute numbers only as supporting detail), so they compare across machines.
enum BenchmarkSupport {
    /// Seconds on the monotonic clock (`clock_gettime(CLOCK_MONOTONIC)`).
    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }

    /// The shortest of `repetitions` timed runs of `body`, in seconds (best-of-N filters out the
    /// noise of a shared machine; every run does the full work).
    static func bestOf(_ repetitions: Int, _ body: () throws -> Void) rethrows -> Double {
        var best = Double.infinity
        for _ in 0..<max(repetitions, 1) {
            let start = now()
            try body()
            best = min(best, now() - start)
        }
        return best
    }

    /// Prints `name: ratio = X (numerator / denominator)` and, indented, supporting details.
    static func report(
        _ name: String,
        ratio: Double,
        _ numerator: String,
        over denominator: String,
        details: [String] = []
    ) {
        print("\(name): ratio = \(format(ratio, digits: 3)) (\(numerator) / \(denominator))")
        for line in details { print("    \(line)") }
    }

    /// `bytes / seconds` in GB/s, for details lines.
    static func gigabytesPerSecond(_ bytes: Int, _ seconds: Double) -> String {
        format(Double(bytes) / seconds / 1e9, digits: 2) + " GB/s"
    }

    static func format(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return "\(value)" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let rounded = (value * scale).rounded() / scale
        return "\(rounded)"
    }

    /// Keeps `value` alive so the optimiser cannot drop the computation producing it.
    @inline(never) @_optimize(none)
    static func blackHole<T>(_ value: T) {
        _ = value
    }
}
