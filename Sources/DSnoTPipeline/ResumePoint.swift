// SPDX-License-Identifier: Apache-2.0
// ResumePoint: one finished block boundary of a job, stored durably in its staging directory.

import DSnoTCore
import DSnoTSupport
import Foundation
import SafeTensors

/// Why a resume point cannot be used; the job then starts again from block 0.
struct ResumeError: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}

/// `.dsnot-resume-<nextBlock>.safetensors`: the `PruneResumeState` of a job plus the identity it belongs
/// to and the journal entries it covers.
///
/// Tensors: `hidden.<n>` (F32 `[L, hidden]`, the calibration states entering `nextBlock`), `dense.<n>`
/// (`output_check = model`: the held-out states through the dense blocks), `loss_refined.<n>` and
/// `loss_base.<n>` (DSnoT's loss check: its windows' states as published and base-masked), `allocation.sparsity` and
/// `allocation.outlier_ratio` (F64 `[blocks]`, NaN for no ratio). The `__metadata__` key `dsnot.resume`
/// holds the `Manifest` as JSON: format version, the job's identity (`PruneJobOptions.stableHash`, the
/// checkpoint fingerprint), the partial report, the journal entries, and the SHA-256 of the tensor data.
/// The file is written with `AtomicFileSink` (O_EXCL temp file, fsync, no-replace rename, directory
/// fsync). Reading treats it as untrusted: every field is checked, any mismatch is a `ResumeError`.
struct ResumePoint {
    static let prefix = ".dsnot-resume-"
    static let suffix = ".safetensors"
    static let metadataKey = "dsnot.resume"
    static let formatVersion = 1

    struct Manifest: Codable {
        var version: Int
        /// `PruneJobOptions.stableHash` of the job's options (recipe, format, evaluation).
        var options: String
        /// `PruneJob.checkpointFingerprint` of the input.
        var checkpoint: String
        var nextBlock: Int
        var blockCount: Int
        var sequences: Int
        var report: PruneReport
        var journal: [ResumeJournal.Entry]
        /// SHA-256 (hex) of the file's tensor data, in file order.
        var dataSHA256: String
    }

    var state: PruneResumeState
    var journal: [ResumeJournal.Entry]

    static func fileName(nextBlock: Int) -> String { prefix + "\(nextBlock)" + suffix }

