// SPDX-License-Identifier: Apache-2.0
// dsnot-bench: runs the benchmark suite (`make bench`); each benchmark prints `name: ratio = X (a / b)`.
//
// Usage: dsnot-bench [name …]   (no names: run all). Add a benchmark by appending it to `benchmarks`.

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

let benchmarks: [Benchmark] = [
    ConversionBenchmark.benchmark,
    CheckpointReadBenchmark.benchmark,
    ForwardPassBenchmark.benchmark,
    BF16GEMMBenchmark.benchmark,
    MoEForwardBenchmark.benchmark,
    PruneBenchmark.benchmark,
    BF16PruneBenchmark.benchmark,
    SparseFormatBenchmark.benchmark,
]

/// Run only when named (`make bench-quality`: tens of minutes; `scripts/bench-resume.sh`, `scripts/bench-scale.sh`).
let onDemandBenchmarks: [Benchmark] = [
    QualityBenchmark.benchmark,
    ResumeBenchmark.benchmark,
    ScaleForwardBenchmark.benchmark,
]

let selected = Array(CommandLine.arguments.dropFirst())
var failed = false
let chosen = selected.isEmpty ? benchmarks : (benchmarks + onDemandBenchmarks).filter { selected.contains($0.name) }
for benchmark in chosen {
    do {
        try benchmark.run()
    } catch {
        print("\(benchmark.name): failed: \(error)")
        failed = true
    }
}
exit(failed ? 1 : 0)
