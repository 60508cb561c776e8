// SPDX-License-Identifier: Apache-2.0
// OutputManifest: the `output` section of dsnot-report.json (files with sha256, compression figures).

/// What the sparse writer produced: every file with its size and SHA-256, and the compression
/// figures. Stored under the key `output` of `dsnot-report.json`; `SparseVerifier` checks it.
public struct OutputManifest: Codable, Sendable, Equatable {
    /// One file of the output directory.
    public struct File: Codable, Sendable, Equatable {
        public var name: String
        public var bytes: UInt64
        public var sha256: String
    }

    /// One weight shard: its safetensors size before LZ4 and its frame size after.
    public struct Shard: Codable, Sendable, Equatable {
        public var name: String
        public var safetensorsBytes: UInt64
        public var lz4Bytes: UInt64

        enum CodingKeys: String, CodingKey {
            case name
            case safetensorsBytes = "safetensors_bytes"
            case lz4Bytes = "lz4_bytes"
        }
    }

    /// Sizes summed over all weight shards.
    public struct Compression: Codable, Sendable, Equatable {
        /// Bytes of every tensor in dense form (what a dense checkpoint's data sections hold).
        public var denseBytes: UInt64
        /// Bytes of the sparse safetensors files (headers included), before LZ4.
        public var sparseBytes: UInt64
        /// Bytes of the LZ4 frames on disk.
        public var lz4Bytes: UInt64
        /// `denseBytes / lz4Bytes`.
        public var ratio: Double
        /// Zero fraction over the pruned tensors.
        public var globalSparsity: Double

        enum CodingKeys: String, CodingKey {
            case denseBytes = "dense_bytes"
            case sparseBytes = "sparse_bytes"
            case lz4Bytes = "lz4_bytes"
            case ratio
            case globalSparsity = "global_sparsity"
        }
    }

    /// `sparse-bitmask` or `sparse-24-bitmask`.
    public var format: String
    /// `unstructured` or `2:4`.
    public var sparsityStructure: String
    /// The LZ4 level's name (`fast`, `hc-9`, …).
    public var lz4Level: String
    /// `true` for the byte-plane variant (`BytePlanes`); absent otherwise.
    public var bytePlanes: Bool?
    /// Module names of the pruned weights (the config's `targets`).
    public var targets: [String]
    public var shards: [Shard]
    public var compression: Compression
    /// Every file of the directory except `dsnot-report.json` itself, sorted by name.
    public var files: [File]

    enum CodingKeys: String, CodingKey {
        case format
        case sparsityStructure = "sparsity_structure"
        case lz4Level = "lz4_level"
        case bytePlanes = "byte_planes"
        case targets, shards, compression, files
    }

    /// The report's file name.
    public static let reportFileName = "dsnot-report.json"
}
