// SPDX-License-Identifier: Apache-2.0
// Atomic publishing: never replaces a target, leaves nothing behind on failure, cleans up orphans.

import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@testable import SparseFormat

@Suite struct AtomicPublisherTests {
    @Test func publishMovesTheStagingDirectoryIntoPlace() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let publisher = try AtomicPublisher(target: dir.file("out/"), id: "job1")
        #expect(publisher.stagingPath == dir.file(".dsnot-tmp-job1"))
        try FileIO.writeFile(publisher.stagingPath + "/a.txt", Array("hello".utf8))
        #expect(!FileIO.exists(dir.file("out")))
        try publisher.publish()
        #expect(try Tool.read(dir.file("out/a.txt")) == Array("hello".utf8))
        #expect(!FileIO.exists(publisher.stagingPath))
    }

    @Test func existingTargetIsRefusedBeforeAnythingIsWritten() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        try FileManager.default.createDirectory(atPath: dir.file("out"), withIntermediateDirectories: false)
        #expect(throws: SparseFormatError.targetExists(path: dir.file("out"))) {
            _ = try AtomicPublisher(target: dir.file("out"), id: "job1")
        }
        #expect(try FileIO.listDirectory(dir.path) == ["out"])
    }

    /// A target that appears while the output is being built (another job, a user) is not
    /// replaced, even when it is an empty directory, which plain rename(2) would replace.
    @Test func targetCreatedDuringTheBuildIsNotReplaced() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let publisher = try AtomicPublisher(target: dir.file("out"), id: "job2")
        try FileIO.writeFile(publisher.stagingPath + "/a.txt", Array("mine".utf8))
        try FileManager.default.createDirectory(atPath: dir.file("out"), withIntermediateDirectories: false)
        #expect(throws: SparseFormatError.targetExists(path: dir.file("out"))) { try publisher.publish() }
        #expect(try FileIO.listDirectory(dir.file("out")).isEmpty)
        try publisher.discard()
        #expect(try FileIO.listDirectory(dir.path) == ["out"])
    }

    /// With `.suffix`, a taken name leads to the next free suffixed name, each tried with its own
    /// no-replace rename; what held the names is left as it was.
    @Test func takenNamesGetTheNextFreeSuffix() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        for taken in ["out", "out-j1"] {
            try FileManager.default.createDirectory(atPath: dir.file(taken), withIntermediateDirectories: false)
            try FileIO.writeFile(dir.file(taken + "/keep"), Array(taken.utf8))
        }
        let publisher = try AtomicPublisher(target: dir.file("out"), id: "j1", ifTaken: .suffix("j1"))
        #expect(Array(publisher.candidates.prefix(3)) == [dir.file("out"), dir.file("out-j1"), dir.file("out-j1-2")])
        try FileIO.writeFile(publisher.stagingPath + "/a.txt", Array("mine".utf8))
        #expect(try publisher.publish() == dir.file("out-j1-2"))
        #expect(try Tool.read(dir.file("out-j1-2/a.txt")) == Array("mine".utf8))
        #expect(try Tool.read(dir.file("out/keep")) == Array("out".utf8))
        #expect(try Tool.read(dir.file("out-j1/keep")) == Array("out-j1".utf8))
        #expect(try FileIO.listDirectory(dir.path) == ["out", "out-j1", "out-j1-2"])
        // A publisher adopting a staging directory made by hand publishes it the same way.
        try FileManager.default.createDirectory(
            atPath: AtomicPublisher.stagingPath(in: dir.path, id: "j2"),
            withIntermediateDirectories: false
        )
        let adopted = AtomicPublisher(adopting: "j2", target: dir.file("out"), ifTaken: .suffix("j2"))
        #expect(try adopted.publish() == dir.file("out-j2"))
    }

    @Test func orphanedStagingDirectoriesAreRemovedAtStartUp() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let orphan = try AtomicPublisher(target: dir.file("crashed"), id: "old")
        try FileManager.default.createDirectory(
            atPath: orphan.stagingPath + "/nested",
            withIntermediateDirectories: true
        )
        try FileIO.writeFile(orphan.stagingPath + "/nested/x", [1, 2, 3])
        try FileManager.default.createDirectory(atPath: dir.file("kept"), withIntermediateDirectories: false)
        #expect(try AtomicPublisher.removeOrphans(in: dir.path) == [".dsnot-tmp-old"])
        #expect(try FileIO.listDirectory(dir.path) == ["kept"])
    }

    @Test func failedWriteLeavesNoOutputAndNoStaging() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let publisher = try AtomicPublisher(target: dir.file("out"), id: "job3")
        let plan = OutputPlan(shards: [.init(fileName: "model.safetensors", tensors: ["a.weight", "b.weight"])])
        let writer = try SparseCheckpointWriter(directory: publisher.stagingPath, plan: plan, structure: .twoFour)
        let dense: [UInt8] = [1, 2, 3, 0]  // three non-zeros in a group: not 2:4
        do {
            try dense.withUnsafeBytes {
                try writer.write(name: "a.weight", dtype: .u8, shape: [1, 4], bytes: $0, pruned: true)
            }
            Issue.record("a 3:4 group was accepted for a 2:4 output")
        } catch {
            try publisher.discard()
        }
        #expect(try FileIO.listDirectory(dir.path).isEmpty)
    }
}

