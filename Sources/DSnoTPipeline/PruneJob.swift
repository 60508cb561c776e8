// SPDX-License-Identifier: Apache-2.0
// PruneJob: one checkpoint in, one pruned output directory out (shared by dsnotctl prune and dsnotd).

public import DSnoTCore
import Foundation
public import Logging
import SafeTensors
import SparseFormat

/// Prunes one checkpoint into a directory: calibration, `SequentialPruner` into the chosen format,
/// optional perplexity before/after with a quality gate, then the report. Publishing the directory
/// (atomic rename) is the caller's: `dsnotctl prune` uses `AtomicPublisher`, the daemon its scheduler.
///
/// ```swift
/// let job = try PruneJob(input: "/models/in/llama", options: options)
/// let result = try job.run(into: staging, logger: logger)
/// ```
public struct PruneJob: Sendable {
    public let input: String
    public let options: PruneJobOptions

    /// What the job is doing.
    public enum Progress: Sendable, Equatable {
        case loading
        case pruning(PruneProgress)
        /// Evaluating the dense (`pruned == false`) or pruned model: work units done of total.
        case evaluating(pruned: Bool, done: Int, total: Int)
        case writing
    }

    /// A finished job.
    public struct Result: Sendable {
        public var report: PruneReport
        /// Bytes of every file written into the output directory.
        public var outputBytes: Int
    }

    /// - Throws: `PruningError` for invalid settings, a missing calibration source included (the job runs
    ///   now, so a recipe left to be completed per checkpoint must have been completed).
    public init(input: String, options: PruneJobOptions) throws {
        try options.validate()
        try options.recipe.validate()
        self.input = input
        self.options = options
    }

    /// Peak memory and output size, from the checkpoint's headers and the recipe, before any work.
    public func estimate() throws -> (memoryBytes: Int, outputBytes: Int) {
        let checkpoint = try Checkpoint(directory: input)
        let model = try ModelRegistry.model(config: try configData(), tensors: checkpoint)
        let length = min(options.recipe.calibration.sequenceLength, model.maxPositions)
        let pruner = try SequentialPruner(recipe: options.recipe, errorSequences: options.errorSequences)
        var memory = pruner.memoryEstimate(
            model: model,
            sequences: options.recipe.calibration.sequences,
            length: length
        )
        .total
        if options.evaluation != nil {
            // Perplexity streams windows in passes bounded by its 512 MiB activation budget, plus one block.
            memory = max(memory, (512 << 20) + MemoryEstimate.baselineBytes + 2 * (memory / 8))
        }
        let inputBytes = checkpoint.files.reduce(0) { $0 + $1.header.fileSize }
        return (memory, inputBytes + (1 << 20))
    }

    /// Runs the job, writing into `directory` (which must exist and be empty).
    /// - Parameters:
    ///   - jobID: the daemon's job id, recorded in the report as `job` (`nil` for `dsnotctl prune`).
    /// - Throws: `PruneJobError`, `PipelineError` (`.cancelled` when `isCancelled` turned true),
    ///   `PruningError`, `ModelLoadError`, `CalibrationError`, `TokenizerError`, `SafeTensorsError`,
    ///   `SparseFormatError` (I/O, disk full).
    public func run(
        into directory: String,
        jobID: String? = nil,
        logger: Logger,
        progress: (Progress) -> Void = { _ in },
        isCancelled: () -> Bool = { false }
    ) throws -> Result {
        guard (try? FileManager.default.contentsOfDirectory(atPath: directory))?.isEmpty ?? false else {
            throw PruneJobError.outputNotEmpty(path: directory)
        }
        progress(.loading)
        let checkpoint = try Checkpoint(directory: input)
        let config = try configData()
        let model = try ModelRegistry.model(config: config, tensors: checkpoint)
        let calibration = try loadCalibration(model: model)
        let pruner = try SequentialPruner(recipe: options.recipe, errorSequences: options.errorSequences)

        let output = try makeSink(checkpoint: checkpoint, directory: directory)
        var overlay: SpilledOverlay?
        if options.evaluation != nil {
            overlay = try SpilledOverlay(
                base: checkpoint,
                path: directory + "/.dsnot-eval-spill.safetensors",
                declarations: prunableDeclarations(model)
            )
        }
        defer { overlay?.remove() }
        let sink: any PrunedTensorSink = overlay.map { TeeSink([output.sink, $0]) } ?? output.sink
        var report: PruneReport
        do {
            report = try pruner.run(
                model: model,
                source: checkpoint,
                calibration: calibration,
                sink: sink,
                logger: logger,
                progress: { progress(.pruning($0)) },
                isCancelled: isCancelled
            )
        } catch {
            output.abort()
            throw error
        }
        if let evaluation = options.evaluation, let overlay {
            try overlay.seal()
            report.perplexity = try evaluate(
                evaluation,
                dense: model,
                pruned: try ModelRegistry.model(config: config, tensors: overlay),
                progress: progress,
                isCancelled: isCancelled
            )
            overlay.remove()
            if let limit = evaluation.maxIncreasePercent, let p = report.perplexity,
                !(p.increasePercent <= limit)
            {
                output.abort()
                throw PruneJobError.qualityGate(dense: p.dense, pruned: p.pruned, limitPercent: limit)
            }
        }
        progress(.writing)
        report.job = jobID
        try output.finish(Self.encode(report))
        logger.info(
            "Pruned checkpoint",
            metadata: ["model.path": "\(input)", "prune.sparsity": "\(report.totals.sparsity)"]
        )
        return Result(report: report, outputBytes: Self.directoryBytes(directory))
    }

    func configData() throws -> Data {
        let path = input + "/config.json"
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ModelLoadError.unreadableConfig(path: path, reason: "\(error.localizedDescription)")
        }
    }

    func prunableDeclarations(_ model: any DecoderModel) -> [TensorDeclaration] {
        (0..<model.blockCount).flatMap { b in
            model.prunableLinearLayers(block: b).map {
                TensorDeclaration(name: $0.tensorName, dtype: $0.dtype, shape: [$0.outFeatures, $0.inFeatures])
            }
        }
    }

    /// The report as written into `dsnot-report.json`: snake_case keys, sorted, pretty.
    public static func encode(_ report: PruneReport) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(report))
    }

    static func directoryBytes(_ directory: String) -> Int {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.reduce(0) { total, name in
            let size = (try? FileManager.default.attributesOfItem(atPath: directory + "/" + name)[.size]) as? Int
            return total + (size ?? 0)
        }
    }
}