    /// The resume points in `directory`, newest (highest block) first.
    static func candidates(in directory: String) -> [(block: Int, name: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return nil }
            let digits = name.dropFirst(prefix.count).dropLast(suffix.count)
            guard !digits.isEmpty, digits.allSatisfy(\.isASCII), digits.allSatisfy(\.isNumber), digits.count < 10,
                let block = Int(digits)
            else { return nil }
            return (block, name)
        }
        .sorted { $0.0 > $1.0 }
    }

    /// Writes the point durably as `<directory>/.dsnot-resume-<nextBlock>.safetensors`.
    /// - Returns: the bytes written.
    static func write(
        _ state: PruneResumeState,
        journal: [ResumeJournal.Entry],
        options: String,
        checkpoint: String,
        directory: String
    ) throws -> Int {
        // The states are written from their own storage (no copy: at 7B scale a point is hundreds of MB).
        var tensors: [(TensorDeclaration, Payload)] = []
        // Indexed states: the calibration states, and the loss check's two streams.
        let indexed = [
            ("hidden.", state.hidden), ("loss_refined.", state.lossStates), ("loss_base.", state.baseLossStates),
        ]
        for (prefix, states) in indexed {
            for (n, h) in states.enumerated() {
                tensors.append(
                    (
                        TensorDeclaration(name: prefix + "\(n)", dtype: .f32, shape: [h.rows, h.columns]),
                        .floats(h.storage)
                    )
                )
            }
        }
        for n in state.denseStates.keys.sorted() {
            guard let h = state.denseStates[n] else { continue }
            tensors.append(
                (TensorDeclaration(name: "dense.\(n)", dtype: .f32, shape: [h.rows, h.columns]), .floats(h.storage))
            )
        }
        let sparsity = state.allocation.map(\.sparsity)
        let ratios = state.allocation.map { $0.outlierRatio ?? .nan }
        for (name, values) in [("allocation.sparsity", sparsity), ("allocation.outlier_ratio", ratios)] {
            tensors.append((TensorDeclaration(name: name, dtype: .f64, shape: [values.count]), .doubles(values)))
        }
        tensors.sort { $0.0.name < $1.0.name }
        var hasher = SHA256()
        for (_, payload) in tensors { payload.withBytes { hasher.update($0) } }
        let manifest = Manifest(
            version: formatVersion,
            options: options,
            checkpoint: checkpoint,
            nextBlock: state.nextBlock,
            blockCount: state.report.blockCount,
            sequences: state.hidden.count,
            report: state.report,
            journal: journal,
            dataSHA256: hasher.finalize().hex
        )
        let json = String(decoding: try JSONEncoder().encode(manifest), as: UTF8.self)
        let sink = try AtomicFileSink(path: directory + "/" + fileName(nextBlock: state.nextBlock))
        do {
            var writer = try SafeTensorsStreamWriter(
                declarations: tensors.map(\.0),
                metadata: [metadataKey: json],
                sink: sink
            )
            for (declaration, payload) in tensors {
                try payload.withBytes { try writer.write(name: declaration.name, bytes: $0) }
            }
            try writer.finish().commit()
        } catch {
            sink.abort()
            throw error
        }
        return sink.bytesWritten
    }

    /// A tensor's elements, kept in their own array until written.
    enum Payload {
        case floats([Float])
        case doubles([Double])

        func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
            switch self {
            case .floats(let values): try values.withUnsafeBytes(body)
            case .doubles(let values): try values.withUnsafeBytes(body)
            }
        }
    }

    /// Reads and checks the point at `path` against the job's identity; the state's shapes against the
    /// model are `SequentialPruner.validateResume`'s.
    /// - Throws: `ResumeError` naming what does not match.
    static func read(path: String, nextBlock: Int, options: String, checkpoint: String) throws -> ResumePoint {
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(path: path) } catch {
            throw ResumeError(reason: "\(error)")  // names the path
        }
        guard let json = file.header.metadata[metadataKey] else {
            throw ResumeError(reason: "\(path): no \(metadataKey) metadata")
        }
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: Data(json.utf8)) } catch {
            throw ResumeError(reason: "\(path): manifest does not decode: \(error)")
        }
        func check(_ ok: Bool, _ what: String, _ expected: Any, _ got: Any) throws {
            guard ok else { throw ResumeError(reason: "\(what): expected \(expected), got \(got)") }
        }
        try check(manifest.version == formatVersion, "format version", formatVersion, manifest.version)
        try check(manifest.options == options, "job options hash", options, manifest.options)
        try check(manifest.checkpoint == checkpoint, "checkpoint fingerprint", checkpoint, manifest.checkpoint)
        try check(manifest.nextBlock == nextBlock, "next block", nextBlock, manifest.nextBlock)
        try check(
            manifest.blockCount == manifest.report.blockCount,
            "block count",
            manifest.report.blockCount,
            manifest.blockCount
        )
        try check(manifest.sequences >= 0, "sequences", "≥ 0", manifest.sequences)

        let blocks = manifest.blockCount
        var expected: [String: (DType, Int?)] = [
            "allocation.sparsity": (.f64, blocks), "allocation.outlier_ratio": (.f64, blocks),
        ]
        for n in 0..<manifest.sequences { expected["hidden.\(n)"] = (.f32, nil) }
        let denseNames = file.tensorNames.filter { $0.hasPrefix("dense.") }
        for name in denseNames { expected[name] = (.f32, nil) }
        // Indexed states: the loss check's two streams must be numbered 0..<count without gaps.
        let lossPrefixes = ["loss_refined.", "loss_base."]
        var lossCounts: [String: Int] = [:]
        for prefix in lossPrefixes {
            let count = file.tensorNames.filter { $0.hasPrefix(prefix) }.count
            for n in 0..<count { expected[prefix + "\(n)"] = (.f32, nil) }
            lossCounts[prefix] = count
        }
        try check(Set(file.tensorNames) == Set(expected.keys), "tensors", expected.keys.sorted(), file.tensorNames)
        var hasher = SHA256()
        for tensor in file.header.tensors.sorted(by: { $0.dataOffsets.lowerBound < $1.dataOffsets.lowerBound }) {
            guard let spec = expected[tensor.name] else { continue }
            let (dtype, length) = spec
            try check(tensor.dtype == dtype, "dtype of \(tensor.name)", dtype.rawValue, tensor.dtype.rawValue)
            if let length {
                try check(tensor.shape == [length], "shape of \(tensor.name)", [length], tensor.shape)
            } else {
                try check(tensor.shape.count == 2, "rank of \(tensor.name)", 2, tensor.shape.count)
            }
            hasher.update(file.rawBytes(of: tensor))
        }
        let digest = hasher.finalize().hex
        try check(digest == manifest.dataSHA256, "tensor data SHA-256", manifest.dataSHA256, digest)

        func matrix(_ name: String) throws -> Matrix {
            let info = try file.info(named: name)
            return Matrix(rows: info.shape[0], columns: info.shape[1], storage: try file.floats(named: name))
        }
        func doubles(_ name: String) throws -> [Double] {
            let raw = file.rawBytes(of: try file.info(named: name))
            return (0..<(raw.count / 8)).map { i in
                var bits: UInt64 = 0
                for k in 0..<8 { bits |= UInt64(raw[8 * i + k]) << (8 * k) }
                return Double(bitPattern: bits)
            }
        }
        do {
            let hidden = try (0..<manifest.sequences).map { try matrix("hidden.\($0)") }
            var dense: [Int: Matrix] = [:]
            for name in denseNames {
                guard let n = Int(name.dropFirst("dense.".count)), n >= 0, "dense.\(n)" == name else {
                    throw ResumeError(reason: "tensor name \(name) is not dense.<sequence>")
                }
                dense[n] = try matrix(name)
            }
            let allocation = zip(try doubles("allocation.sparsity"), try doubles("allocation.outlier_ratio")).map {
                PruneResumeState.BlockAllocation(sparsity: $0, outlierRatio: $1.isNaN ? nil : $1)
            }
            let loss = try lossPrefixes.map { prefix in
                try (0..<(lossCounts[prefix] ?? 0)).map { try matrix(prefix + "\($0)") }
            }
            let state = PruneResumeState(
                nextBlock: manifest.nextBlock,
                hidden: hidden,
                denseStates: dense,
                lossStates: loss[0],
                baseLossStates: loss[1],
                allocation: allocation,
                report: manifest.report
            )
            return ResumePoint(state: state, journal: manifest.journal)
        } catch let error as ResumeError {
            throw error
        } catch {
            throw ResumeError(reason: "\(path): \(error)")
        }
    }
}
