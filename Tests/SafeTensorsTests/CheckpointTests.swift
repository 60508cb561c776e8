// SPDX-License-Identifier: Apache-2.0
// Checkpoint tests: single-file and sharded directories opened, indexed and read.

import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@Suite struct CheckpointTests {
    /// Writes `tensors` (name → F32 values) as one shard file.
    static func writeShard(_ dir: TemporaryDirectory, _ name: String, _ tensors: [(String, [Float])]) throws {
        try SafeTensorsStreamWriter.writeFile(
            path: dir.file(name),
            tensors: tensors.map {
                (TensorDeclaration(name: $0.0, dtype: .f32, shape: [$0.1.count]), littleEndianBytes($0.1))
            }
        )
    }

    static func writeIndex(_ dir: TemporaryDirectory, _ weightMap: [(String, String)]) throws {
        let entries = weightMap.map { "\"\($0.0)\": \"\($0.1)\"" }.joined(separator: ", ")
        try dir.write(
            "model.safetensors.index.json",
            Array(#"{"metadata": {"total_size": 20, "format": "pt"}, "weight_map": {\#(entries)}}"#.utf8)
        )
    }

    @Test func singleFileCheckpointIsFoundByConventionalName() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        try Self.writeShard(dir, "model.safetensors", [("x", [1, 2]), ("y", [3])])
        let checkpoint = try Checkpoint(directory: dir.path)
        #expect(!checkpoint.isSharded)
        #expect(checkpoint.shards == ["model.safetensors"])
        #expect(checkpoint.tensorNames == ["x", "y"])
        #expect(try checkpoint.floats(named: "y") == [3])
        #expect(try checkpoint.rawBytes(named: "x").count == 8)
    }

    @Test func loneSafetensorsFileWithAnotherNameIsAccepted() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        try Self.writeShard(dir, "weights.safetensors", [("x", [1])])
        #expect(try Checkpoint(directory: dir.path).shards == ["weights.safetensors"])
        try Self.writeShard(dir, "other.safetensors", [("x", [1])])
        #expect(throws: SafeTensorsError.self) { _ = try Checkpoint(directory: dir.path) }
    }

    @Test func shardedCheckpointMapsEveryTensorToItsShard() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        try Self.writeShard(dir, "model-00001-of-00002.safetensors", [("a", [1, 2]), ("b", [3])])
        try Self.writeShard(dir, "model-00002-of-00002.safetensors", [("c", [4, 5])])
        try Self.writeIndex(
            dir,
            [
                ("c", "model-00002-of-00002.safetensors"), ("a", "model-00001-of-00002.safetensors"),
                ("b", "model-00001-of-00002.safetensors"),
            ]
        )
        let checkpoint = try Checkpoint(directory: dir.path)
        #expect(checkpoint.isSharded)
        #expect(checkpoint.shards == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"])
        #expect(checkpoint.tensorNames == ["a", "b", "c"])
        #expect(checkpoint.indexMetadata == ["total_size": "20", "format": "pt"])
        #expect(try checkpoint.floats(named: "c") == [4, 5])
        #expect(try checkpoint.file(containing: "b").path.hasSuffix("model-00001-of-00002.safetensors"))
        #expect(try checkpoint.info(named: "a").shape == [2])
        #expect(throws: SafeTensorsError.tensorNotFound(name: "z", file: dir.file("model.safetensors.index.json"))) {
            _ = try checkpoint.info(named: "z")
        }
    }

    /// Seeded random shardings (1–4 shards, 1–12 tensors, random placement, mixed dtypes) written with
    /// the stream writer plus an index: the checkpoint finds every tensor in its shard, byte for byte.
    @Test(arguments: 0..<12)
    func randomShardingsReadBackEveryTensor(seed: UInt64) throws {
        var state = seed &+ 0x9E37_79B9
        func next(_ bound: Int) -> Int {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int(state >> 33) % bound
        }
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let shardCount = 1 + next(4)
        let shardNames = (1...shardCount).map { "model-\($0)-of-\(shardCount).safetensors" }
        var contents: [String: [(TensorDeclaration, [UInt8])]] = [:]
        var placement: [(String, String)] = []
        for i in 0..<(1 + next(12)) {
            let dtype = DType.allCases[next(DType.allCases.count)]
            let declaration = TensorDeclaration(name: "layer.\(i).w", dtype: dtype, shape: [next(4), 1 + next(5)])
            let bytes = (0..<declaration.shape.reduce(dtype.byteWidth, *)).map { _ in UInt8(next(256)) }
            let shard = shardNames[i < shardCount ? i : next(shardCount)]  // every shard gets a tensor
            contents[shard, default: []].append((declaration, bytes))
            placement.append((declaration.name, shard))
        }
        for (shard, tensors) in contents {
            try SafeTensorsStreamWriter.writeFile(path: dir.file(shard), tensors: tensors)
        }
        try Self.writeIndex(dir, placement.reversed())  // index order is irrelevant
        let checkpoint = try Checkpoint(directory: dir.path)
        #expect(checkpoint.shards == contents.keys.sorted())
        #expect(Set(checkpoint.tensorNames) == Set(placement.map(\.0)))
        for (shard, tensors) in contents {
            for (declaration, bytes) in tensors {
                #expect(try checkpoint.file(containing: declaration.name).path == dir.file(shard))
                #expect(TensorDeclaration(try checkpoint.info(named: declaration.name)) == declaration)
                #expect(Array(try checkpoint.rawBytes(named: declaration.name)) == bytes)
            }
        }
    }
}
