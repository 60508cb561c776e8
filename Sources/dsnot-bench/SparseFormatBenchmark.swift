// SPDX-License-Identifier: Apache-2.0
// SparseFormatBenchmark: the sparse output format's size and speed on SmolLM2 bf16, against the lz4 and zstd CLIs.

import Foundation
import SafeTensors
import SparseFormat

/// SmolLM2-135M bf16 (`DSNOT_BENCH_FIXTURES`/smollm2-135m-bf16) with every `*proj.weight` magnitude-
/// pruned at 50 %, 70 % (unstructured) and 2:4. For each, the dense-with-zeros checkpoint is written
/// once (untimed); then, on the same bytes, best of 3 wall times, alternating:
///
/// - ours: `SparseCheckpointWriter` (pack + LZ4 compress + finish) and `SparseUnpacker.unpack(.dense)`;
/// - peers: `lz4 -1` and `zstd -3 -T1` on the dense file, `lz4 -d` of lz4's output (also timed with a
///   `sync` of its output, since our unpack publishes with an fsync).
///
/// Every timed step starts with no dirty page cache (a `sync` before it, untimed): otherwise a step
/// that fsyncs pays for the writeback of the unsynced files the steps before it left (on this ext4
/// volume an unpack right after `lz4 -d` of the same size took 1.03 s instead of 0.50 s). Each step
/// also writes its output while the previous repetition's output of the same step has just been
/// removed: `lz4 -f` and `zstd -f` truncate their previous output when they start, and ours are
/// removed right before the pack and the unpack. On a VM whose balloon reports free pages to the
/// host, memory freed longer ago may have gone back to the host and costs kernel time to touch again
/// (docs/results.md: 0.07–0.50 s of system time for the same unpack when ours ran after the writer
/// and lz4 right after our output was freed).
///
/// Ratios: our output size over the dense bf16 size, over lz4's and over zstd's; pack throughput
/// relative to `lz4 -1` (= lz4 time / our time, aim ≥ 1) and unpack relative to `lz4 -d` (aim ≥ 1).
enum SparseFormatBenchmark {
    static let repetitions = 3

    static let benchmark = Benchmark(name: "sparse") { try run() }

    /// Writes back every dirty page (`sync`), so that the next timed step starts from a clean cache.
    static func settle() throws {
        _ = try ChildProcess.run(["sync"])
    }

