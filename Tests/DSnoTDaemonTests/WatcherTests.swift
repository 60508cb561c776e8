// SPDX-License-Identifier: Apache-2.0
// Readiness: structural completeness, ignored names, and the live watcher (real inotify) on slow writes.

import DSnoTControlProtocol
import DSnoTCore
import DSnoTDaemon
import DSnoTPipeline
import DSnoTTestSupport
import Foundation
import Testing

@Suite struct CheckpointInspectorTests {
    @Test func completeCheckpointIsReadyAndHasAStableFingerprint() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let checkpoint = try CheckpointFixture.write(to: directory.sub("m"))
        try CheckpointInspector.checkComplete(checkpoint)
        #expect(try CheckpointInspector.fingerprint(checkpoint) == CheckpointInspector.fingerprint(checkpoint))
    }

    // A download cut short: the header promises more bytes than the file holds.
    // Lengths: empty, inside the length prefix, inside the header, one byte short of complete.
    @Test(arguments: [0, 7, 12, CheckpointFixture.shardBytes().count - 1])
    func truncatedShardIsNeverReady(_ length: Int) throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let checkpoint = try CheckpointFixture.write(to: directory.sub("m"), truncateTo: length)
        #expect(throws: CheckpointNotReady.self) { try CheckpointInspector.checkComplete(checkpoint) }
    }

    @Test func shardLongerThanItsHeaderSaysIsNotReady() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let checkpoint = try CheckpointFixture.write(to: directory.sub("m"))
        let handle = try FileHandle(forWritingTo: checkpoint.appendingPathComponent("model.safetensors"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data([1, 2, 3]))
        try handle.close()
        #expect(throws: CheckpointNotReady.self) { try CheckpointInspector.checkComplete(checkpoint) }
    }

    @Test func indexNamingAMissingShardIsNotReady() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let checkpoint = try CheckpointFixture.write(to: directory.sub("m"))
        try Data(#"{"weight_map":{"w":"model.safetensors","v":"model-00002-of-00002.safetensors"}}"#.utf8)
            .write(to: checkpoint.appendingPathComponent("model.safetensors.index.json"))
        #expect(throws: CheckpointNotReady.missingShard("model-00002-of-00002.safetensors")) {
            try CheckpointInspector.checkComplete(checkpoint)
        }
    }

    @Test func missingOrBrokenConfigIsNotReady() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let checkpoint = try CheckpointFixture.write(to: directory.sub("m"))
        try Data("{not json".utf8).write(to: checkpoint.appendingPathComponent("config.json"))
        #expect(throws: CheckpointNotReady.configNotJSON) { try CheckpointInspector.checkComplete(checkpoint) }
        try FileManager.default.removeItem(at: checkpoint.appendingPathComponent("config.json"))
        #expect(throws: CheckpointNotReady.missingConfig) { try CheckpointInspector.checkComplete(checkpoint) }
    }

    @Test(arguments: [
        (".hidden", true), ("m.incomplete", true), ("m.tmp", true), ("m.partial", true), ("llama-7b", false),
        ("model.safetensors", false),
    ])
    func ignoredNames(_ name: String, _ ignored: Bool) {
        #expect(CheckpointInspector.isIgnored(name) == ignored)
    }

    @Test func changedCheckpointGetsANewFingerprint() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let checkpoint = try CheckpointFixture.write(to: directory.sub("m"))
        let before = try CheckpointInspector.fingerprint(checkpoint)
        try CheckpointFixture.write(to: checkpoint, elements: 8)
        #expect(try CheckpointInspector.fingerprint(checkpoint) != before)
    }
}

@Suite struct ModelWatcherTests {
    /// A scheduler (paused, so jobs stay queued) and a watcher over `directory`'s inbox.
    func start(_ directory: TemporaryDirectory, settle: Double = 0.3) async throws -> (
        SQLiteJobStore, ModelWatcher, Task<Void, any Error>
    ) {
        let configuration = testConfiguration(in: directory, settle: settle)
        let store = try SQLiteJobStore(path: directory.sub("jobs.sqlite").path)
        let scheduler = PruneScheduler(
            store: store,
            runner: ScriptedJobRunner(),
            settings: .init(configuration),
            events: EventHub(),
            logger: testLogger
        )
        _ = try await scheduler.pause(watch: nil)
        let watcher = ModelWatcher(
            scheduler: scheduler,
            settings: .init(configuration),
            logger: testLogger,
            tick: .milliseconds(50)
        )
        let task = Task { try await watcher.run() }
        await watcher.waitForFirstScan()
        return (store, watcher, task)
    }

