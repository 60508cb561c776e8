// SPDX-License-Identifier: Apache-2.0
// Broken checkpoints dropped into a live inbox: each becomes a failed job naming the file and the
// problem, is not read again while unchanged, and is read again once it changes.

import DSnoTControlProtocol
import DSnoTDaemon
import DSnoTTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Hand-made broken checkpoints, one per way a drop can be wrong (llama.cpp's HANDCRAFTED_* files).
enum BrokenDrop: String, CaseIterable {
    case zeroByteShard, truncatedShard, hugeHeaderLength, headerBeyondFile, headerNotJSON, trailingBytes
    case missingConfig, garbageConfig, noShards, fifoShard, fifoConfig, symlinkLoop, linkOutside
    case indexEscapes, indexAbsolute, indexNotJSON, indexNamesMissingShard, badDsnotToml, nonUTF8DsnotToml
    case fifoDsnotToml

    /// Writes the checkpoint into `directory`.
    func write(to directory: URL) throws {
        let shard = directory.appendingPathComponent("model.safetensors")
        let config = directory.appendingPathComponent("config.json")
        func write(_ bytes: [UInt8], _ name: String) throws {
            try Data(bytes).write(to: directory.appendingPathComponent(name))
        }
        func prefixed(_ length: UInt64, _ rest: [UInt8]) -> [UInt8] {
            (0..<8).map { UInt8(truncatingIfNeeded: length >> (8 * UInt64($0))) } + rest
        }
        func index(_ weightMap: String) throws {
            try write(Array(#"{"metadata":{},"weight_map":\#(weightMap)}"#.utf8), "model.safetensors.index.json")
        }
        try CheckpointFixture.write(to: directory)
        switch self {
        case .zeroByteShard: try write([], "model.safetensors")
        case .truncatedShard: try write(Array(CheckpointFixture.shardBytes().prefix(70)), "model.safetensors")
        case .hugeHeaderLength: try write(prefixed(1 << 40, Array("{}".utf8)), "model.safetensors")
        case .headerBeyondFile: try write(prefixed(99_000_000, Array("{}".utf8)), "model.safetensors")
        case .headerNotJSON: try write(prefixed(8, Array("not json".utf8)), "model.safetensors")
        case .trailingBytes: try write(CheckpointFixture.shardBytes() + [1, 2, 3], "model.safetensors")
        case .missingConfig: try FileManager.default.removeItem(at: config)
        case .garbageConfig: try write([0xDE, 0xAD, 0xBE, 0xEF], "config.json")
        case .noShards: try FileManager.default.removeItem(at: shard)
        case .fifoShard:
            try FileManager.default.removeItem(at: shard)
            guard mkfifo(shard.path, 0o644) == 0 else { throw POSIXError(.EIO) }
        case .fifoConfig:
            try FileManager.default.removeItem(at: config)
            guard mkfifo(config.path, 0o644) == 0 else { throw POSIXError(.EIO) }
        case .symlinkLoop:
            try FileManager.default.removeItem(at: shard)
            try FileManager.default.createSymbolicLink(atPath: shard.path, withDestinationPath: "model.safetensors")
        case .linkOutside:
            try FileManager.default.removeItem(at: shard)
            try FileManager.default.createSymbolicLink(atPath: shard.path, withDestinationPath: "/etc/hostname")
        case .indexEscapes: try index(#"{"w":"../../../../etc/hostname"}"#)
        case .indexAbsolute: try index(#"{"w":"/etc/hostname"}"#)
        case .indexNotJSON: try write(Array("{\"weight_map\": ".utf8), "model.safetensors.index.json")
        case .indexNamesMissingShard: try index(#"{"w":"model-00002-of-00002.safetensors"}"#)
        case .badDsnotToml: try write(Array("sparsity = 7\n".utf8), "dsnot.toml")
        case .nonUTF8DsnotToml: try write(Array("method = \"wanda\"\n# caf".utf8) + [0xE9, 0x0A], "dsnot.toml")
        case .fifoDsnotToml:
            guard mkfifo(directory.appendingPathComponent("dsnot.toml").path, 0o644) == 0 else {
                throw POSIXError(.EIO)
            }
        }
    }

    /// Texts the failed job's reason must contain: the file, and the problem.
    var expected: [String] {
        switch self {
        case .zeroByteShard: ["shard 'model.safetensors' is 0 bytes, its header needs 8"]
        case .truncatedShard: ["shard 'model.safetensors' is 70 bytes, its header needs 79"]
        case .hugeHeaderLength: ["model.safetensors: header length 1099511627776 exceeds the limit of 100000000"]
        case .headerBeyondFile: ["shard 'model.safetensors' is 10 bytes, its header needs 99000008"]
        case .headerNotJSON: ["model.safetensors: header is not a JSON object"]
        case .trailingBytes: ["model.safetensors: 3 trailing bytes after the last tensor"]
        case .missingConfig: ["config.json is missing"]
        case .garbageConfig: ["config.json is not a JSON object"]
        case .noShards: ["no *.safetensors file"]
        case .fifoShard: ["'model.safetensors' is a FIFO, not a regular file"]
        case .fifoConfig: ["'config.json' is a FIFO, not a regular file"]
        case .symlinkLoop: ["'model.safetensors'", "Too many levels of symbolic links"]
        case .linkOutside: ["'model.safetensors' is a symbolic link to '/etc/hostname', outside the checkpoint"]
        case .indexEscapes: ["tensor 'w': shard name '../../../../etc/hostname' contains '/'"]
        case .indexAbsolute: ["tensor 'w': shard name '/etc/hostname' contains '/'"]
        case .indexNotJSON: ["model.safetensors.index.json: invalid checkpoint index: not a JSON object"]
        case .indexNamesMissingShard: ["shard 'model-00002-of-00002.safetensors' named by the index is missing"]
        case .badDsnotToml: ["dsnot.toml", "sparsity"]
        case .nonUTF8DsnotToml: ["'dsnot.toml' is not UTF-8 text: invalid byte 0xE9 at offset 22"]
        case .fifoDsnotToml: ["'dsnot.toml' is a FIFO, not a regular file"]
        }
    }
}

@Suite struct BrokenDropTests {
    @Test(arguments: BrokenDrop.allCases)
    func inspectorNamesTheFileAndTheProblem(_ drop: BrokenDrop) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let checkpoint = directory.sub(drop.rawValue)
        try drop.write(to: checkpoint)
        let started = Date()
        let reason: String
        do {
            _ = try CheckpointInspector.inspect(checkpoint)
            _ = try ModelWatcher.recipe(
                for: checkpoint,
                watch: WatchConfiguration(name: "w", inbox: "/i", outbox: "/o")
            )
            Issue.record("\(drop) was accepted")
            return
        } catch {
            reason = "\(error)"
        }
        for text in drop.expected { #expect(reason.contains(text), "\(drop): \(reason)") }
        #expect(Date().timeIntervalSince(started) < 5, "\(drop) took long: a FIFO must not block")
    }

    /// Every broken drop becomes one failed job with its reason; none is read again while unchanged
    /// (activity on an ignored file makes the watcher look, and stat, but not read); fixing one makes
    /// it a queued job.
    @Test func brokenDropsBecomeFailedJobsReadOnceUntilTheyChange() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (store, watcher, task) = try await ModelWatcherTests().start(directory, settle: 0.1)
        defer { task.cancel() }
        for drop in BrokenDrop.allCases { try drop.write(to: directory.sub("in/\(drop.rawValue)")) }
        let all = BrokenDrop.allCases.count
        #expect(try await eventually { try store.jobs(state: .failed, watch: nil, limit: nil).count == all })
        let failed = try store.jobs(state: .failed, watch: nil, limit: nil)
        for drop in BrokenDrop.allCases {
            let path = directory.sub("in/\(drop.rawValue)").path
            let job = try #require(failed.first { $0.inputPath == path }, "\(drop) has no failed job")
            for text in drop.expected { #expect(job.reason?.contains(text) == true, "\(drop): \(job.reason ?? "-")") }
            #expect(job.retryable == false && job.attempts == 0)
            #expect(try store.history(jobID: job.id).last?.detail == job.reason)
        }
        #expect(try store.jobs(state: .queued, watch: nil, limit: nil).isEmpty)

        // Unchanged: touching a hidden file in each (inotify activity) leads to a stat, not a read.
        let inspected = await watcher.inspections
        for drop in BrokenDrop.allCases {
            try Data().write(to: directory.sub("in/\(drop.rawValue)/.touched"))
        }
        try await Task.sleep(for: .milliseconds(800))
        #expect(await watcher.inspections == inspected)
        #expect(try store.jobs(state: nil, watch: nil, limit: nil).count == all)

        // Changed: the truncated shard completed is read again and queued.
        let fixed = directory.sub("in/\(BrokenDrop.truncatedShard.rawValue)")
        try Data(CheckpointFixture.shardBytes()).write(to: fixed.appendingPathComponent("model.safetensors"))
        #expect(try await eventually { try store.jobs(state: .queued, watch: nil, limit: nil).count == 1 })
        #expect(try store.jobs(state: .queued, watch: nil, limit: nil).first?.inputPath == fixed.path)
        #expect(await watcher.inspections > inspected)
    }

    /// A FIFO named model.safetensors used to block the watcher in open(2): nothing else was queued.
    @Test func fifoShardDoesNotBlockTheWatcher() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (store, _, task) = try await ModelWatcherTests().start(directory, settle: 0.1)
        defer { task.cancel() }
        try BrokenDrop.fifoShard.write(to: directory.sub("in/fifo"))
        try await Task.sleep(for: .milliseconds(300))
        try CheckpointFixture.write(to: directory.sub("in/after"))
        #expect(try await eventually(timeout: 5) { try store.jobs(state: .queued, watch: nil, limit: nil).count == 1 })
        #expect(
            try store.jobs(state: .queued, watch: nil, limit: nil).first?.inputPath == directory.sub("in/after").path
        )
        let fifo = try #require(try store.jobs(state: .failed, watch: nil, limit: nil).first)
        #expect(fifo.reason == "'model.safetensors' is a FIFO, not a regular file")
    }
}
