// SPDX-License-Identifier: Apache-2.0
// ConversionBenchmark: BF16/F16 ⇄ F32 conversion throughput as a fraction of memcpy's.

import SafeTensors

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Converts 16 Mi elements (BF16 → F32: 32 MiB read, 64 MiB written) and compares with `memcpy` of
/// the 64 MiB output buffer size, both best of 7 on warm, pre-faulted buffers. Ratio = memcpy time /
/// conversion time, i.e. conversion throughput as a fraction of memcpy throughput (1.0 = as fast).
enum ConversionBenchmark {
    static let elements = 16 << 20
    static let repetitions = 7

    static let benchmark = Benchmark(name: "conversion") {
        let n = elements
        var halves = [UInt16](repeating: 0, count: n)
        var generator = UInt32(12_345)
        for i in 0..<n {
            generator = generator &* 1_664_525 &+ 1_013_904_223
            halves[i] = UInt16(truncatingIfNeeded: generator >> 16) & 0x7BFF  // finite values
        }
        var floats = [Float](repeating: 1, count: n)
        var copy = [Float](repeating: 2, count: n)

        let memcpyTime = BenchmarkSupport.bestOf(repetitions) {
            floats.withUnsafeBytes { src in
                copy.withUnsafeMutableBytes { dst in
                    if let to = dst.baseAddress, let from = src.baseAddress { _ = memcpy(to, from, 4 * n) }
                }
            }
        }
        BenchmarkSupport.blackHole(copy[n - 1])
        let memcpyDetail =
            "memcpy of \(4 * n >> 20) MiB: \(BenchmarkSupport.gigabytesPerSecond(4 * n, memcpyTime)) (copied bytes)"

        let bf16Time = BenchmarkSupport.bestOf(repetitions) {
            halves.withUnsafeBufferPointer { src in
                floats.withUnsafeMutableBufferPointer { FloatConversion.bf16ToF32(src, into: $0) }
            }
        }
        BenchmarkSupport.blackHole(floats[n - 1])
        BenchmarkSupport.report(
            "conversion.bf16_to_f32_vs_memcpy",
            ratio: memcpyTime / bf16Time,
            "bf16→f32 throughput, \(n >> 20) Mi elements",
            over: "memcpy throughput, same \(4 * n >> 20) MiB output",
            details: [
                "bf16→f32: \(BenchmarkSupport.gigabytesPerSecond(4 * n, bf16Time)) (F32 bytes written); \(memcpyDetail)"
            ]
        )

        let f16Time = BenchmarkSupport.bestOf(repetitions) {
            halves.withUnsafeBufferPointer { src in
                floats.withUnsafeMutableBufferPointer { FloatConversion.f16ToF32(src, into: $0) }
            }
        }
        BenchmarkSupport.blackHole(floats[n - 1])
        BenchmarkSupport.report(
            "conversion.f16_to_f32_vs_memcpy",
            ratio: memcpyTime / f16Time,
            "f16→f32 throughput",
            over: "memcpy throughput, same \(4 * n >> 20) MiB output"
        )

        for (label, narrow) in [("f32_to_bf16", FloatConversion.f32ToBF16), ("f32_to_f16", FloatConversion.f32ToF16)] {
            let time = BenchmarkSupport.bestOf(repetitions) {
                floats.withUnsafeBufferPointer { src in halves.withUnsafeMutableBufferPointer { narrow(src, $0) } }
            }
            BenchmarkSupport.blackHole(halves[n - 1])
            BenchmarkSupport.report(
                "conversion.\(label)_vs_memcpy",
                ratio: memcpyTime / time,
                "\(label) throughput (\(4 * n >> 20) MiB read)",
                over: "memcpy throughput, \(4 * n >> 20) MiB"
            )
        }
    }
}
