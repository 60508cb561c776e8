// SPDX-License-Identifier: Apache-2.0
// SparseCheckpointWriter+Finish: config.json with sparsity metadata, copied files, index, report with sha256.

import DSnoTSupport
import Foundation
import SafeTensors

extension SparseCheckpointWriter {
    /// A file copied unchanged into the output (tokenizer, generation config, …).
    public struct CopiedFile: Sendable, Equatable {
        public var source: String
        public var name: String
        /// - Parameters:
        ///   - source: path of the input file.
        ///   - name: file name inside the output directory.
        public init(source: String, name: String) {
            self.source = source
            self.name = name
        }
    }

    /// Completes the output: checks every planned tensor arrived, writes `config.json` (the
    /// input's plus `quantization_config`), copies `files`, writes the index when the plan asks
    /// for one, then `dsnot-report.json` = `report` (a JSON object, may be `nil`) plus an `output`
    /// section with the SHA-256 of every other file and the compression figures. Durability
    /// (fsync of every file and directory, rename) is `AtomicPublisher.publish`'s job.
    /// - Parameters:
    ///   - inputConfig: the input's `config.json` bytes (a JSON object); written back with its keys in
    ///     order and every value in its spelling class (a float stays a float), plus
    ///     `quantization_config` (replacing any the input had).
    ///   - ignore: module names the config's `sparsity_config.ignore` lists.
    /// - Returns: the manifest written under `output`.
    /// - Throws: `SparseFormatError.missingTensors`, `.invalidOutput` (config or report not a JSON
    ///   object), I/O errors.
    @discardableResult
    public func finish(
        inputConfig: [UInt8],
        ignore: [String] = [],
        copying files: [CopiedFile] = [],
        report: [UInt8]? = nil
    ) throws -> OutputManifest {
        try checkComplete()
        var manifest = partialManifest()
        var config = try StrictJSON.object(inputConfig, what: "config.json")
        let quantization: StrictJSON.Value = .object([
            // No top-level "format": compressed-tensors would then parse a QuantizationConfig,
            // which requires config_groups (checked with compressed-tensors 0.14.0.1).
            ("quant_method", .string("compressed-tensors")),
            (
                "sparsity_config",
                .object([
                    ("format", .string(structure.formatName)),
                    ("global_sparsity", .number(manifest.compression.globalSparsity)),
                    ("sparsity_structure", .string(structure.rawValue)),
                    ("targets", .array(manifest.targets.map { .string($0) })),
                    ("ignore", .array(ignore.map { .string($0) })),
                ])
            ),
        ])
        config.removeAll { $0.0 == "quantization_config" }
        config.append(("quantization_config", quantization))
        // Every input value keeps its spelling class (`30.0` stays a float): StrictJSON, not
        // JSONSerialization, which writes whole-number floats as integers on Linux.
        try FileIO.writeFile(
            directory + "/config.json",
            try StrictJSON.Value.object(config).prettyText(what: "config.json")
        )
        for file in files {
            try FileIO.copy(from: file.source, to: directory + "/" + file.name)
        }
        if plan.writesIndex {
            try FileIO.writeFile(directory + "/model.safetensors.index.json", try Self.encode(indexObject()))
        }
        // Shard frames were hashed while they were written; the small files are read once here.
        let frames = frameDigests
        for name in try FileIO.listDirectory(directory) where name != OutputManifest.reportFileName {
            let path = directory + "/" + name
            let digest = try frames[name] ?? SHA256.hash(fileAt: path)
            manifest.files.append(.init(name: name, bytes: try FileIO.fileSize(path), sha256: digest.hex))
        }
        var reportObject = try report.map { try Self.jsonObject($0, what: "report") } ?? [:]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        reportObject["output"] = try JSONSerialization.jsonObject(with: try encoder.encode(manifest))
        try FileIO.writeFile(directory + "/" + OutputManifest.reportFileName, try Self.encode(reportObject))
        return manifest
    }

    static func jsonObject(_ bytes: [UInt8], what: String) throws -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw SparseFormatError.invalidOutput(path: what, reason: "not a JSON object")
        }
        return object
    }

    static func encode(_ object: [String: Any]) throws -> [UInt8] {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return Array(data) + [0x0A]
    }
}
