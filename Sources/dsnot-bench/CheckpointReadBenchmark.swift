// SPDX-License-Identifier: Apache-2.0
// CheckpointReadBenchmark: reading a 256 MiB sharded checkpoint through the reader versus `cat > /dev/null`.

import Foundation
import SafeTensors

/// Writes a 256 MiB BF16 checkpoint (2 shards + index, 16 tensors of 16 MiB) under `./bench-out/`,
/// then compares, best of 5 each, with the files warm in the page cache for every measurement
/// (one untimed `cat` first; dropping the cache needs root and would measure the disk instead):
/// - `cat <shards> > /dev/null` (the kernel copying every byte to a pipe-less sink);
/// - `Checkpoint(directory:)` + touching every byte of every tensor through `rawBytes(named:)`;
/// - `Checkpoint(directory:)` + `floats(named:)` for every tensor (BF16 → F32 into new arrays).
/// Ratio = cat time / reader time (above 1: the reader is faster than cat).
enum CheckpointReadBenchmark {
    static let tensorCount = 16
    static let tensorBytes = 16 << 20
    static let repetitions = 5

    static let benchmark = Benchmark(name: "checkpoint-read") {
        let root = FileManager.default.currentDirectoryPath + "/bench-out"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let directory = root + "/checkpoint-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let writeTime = try BenchmarkSupport.bestOf(1) { try writeCheckpoint(in: directory) }
        let shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"].map {
            directory + "/" + $0
        }
        let totalBytes = try shards.reduce(0) {
            $0 + ((try FileManager.default.attributesOfItem(atPath: $1)[.size] as? Int) ?? 0)
        }

        try cat(shards)  // warm the page cache
        let catTime = try BenchmarkSupport.bestOf(repetitions) { try cat(shards) }

        var checksum: UInt64 = 0
        let rawTime = try BenchmarkSupport.bestOf(repetitions) {
            let checkpoint = try Checkpoint(directory: directory)
            for name in checkpoint.tensorNames { checksum &+= sum(try checkpoint.rawBytes(named: name)) }
        }
        BenchmarkSupport.blackHole(checksum)
        var floatCount = 0
        let floatsTime = try BenchmarkSupport.bestOf(repetitions) {
            let checkpoint = try Checkpoint(directory: directory)
            for name in checkpoint.tensorNames { floatCount &+= try checkpoint.floats(named: name).count }
        }
        BenchmarkSupport.blackHole(floatCount)
        var buffer = [Float](repeating: 0, count: tensorBytes / 2)
        let intoTime = try BenchmarkSupport.bestOf(repetitions) {
            let checkpoint = try Checkpoint(directory: directory)
            for name in checkpoint.tensorNames {
                try buffer.withUnsafeMutableBufferPointer { try checkpoint.floats(named: name, into: $0) }
            }
        }
        BenchmarkSupport.blackHole(buffer[0])

        let size = "\(totalBytes >> 20) MiB, 2 shards, warm page cache"
        BenchmarkSupport.report(
            "checkpoint_read.raw_bytes_vs_cat",
            ratio: catTime / rawTime,
            "cat > /dev/null time",
            over: "reader time (open + read every tensor byte), \(size)",
            details: [
                "reader raw: \(BenchmarkSupport.gigabytesPerSecond(totalBytes, rawTime)); "
                    + "cat: \(BenchmarkSupport.gigabytesPerSecond(totalBytes, catTime))"
            ]
        )
        BenchmarkSupport.report(
            "checkpoint_read.floats_into_vs_cat",
            ratio: catTime / intoTime,
            "cat > /dev/null time",
            over: "reader time (open + floats(named:into:) BF16→F32 into a reused buffer), \(size)",
            details: [
                "reader floats(into:): \(BenchmarkSupport.gigabytesPerSecond(totalBytes, intoTime)) (BF16 bytes read)"
            ]
        )
        BenchmarkSupport.report(
            "checkpoint_read.floats_vs_cat",
            ratio: catTime / floatsTime,
            "cat > /dev/null time",
            over: "reader time (open + floats(named:) allocating [Float] per tensor), \(size)",
            details: [
                "reader floats: \(BenchmarkSupport.gigabytesPerSecond(totalBytes, floatsTime)) (BF16 bytes read; "
                    + "dominated by page faults of the fresh 32 MiB arrays)"
            ]
        )
        BenchmarkSupport.report(
            "checkpoint_write.stream_writer_vs_cat",
            ratio: catTime / writeTime,
            "cat > /dev/null time",
            over: "stream writer time (2 shards, AtomicFileSink with fsync), one run",
            details: ["writer: \(BenchmarkSupport.gigabytesPerSecond(totalBytes, writeTime)) including fsync"]
        )
    }

    /// Two shards of BF16 tensors with pseudo-random contents, plus the index.
    static func writeCheckpoint(in directory: String) throws {
        var weightMap: [String] = []
        var bits = [UInt16](repeating: 0, count: tensorBytes / 2)
        var state = UInt32(7)
        for shard in 1...2 {
            let fileName = "model-0000\(shard)-of-00002.safetensors"
            let names = (0..<tensorCount / 2).map { "model.layers.\((shard - 1) * tensorCount / 2 + $0).weight" }
            let declarations = names.map {
                TensorDeclaration(name: $0, dtype: .bf16, shape: [tensorBytes / 2 / 4096, 4096])
            }
            var writer = try SafeTensorsStreamWriter(
                declarations: declarations,
                metadata: ["format": "pt"],
                sink: try AtomicFileSink(path: directory + "/" + fileName)
            )
            for name in names {
                for i in bits.indices {
                    state = state &* 1_664_525 &+ 1_013_904_223
                    bits[i] = UInt16(truncatingIfNeeded: state >> 16) & 0xBFFF
                }
                try writer.write(name: name, contentsOf: bits)
                weightMap.append("\"\(name)\": \"\(fileName)\"")
            }
            try writer.finish().commit()
        }
        let index =
            "{\"metadata\": {\"total_size\": \(tensorCount * tensorBytes)}, \"weight_map\": {\(weightMap.joined(separator: ", "))}}"
        try Data(index.utf8).write(to: URL(fileURLWithPath: directory + "/model.safetensors.index.json"))
    }

    /// Runs `cat files > /dev/null`.
    static func cat(_ files: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/cat")
        process.arguments = files
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw CocoaError(.fileReadUnknown) }
    }

    /// Wrapping sum of the bytes as 64-bit words (reads every byte at memory speed).
    static func sum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        guard let base = bytes.baseAddress else { return 0 }
        var lanes = SIMD8<UInt64>()
        var offset = 0
        while offset + 64 <= bytes.count {
            lanes &+= base.loadUnaligned(fromByteOffset: offset, as: SIMD8<UInt64>.self)
            offset += 64
        }
        var total = lanes.wrappedSum()
        while offset < bytes.count {
            total &+= UInt64(bytes[offset])
            offset += 1
        }
        return total
    }
}
