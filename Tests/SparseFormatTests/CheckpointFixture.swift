// SPDX-License-Identifier: Apache-2.0
// A tiny two-shard "checkpoint" written through SparseCheckpointWriter the way the pruning pipeline would.

import DSnoTTestSupport
import Foundation
import SafeTensors

@testable import SparseFormat

struct CheckpointFixture {
    struct Tensor {
        var name: String
        var shape: [Int]
        var pruned: Bool
        var shard: Int
    }

    /// Pipeline order (block by block), deliberately interleaving the two shards.
    static let tensors: [Tensor] = [
        Tensor(name: "model.embed_tokens.weight", shape: [16, 8], pruned: false, shard: 0),
        Tensor(name: "model.layers.0.self_attn.q_proj.weight", shape: [8, 8], pruned: true, shard: 0),
        Tensor(name: "model.layers.0.mlp.up_proj.weight", shape: [12, 8], pruned: true, shard: 1),
        Tensor(name: "model.layers.0.mlp.down_proj.weight", shape: [8, 12], pruned: true, shard: 0),
        Tensor(name: "model.layers.0.input_layernorm.weight", shape: [8], pruned: false, shard: 1),
        Tensor(name: "model.norm.weight", shape: [8], pruned: false, shard: 1),
        Tensor(name: "lm_head.weight", shape: [16, 8], pruned: false, shard: 1),
    ]

    static let shardNames = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    static let config = #"{"model_type": "llama", "hidden_size": 8, "torch_dtype": "bfloat16"}"#

    let dtype: DType
    let structure: SparsityStructure
    /// Dense bytes after pruning, by tensor name: what the dense sink would write.
    let expected: [String: [UInt8]]
    /// The published output directory.
    let output: String
    let manifest: OutputManifest

    /// Writes and publishes `<dir>/out`.
    init(
        dtype: DType,
        structure: SparsityStructure,
        in dir: TemporaryDirectory,
        seed: UInt64 = 1,
        name: String = "out",
        bytePlanes: Bool = false,
        config: String = Self.config
    ) throws {
        self.dtype = dtype
        self.structure = structure
        var factory = TensorFactory(seed: seed)
        var expected: [String: [UInt8]] = [:]
        let plan = OutputPlan(
            shards: Self.shardNames.indices.map { shard in
                OutputPlan.Shard(
                    fileName: Self.shardNames[shard],
                    tensors: Self.tensors.filter { $0.shard == shard }.map(\.name)
                )
            }
        )
        output = dir.file(name)
        let publisher = try AtomicPublisher(target: output, id: "fixture-" + name)
        let writer = try SparseCheckpointWriter(
            directory: publisher.stagingPath,
            plan: plan,
            structure: structure,
            bytePlanes: bytePlanes
        )
        for tensor in Self.tensors {
            let count = tensor.shape.reduce(1, *)
            var bytes = factory.dense(count: count, dtype: dtype)
            if tensor.pruned {
                bytes = factory.prune(
                    bytes,
                    rows: tensor.shape[0],
                    cols: tensor.shape[1],
                    width: dtype.byteWidth,
                    structure: structure
                )
            }
            expected[tensor.name] = bytes
            try bytes.withUnsafeBytes {
                try writer.write(name: tensor.name, dtype: dtype, shape: tensor.shape, bytes: $0, pruned: tensor.pruned)
            }
        }
        if !FileIO.exists(dir.file("tokenizer.json")) {
            try Tool.write(dir.file("tokenizer.json"), Array(#"{"model": {"type": "BPE"}}"#.utf8))
        }
        manifest = try writer.finish(
            inputConfig: Array(config.utf8),
            ignore: ["lm_head"],
            copying: [.init(source: dir.file("tokenizer.json"), name: "tokenizer.json")],
            report: Array(#"{"recipe": {"method": "magnitude", "sparsity": 0.5}}"#.utf8)
        )
        try publisher.publish()
        self.expected = expected
    }

    /// Reads every tensor of every `*.safetensors` file in `directory`.
    static func readTensors(in directory: String) throws -> [String: [UInt8]] {
        var result: [String: [UInt8]] = [:]
        for name in try FileIO.listDirectory(directory) where name.hasSuffix(".safetensors") {
            let file = try SafeTensorsFile(path: directory + "/" + name)
            for info in file.header.tensors { result[info.name] = Array(file.rawBytes(of: info)) }
        }
        return result
    }
}