@Suite struct SparseCheckpointWriterTests {
    static func writer(in dir: TemporaryDirectory) throws -> SparseCheckpointWriter {
        let plan = OutputPlan(shards: [.init(fileName: "model.safetensors", tensors: ["x.weight", "norm.weight"])])
        return try SparseCheckpointWriter(directory: dir.path, plan: plan, structure: .unstructured)
    }

    @Test func rejectsUnplannedRepeatedAndMisSizedTensors() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let writer = try Self.writer(in: dir)
        let bytes = [UInt8](repeating: 1, count: 8)
        try bytes.withUnsafeBytes { raw in
            #expect(throws: SparseFormatError.unexpectedTensor(tensor: "y.weight", reason: "not in the output plan")) {
                try writer.write(name: "y.weight", dtype: .f32, shape: [2], bytes: raw, pruned: false)
            }
            #expect(throws: SparseFormatError.self) {
                try writer.write(name: "x.weight", dtype: .f32, shape: [3], bytes: raw, pruned: false)
            }
            try writer.write(name: "norm.weight", dtype: .f32, shape: [2], bytes: raw, pruned: false)
            #expect(throws: SparseFormatError.unexpectedTensor(tensor: "norm.weight", reason: "written twice")) {
                try writer.write(name: "norm.weight", dtype: .f32, shape: [2], bytes: raw, pruned: false)
            }
        }
    }

    @Test func finishFailsLoudlyWhenATensorIsMissing() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let writer = try Self.writer(in: dir)
        let bytes = [UInt8](repeating: 1, count: 8)
        try bytes.withUnsafeBytes {
            try writer.write(name: "norm.weight", dtype: .f32, shape: [2], bytes: $0, pruned: false)
        }
        #expect(throws: SparseFormatError.missingTensors(shard: "model.safetensors", tensors: ["x.weight"])) {
            try writer.finish(inputConfig: Array("{}".utf8))
        }
    }

    @Test func singleShardOutputHasNoIndexAndKeepsTheName() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let writer = try Self.writer(in: dir)
        let x: [UInt16] = [0, 0x3C00, 0, 0, 0xBC00, 0, 0, 0]  // f16 2 × 4
        try x.withUnsafeBytes {
            try writer.write(name: "x.weight", dtype: .f16, shape: [2, 4], bytes: $0, pruned: true)
        }
        let norm = [UInt8](repeating: 1, count: 8)
        try norm.withUnsafeBytes {
            try writer.write(name: "norm.weight", dtype: .f32, shape: [2], bytes: $0, pruned: false)
        }
        let manifest = try writer.finish(inputConfig: Array(#"{"model_type": "llama"}"#.utf8))
        #expect(try FileIO.listDirectory(dir.path) == ["config.json", "dsnot-report.json", "model.safetensors.lz4"])
        #expect(manifest.targets == ["x"])
        #expect(manifest.compression.globalSparsity == 0.75)
        #expect(manifest.compression.denseBytes == 24)
    }
}