    @Test func slowlyWrittenShardIsQueuedOnlyOnceComplete() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (store, _, task) = try await start(directory)
        defer { task.cancel() }
        let checkpoint = directory.sub("in/llama")
        let shard = CheckpointFixture.shardBytes(elements: 64)
        try CheckpointFixture.write(to: checkpoint, truncateTo: 0)
        let handle = try FileHandle(forWritingTo: checkpoint.appendingPathComponent("model.safetensors"))
        // Write the shard in pieces with pauses longer than the settle time: quiet but incomplete, so
        // each pause may record a failed job saying so, but nothing is queued before the end.
        for piece in stride(from: 0, to: shard.count, by: 100) {
            try handle.write(contentsOf: Data(shard[piece..<min(shard.count, piece + 100)]))
            try await Task.sleep(for: .milliseconds(450))
            if piece + 100 < shard.count { #expect(try store.jobs(state: .queued, watch: nil, limit: nil).isEmpty) }
        }
        try handle.close()
        let queued = try await eventually { try store.jobs(state: .queued, watch: "main", limit: nil).count == 1 }
        #expect(queued)
        #expect(try store.jobs(state: .queued, watch: nil, limit: nil).first?.inputPath == checkpoint.path)
        for failed in try store.jobs(state: .failed, watch: nil, limit: nil) {
            #expect(failed.reason?.hasPrefix("shard 'model.safetensors' is ") == true)
        }
    }

    @Test func truncatedCheckpointFailsAndIgnoredOnesAreNeverQueued() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (store, _, task) = try await start(directory, settle: 0.1)
        defer { task.cancel() }
        try CheckpointFixture.write(to: directory.sub("in/cut"), truncateTo: 30)
        try CheckpointFixture.write(to: directory.sub("in/.hidden"))
        try CheckpointFixture.write(to: directory.sub("in/dl.partial"))
        try CheckpointFixture.write(to: directory.sub("in/good"))
        let recorded = try await eventually { try store.jobs(state: nil, watch: nil, limit: nil).count == 2 }
        #expect(recorded)
        try await Task.sleep(for: .milliseconds(600))
        #expect(
            try store.jobs(state: .queued, watch: nil, limit: nil).map(\.inputPath) == [directory.sub("in/good").path]
        )
        let cut = try #require(try store.jobs(state: .failed, watch: nil, limit: nil).first)
        #expect(cut.inputPath == directory.sub("in/cut").path)
        #expect(cut.reason == "shard 'model.safetensors' is 30 bytes, its header needs 63")
        #expect(try store.jobs(state: nil, watch: nil, limit: nil).count == 2)
    }

    @Test func checkpointPresentAtStartIsFoundByTheFirstScanAndAChangeMakesANewJob() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        try CheckpointFixture.write(to: directory.sub("in/early"))
        let (store, _, task) = try await start(directory, settle: 0.1)
        defer { task.cancel() }
        let first = try await eventually { try store.jobs(state: nil, watch: nil, limit: nil).count == 1 }
        #expect(first)
        try CheckpointFixture.write(to: directory.sub("in/early"), elements: 16)
        let second = try await eventually { try store.jobs(state: nil, watch: nil, limit: nil).count == 2 }
        #expect(second)
    }

    @Test func checkpointDsnotTomlOverridesTheRecipeAndABadOneFailsWithItsReason() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (store, _, task) = try await start(directory, settle: 0.1)
        defer { task.cancel() }
        let custom = try CheckpointFixture.write(to: directory.sub("in/custom"))
        try Data("pattern = 0.7\nmethod = \"magnitude\"\n".utf8).write(to: custom.appendingPathComponent("dsnot.toml"))
        let broken = try CheckpointFixture.write(to: directory.sub("in/broken"))
        try Data("pattern = 7\n".utf8).write(to: broken.appendingPathComponent("dsnot.toml"))
        #expect(try await eventually { try store.jobs(state: nil, watch: nil, limit: nil).count == 2 })
        let queued = try store.jobs(state: .queued, watch: nil, limit: nil)
        #expect(queued.map(\.inputPath) == [custom.path])
        #expect(queued.first?.recipe == "magnitude-u70-dsnot")
        #expect(try store.recipe(jobID: queued[0].id)?.recipe.method == .magnitude)
        let failed = try #require(try store.jobs(state: .failed, watch: nil, limit: nil).first)
        #expect(failed.inputPath == broken.path)
        #expect(failed.reason?.contains(broken.appendingPathComponent("dsnot.toml").path) == true)
        #expect(failed.reason?.contains("pattern") == true)
    }
}
