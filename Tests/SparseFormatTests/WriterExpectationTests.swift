// SPDX-License-Identifier: Apache-2.0
// The one-pass writer's output bytes equal the spooling writer's: SHA-256 of every file against committed expectations.

import DSnoTSupport
import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@testable import SparseFormat

/// A seeded two-shard output of several 4 MiB LZ4 blocks per shard (compressible and incompressible
/// tensors, pruned weights of three dtypes, tensors of the two shards interleaved as the pipeline
/// interleaves them), written for four (structure, level, byte planes) cases.
///
/// The expected SHA-256 of every output file was recorded from the writer before the one-pass rewrite
/// (commit 7a06ea6: spool file, then `LZ4F_compressUpdate`, then a re-read for the manifest hashes), with
/// liblz4 1.9.4 (Debian 12); a different liblz4 may compress differently. The one-pass writer must
/// reproduce them with its buffers in memory and when they spill to a spool file.
@Suite struct WriterExpectationTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var structure: SparsityStructure
        var level: LZ4Level
        var bytePlanes: Bool
        /// File name → SHA-256 (hex) from the spooling writer.
        var expected: [String: String]
        var testDescription: String { "\(structure.rawValue) \(level.name)\(bytePlanes ? " planes" : "")" }
    }

    static let shardNames = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]

    /// (name, dtype, shape, pruned, shard, compressible), in pipeline order.
    static let tensors: [(String, DType, [Int], Bool, Int, Bool)] = [
        ("model.embed_tokens.weight", .bf16, [4096, 1024], false, 0, true),
        ("model.layers.0.self_attn.q_proj.weight", .bf16, [1024, 1024], true, 0, false),
        ("model.layers.0.mlp.up_proj.weight", .f16, [2048, 512], true, 1, false),
        ("model.layers.0.mlp.gate_proj.weight", .bf16, [2048, 1024], true, 0, true),
        ("model.layers.0.input_layernorm.weight", .f32, [1024], false, 1, false),
        ("model.layers.0.mlp.down_proj.weight", .f32, [512, 1024], true, 1, false),
        ("model.norm.weight", .f32, [1024], false, 0, false),
        ("lm_head.weight", .bf16, [1024, 1024], false, 1, false),
    ]

    static let cases: [Case] = [
        Case(
            structure: .unstructured,
            level: .fast,
            bytePlanes: false,
            expected: [
                "config.json": "91b7535ed212e7502199fb2de76c41ad4aa57e1aab08e6b626dc493c62d90d3d",
                "dsnot-report.json": "7f0dacadfaebb0a9145214fa749e12d1a9924ffe7935d913b08f16c4c9f727b2",
                "model-00001-of-00002.safetensors.lz4":
                    "8010fd3cea793a9311a41815eb7802eac0727a7a9f860f97e981566bfff89e51",
                "model-00002-of-00002.safetensors.lz4":
                    "c8edd2b9d6b22af918acb22b9982b66ff1d861cd1c4d0061309ec322a6b08663",
                "model.safetensors.index.json": "442a34cd161650c3894cf04662fbd63b87a50690d848dc9e10eb6ea4dcc8add9",
            ]
        ),
        Case(
            structure: .twoFour,
            level: .fast,
            bytePlanes: false,
            expected: [
                "config.json": "3622915017ae13dd7e4873cbf456e2c38fd8471b655e90427c17dcdcb3a09c02",
                "dsnot-report.json": "05d9655388f7245c63c22769123577d1bb6ff441fe2a206dbc7bd0a31707daa0",
                "model-00001-of-00002.safetensors.lz4":
                    "f5c5f979c450990f8f3d2e005f14da0aeb5f9d07480a3428b0bc58dfe1bf4af7",
                "model-00002-of-00002.safetensors.lz4":
                    "f3702bbbabe41dfcd9945686356a19e6b7672d7ae1bcfd29e6ae1a924cd459b2",
                "model.safetensors.index.json": "aae1e185abc9b6ca8e2837b1cf63f78e5ce88a04456037f03219c34249caf5c9",
            ]
        ),
        Case(
            structure: .unstructured,
            level: .hc(4),
            bytePlanes: false,
            expected: [
                "config.json": "91b7535ed212e7502199fb2de76c41ad4aa57e1aab08e6b626dc493c62d90d3d",
                "dsnot-report.json": "7edade2359a799be98fb277804768d59d1ba3e178a64fac730081d4651769a96",
                "model-00001-of-00002.safetensors.lz4":
                    "5fb5b838fcae523252c5db54b2273d4a538d1fdaf60616c1a6de62a88e70859b",
                "model-00002-of-00002.safetensors.lz4":
                    "c8edd2b9d6b22af918acb22b9982b66ff1d861cd1c4d0061309ec322a6b08663",
                "model.safetensors.index.json": "442a34cd161650c3894cf04662fbd63b87a50690d848dc9e10eb6ea4dcc8add9",
            ]
        ),
        Case(
            structure: .unstructured,
            level: .accelerated(3),
            bytePlanes: true,
            expected: [
                "config.json": "91b7535ed212e7502199fb2de76c41ad4aa57e1aab08e6b626dc493c62d90d3d",
                "dsnot-report.json": "92752e2df87ccd536270ff5f477431f16668b9f4518e05c4cf330208aa7d2653",
                "model-00001-of-00002.safetensors.planes.lz4":
                    "15be99dc99f1ff0bb93b30e52462c7fd330ea83d7cb87c05bfbb738aeec7e622",
                "model-00002-of-00002.safetensors.planes.lz4":
                    "144c1af9ef6972643d3e9f4e341697bcce2290726e284bf4caf3562669cd6c26",
                "model.safetensors.index.json": "442a34cd161650c3894cf04662fbd63b87a50690d848dc9e10eb6ea4dcc8add9",
            ]
        ),
    ]

    /// In memory (the default limit), spilling part-way through the first shard (3 MiB), and
    /// spooling everything (0).
    @Test(arguments: cases, [SparseCheckpointWriter.defaultBufferLimit, 3 << 20, 0])
    func outputBytesEqualTheSpoolingWriters(_ item: Case, bufferLimit: Int) throws {
        let dir = try TemporaryDirectory("writer-expectation")
        defer { dir.remove() }
        let hashes = try Self.write(item, into: dir.file("out"), bufferLimit: bufferLimit)
        #expect(hashes == item.expected, "\(hashes)")
        // No spool file is left behind.
        #expect(try FileIO.listDirectory(dir.file("out")).allSatisfy { !$0.hasPrefix(".") })
    }

    /// Writes the case's output into the new directory `output`; returns every file's SHA-256.
    static func write(_ item: Case, into output: String, bufferLimit: Int) throws -> [String: String] {
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: false)
        let plan = OutputPlan(
            shards: shardNames.indices.map { shard in
                .init(fileName: shardNames[shard], tensors: tensors.filter { $0.4 == shard }.map(\.0))
            }
        )
        let writer = try SparseCheckpointWriter(
            directory: output,
            plan: plan,
            structure: item.structure,
            level: item.level,
            bytePlanes: item.bytePlanes,
            bufferLimit: bufferLimit
        )
        var random = TensorFactory(seed: 14)
        for (name, dtype, shape, pruned, _, compressible) in tensors {
            let bytes = Self.tensor(
                dtype: dtype,
                shape: shape,
                pruned: pruned ? item.structure : nil,
                compressible: compressible,
                random: &random
            )
            try bytes.withUnsafeBytes {
                try writer.write(name: name, dtype: dtype, shape: shape, bytes: $0, pruned: pruned)
            }
        }
        try writer.finish(
            inputConfig: Array(#"{"model_type": "llama", "hidden_size": 1024}"#.utf8),
            ignore: ["lm_head"],
            report: Array(#"{"recipe": {"method": "magnitude"}}"#.utf8)
        )
        var hashes: [String: String] = [:]
        for name in try FileIO.listDirectory(output) {
            hashes[name] = try SHA256.hash(fileAt: output + "/" + name).hex
        }
        return hashes
    }

    /// Seeded tensor bytes: random values, or values from a 16-entry table (compressible); pruned
    /// weights with about half (unstructured) or exactly two of four (2:4) elements `+0`.
    static func tensor(
        dtype: DType,
        shape: [Int],
        pruned structure: SparsityStructure?,
        compressible: Bool,
        random: inout TensorFactory
    ) -> [UInt8] {
        let count = shape.reduce(1, *)
        let width = dtype.byteWidth
        var bytes = [UInt8](repeating: 0, count: count * width)
        bytes.withUnsafeMutableBytes { raw in
            for i in 0..<count {
                let r = random.next()
                var bits = compressible ? (0x3C00 | (r & 0xF) << 4) : (r & 0x7FFF) | 0x0100
                if let structure {
                    let zero =
                        switch structure {
                        case .unstructured: r >> 63 == 0
                        case .twoFour: (i % 4 - Int(UInt64(i / 4) &* 0x9E37_79B9_7F4A_7C15 >> 62) + 4) % 4 < 2
                        }
                    if zero { bits = 0 }
                }
                for b in 0..<width {
                    raw[i * width + b] =
                        b < 2 ? UInt8(truncatingIfNeeded: bits >> (8 * UInt64(b))) : UInt8(r >> 48 & 0x7F)
                }
                if width == 4 && bits == 0 {
                    raw[i * width + 2] = 0
                    raw[i * width + 3] = 0
                }
            }
        }
        return bytes
    }
}