    static func run() throws {
        let fixtures = ProcessInfo.processInfo.environment["DSNOT_BENCH_FIXTURES"] ?? ".fixtures"
        let input = fixtures + "/smollm2-135m-bf16"
        guard FileManager.default.fileExists(atPath: input + "/model.safetensors") else {
            print("sparse: skipped (no \(input)/model.safetensors; run scripts/fixtures.sh)")
            return
        }
        let original = try SafeTensorsFile(path: input + "/model.safetensors")
        let fileBytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: original.path)))
        let dataStart = 8 + Int(fileBytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.1) << (8 * $1.0) })
        let config = [UInt8](try Data(contentsOf: URL(fileURLWithPath: input + "/config.json")))
        let scratch = try ChildProcess.temporaryDirectory("dsnot-bench-sparse")
        defer { try? FileManager.default.removeItem(atPath: scratch) }

        let cases: [(label: String, structure: SparsityStructure, ratio: Double)] = [
            ("u50", .unstructured, 0.5), ("u70", .unstructured, 0.7), ("2of4", .twoFour, 0.5),
        ]
        for item in cases {
            // The pruned dense-with-zeros file: same header, pruned weights' bytes zeroed by magnitude.
            var bytes = fileBytes
            var prunedNames = Set<String>()
            for info in original.header.tensors where isPrunable(info) {
                prunedNames.insert(info.name)
                let range = (dataStart + info.dataOffsets.lowerBound)..<(dataStart + info.dataOffsets.upperBound)
                bytes.withUnsafeMutableBytes { raw in
                    let values = UnsafeMutableRawBufferPointer(rebasing: raw[range]).bindMemory(to: UInt16.self)
                    MagnitudeMask.prune(values, structure: item.structure, ratio: item.ratio)
                }
            }
            let densePath = scratch + "/dense.safetensors"
            try Data(bytes).write(to: URL(fileURLWithPath: densePath))

            var ours = (pack: Double.infinity, unpack: Double.infinity, bytes: UInt64(0))
            var lz4 = (pack: Double.infinity, unpack: Double.infinity, unpackSynced: Double.infinity, bytes: 0)
            var zstd = (pack: Double.infinity, bytes: 0)
            // The previous repetition's sparse output and dense unpack, each removed right before the
            // step that writes the next one (see `run`'s doc).
            var previous: (out: String, dense: String)?
            for rep in 0..<repetitions {
                let out = scratch + "/out\(rep)"
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: false)
                let plan = OutputPlan(shards: [.init(fileName: "model.safetensors", tensors: original.tensorNames)])
                if let previous { try FileManager.default.removeItem(atPath: previous.out) }
                try settle()
                var start = BenchmarkSupport.now()
                let writer = try SparseCheckpointWriter(directory: out, plan: plan, structure: item.structure)
                for info in original.header.tensors {
                    let range = (dataStart + info.dataOffsets.lowerBound)..<(dataStart + info.dataOffsets.upperBound)
                    try bytes.withUnsafeBytes { raw in
                        try writer.write(
                            name: info.name,
                            dtype: info.dtype,
                            shape: info.shape,
                            bytes: UnsafeRawBufferPointer(rebasing: raw[range]),
                            pruned: prunedNames.contains(info.name)
                        )
                    }
                }
                let manifest = try writer.finish(inputConfig: config)
                ours.pack = min(ours.pack, BenchmarkSupport.now() - start)
                ours.bytes = manifest.compression.lz4Bytes

                if let previous { try FileManager.default.removeItem(atPath: previous.dense) }
                try settle()
                start = BenchmarkSupport.now()
                _ = try SparseUnpacker.unpack(outputDirectory: out, destination: out + "-dense", mode: .dense)
                ours.unpack = min(ours.unpack, BenchmarkSupport.now() - start)
                if rep == 0 {
                    try checkRoundTrip(
                        out + "-dense/model.safetensors",
                        original: original,
                        expected: bytes,
                        dataStart: dataStart
                    )
                }
                previous = (out, out + "-dense")

                let lz4Path = scratch + "/dense.lz4"
                try settle()
                let packed = try ChildProcess.run(["lz4", "-1", "-q", "-f", densePath, lz4Path])
                lz4.pack = min(lz4.pack, packed.wallSeconds)
                lz4.bytes = try fileSize(lz4Path)
                try settle()
                let unpacked = try ChildProcess.run(["lz4", "-d", "-q", "-f", lz4Path, scratch + "/dense.out"])
                lz4.unpack = min(lz4.unpack, unpacked.wallSeconds)
                // Our unpack publishes durably (AtomicPublisher fsyncs the output); the same for lz4's.
                let synced = try ChildProcess.run(["sync", scratch + "/dense.out"])
                lz4.unpackSynced = min(lz4.unpackSynced, unpacked.wallSeconds + synced.wallSeconds)
                let zstdPath = scratch + "/dense.zst"
                try settle()
                let zpacked = try ChildProcess.run(["zstd", "-3", "-T1", "-q", "-f", densePath, "-o", zstdPath])
                zstd.pack = min(zstd.pack, zpacked.wallSeconds)
                zstd.bytes = try fileSize(zstdPath)
            }
            if let previous {
                try FileManager.default.removeItem(atPath: previous.out)
                try FileManager.default.removeItem(atPath: previous.dense)
            }
            let dense = Double(fileBytes.count)
            let size = Double(ours.bytes)
            let name = "sparse.smollm2_bf16_magnitude_\(item.label)"
            let gb = { (s: Double) in BenchmarkSupport.gigabytesPerSecond(fileBytes.count, s) }
            BenchmarkSupport.report(
                name + "_size_vs_dense",
                ratio: size / dense,
                "our sparse output (lz4 frame)",
                over: "dense bf16 file",
                details: [
                    "ours \(ours.bytes) B, dense \(fileBytes.count) B, lz4 -1 \(lz4.bytes) B, zstd -3 \(zstd.bytes) B",
                    "vs lz4 -1: \(BenchmarkSupport.format(size / Double(lz4.bytes), digits: 3)), "
                        + "vs zstd -3: \(BenchmarkSupport.format(size / Double(zstd.bytes), digits: 3)) (of the dense-with-zeros file)",
                ]
            )
            BenchmarkSupport.report(
                name + "_size_vs_lz4",
                ratio: size / Double(lz4.bytes),
                "our output bytes",
                over: "lz4 -1 of the dense-with-zeros file"
            )
            BenchmarkSupport.report(
                name + "_size_vs_zstd",
                ratio: size / Double(zstd.bytes),
                "our output bytes",
                over: "zstd -3 of the dense-with-zeros file"
            )
            BenchmarkSupport.report(
                name + "_pack_throughput_vs_lz4",
                ratio: lz4.pack / ours.pack,
                "lz4 -1 CLI time",
                over: "our pack+compress time",
                details: [
                    "ours \(gb(ours.pack)), lz4 -1 \(gb(lz4.pack)), zstd -3 \(gb(zstd.pack)) (dense bytes / s, best of \(repetitions))"
                ]
            )
            BenchmarkSupport.report(
                name + "_unpack_throughput_vs_lz4",
                ratio: lz4.unpack / ours.unpack,
                "lz4 -d CLI time",
                over: "our unpack --dense time",
                details: [
                    "ours \(gb(ours.unpack)), lz4 -d \(gb(lz4.unpack)) (dense bytes / s, best of \(repetitions))",
                    "ours includes the publishing fsync; lz4 -d then sync of its output: \(gb(lz4.unpackSynced)), "
                        + "ratio \(BenchmarkSupport.format(lz4.unpackSynced / ours.unpack, digits: 3))",
                ]
            )
        }
        print("    load average \(QualityBenchmark.loadAverage())")
    }

    /// The weights dsnot prunes in a LLaMA checkpoint: 2-D bf16 `*_proj.weight`.
    static func isPrunable(_ info: TensorInfo) -> Bool {
        info.shape.count == 2 && info.name.hasSuffix("proj.weight") && info.dtype == .bf16
    }

    static func fileSize(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    }

    struct RoundTripMismatch: Error, CustomStringConvertible {
        var path: String
        var description: String { "\(path): unpack --dense does not reproduce the pruned tensors" }
    }

    /// The unpacked file's tensors must equal the pruned dense bytes, tensor by tensor (by name;
    /// the unpacked header may order them differently).
    static func checkRoundTrip(
        _ path: String,
        original: SafeTensorsFile,
        expected: [UInt8],
        dataStart: Int
    ) throws {
        let unpacked = try SafeTensorsFile(path: path)
        for info in original.header.tensors {
            let ours = unpacked.rawBytes(of: try unpacked.info(named: info.name))
            let range = (dataStart + info.dataOffsets.lowerBound)..<(dataStart + info.dataOffsets.upperBound)
            let same = expected.withUnsafeBytes { raw in
                ours.count == range.count
                    && memcmp(ours.baseAddress!, raw.baseAddress! + range.lowerBound, range.count) == 0
            }
            guard same else { throw RoundTripMismatch(path: path + " (" + info.name + ")") }
        }
    }
}

/// Magnitude masks on 16-bit floats, in place (layer scope; ties by index), fast enough to produce
/// the benchmark's inputs: the sign-cleared bit pattern of a bf16 orders by magnitude, so a 32768-bucket
/// histogram finds the threshold in O(n).
enum MagnitudeMask {
    static func prune(_ values: UnsafeMutableBufferPointer<UInt16>, structure: SparsityStructure, ratio: Double) {
        switch structure {
        case .unstructured:
            var histogram = [Int](repeating: 0, count: 1 << 15)
            for value in values { histogram[Int(value & 0x7FFF)] += 1 }
            var remaining = Int(Double(values.count) * ratio)
            var threshold = 0
            while threshold < histogram.count && remaining >= histogram[threshold] {
                remaining -= histogram[threshold]
                threshold += 1
            }
            for i in values.indices {
                let magnitude = Int(values[i] & 0x7FFF)
                if magnitude < threshold {
                    values[i] = 0
                } else if magnitude == threshold && remaining > 0 {
                    values[i] = 0
                    remaining -= 1
                }
            }
        case .twoFour:
            for group in stride(from: 0, to: values.count - 3, by: 4) {
                // The two smallest of four, ties by index.
                var order = [0, 1, 2, 3]
                order.sort { (values[group + $0] & 0x7FFF, $0) < (values[group + $1] & 0x7FFF, $1) }
                values[group + order[0]] = 0
                values[group + order[1]] = 0
            }
        }
    }
}
