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
    /// - Parameter resume: count the staging directory's resume files too (`run(resume: true)`): the
    ///   journal of pruned weights and two resume points (the next is written before the last is removed).
    public func estimate(resume: Bool = false) throws -> (memoryBytes: Int, outputBytes: Int) {
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
        if case .sparse(let level, _) = options.format {
            // The sparse writer compresses a finished shard while the pipeline still holds its block.
            memory += LZ4FrameWriter<FileSink>.workingSetBytes(level: level)
        }
        if options.evaluation != nil {
            // Perplexity streams windows in passes bounded by its 512 MiB activation budget, plus one block.
            memory = max(memory, (512 << 20) + MemoryEstimate.baselineBytes + 2 * (memory / 8))
        }
        let inputBytes = checkpoint.files.reduce(0) { $0 + $1.header.fileSize }
        var resumeBytes = 0
        if resume {
            // Per point: every sequence's hidden state, the held-out ones' dense-path states when DSnoT's
            // output check follows the dense model, and the loss check's two streams.
            let n = options.recipe.calibration.sequences
            let heldOut = DSnoT.OutputCheck.heldOutSequences(of: n)
            let dense = options.recipe.dsnot?.outputCheck == .model ? (heldOut > 0 ? heldOut : n) : 0
            let loss =
                options.recipe.dsnot?.lossCheck == true
                ? 2 * SequentialPruner.lossCheckWindowCount(calibrationSequences: n) : 0
            let states = 2 * (n + dense + loss) * length * model.hiddenSize * 4
            resumeBytes = prunableDeclarations(model).reduce(states) {
                $0 + (TensorInfo.checkedByteCount(shape: $1.shape, dtype: $1.dtype) ?? 0)
            }
        }
        return (memory, inputBytes + resumeBytes + (1 << 20))
    }

    /// Runs the job, writing into `directory` (which must exist and be empty, unless `resume`).
    /// - Parameters:
    ///   - jobID: the daemon's job id, recorded in the report as `job` (`nil` for `dsnotctl prune`).
    ///   - resume: keep a resume point in `directory` after every finished block (the journal of pruned
    ///     weights `.dsnot-resume-journal` and `.dsnot-resume-<next block>.safetensors`), and continue from
    ///     the newest valid one found there; anything else in `directory` is removed first. A point that
    ///     does not match this job exactly is logged and ignored (the run starts at block 0). The output
    ///     is byte-identical to an uninterrupted run's; the files are removed before the output is finished.
    /// - Throws: `PruneJobError`, `PipelineError` (`.cancelled` when `isCancelled` turned true),
    ///   `PruningError`, `ModelLoadError`, `CalibrationError`, `TokenizerError`, `SafeTensorsError`,
    ///   `SparseFormatError` (I/O, disk full).
    public func run(
        into directory: String,
        jobID: String? = nil,
        resume: Bool = false,
        logger: Logger,
        progress: (Progress) -> Void = { _ in },
        isCancelled: () -> Bool = { false }
    ) throws -> Result {
        guard let existing = try? FileManager.default.contentsOfDirectory(atPath: directory), resume || existing.isEmpty
        else {
            throw PruneJobError.outputNotEmpty(path: directory)
        }
        progress(.loading)
        let checkpoint = try Checkpoint(directory: input)
        let config = try configData()
        let model = try ModelRegistry.model(config: config, tensors: checkpoint)
        let (calibration, lossWindows) = try loadCalibration(model: model)
        var attempt = try prune(
            recipe: options.recipe,
            model: model,
            checkpoint: checkpoint,
            calibration: calibration,
            lossWindows: lossWindows,
            into: directory,
            resume: resume,
            logger: logger,
            progress: progress,
            isCancelled: isCancelled
        )
        defer { attempt.overlay?.remove() }
        if let check = attempt.report.lossCheck, check.prefersBase {
            // Refining did not clearly lower the held-out loss: publish what the base pruner alone makes. Its
            // run starts over in the emptied directory, without resume points (a crash now restarts the job).
            logger.notice(
                "DSnoT loss check prefers the base masks; pruning again without DSnoT",
                metadata: [
                    "model.path": "\(input)", "loss.refined": "\(check.refinedLoss)", "loss.base": "\(check.baseLoss)",
                ]
            )
            attempt.abandon()
            try Self.emptyDirectory(directory)
            let refined = attempt.report
            attempt = try prune(
                recipe: options.recipe.withoutDSnoT,
                model: model,
                checkpoint: checkpoint,
                calibration: calibration,
                // The fallback's model is scored on the same windows (a token file's last sequences included).
                lossWindows: try lossWindows
                    ?? calibration.map { try CalibrationSet(sequences: Array($0.sequences.suffix(check.windows))) },
                into: directory,
                resume: false,
                logger: logger,
                progress: progress,
                isCancelled: isCancelled
            )
            attempt.report = refined.publishingBase(attempt.report)
        }
        var report = attempt.report
        if let evaluation = options.evaluation, let overlay = attempt.overlay {
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
                attempt.output.abort()
                throw PruneJobError.qualityGate(dense: p.dense, pruned: p.pruned, limitPercent: limit)
            }
        }
        progress(.writing)
        try attempt.resumeWriter?.removeFiles()
        report.job = jobID
        try attempt.output.finish(Self.encode(report))
        logger.info(
            "Pruned checkpoint",
            metadata: ["model.path": "\(input)", "prune.sparsity": "\(report.totals.sparsity)"]
        )
        return Result(report: report, outputBytes: Self.directoryBytes(directory))
    }

    /// One pruning run into `directory`: its output not finished yet, the evaluation overlay (with an
    /// evaluation) and the resume writer (with `resume`).
    struct Attempt {
        var report: PruneReport
        var output: OutputTarget
        var overlay: SpilledOverlay?
        var resumeWriter: ResumeWriter?

        /// Drops the unfinished output and the overlay (the caller empties the directory).
        func abandon() {
            output.abort()
            overlay?.remove()
        }
    }

    /// Runs `SequentialPruner` with `recipe` into a new output in `directory`, resuming from a valid point
    /// there when `resume`.
    func prune(
        recipe: Recipe,
        model: any DecoderModel,
        checkpoint: Checkpoint,
        calibration: CalibrationSet?,
        lossWindows: CalibrationSet?,
        into directory: String,
        resume: Bool,
        logger: Logger,
        progress: (Progress) -> Void,
        isCancelled: () -> Bool
    ) throws -> Attempt {
        let pruner = try SequentialPruner(recipe: recipe, errorSequences: options.errorSequences)
        var point: ResumePoint?
        var resumeWriter: ResumeWriter?
        if resume {
            let fingerprint = try checkpointFingerprint(checkpoint)
            point = loadResumePoint(
                directory: directory,
                model: model,
                calibration: calibration,
                lossWindows: lossWindows,
                pruner: pruner,
                checkpointFingerprint: fingerprint,
                logger: logger
            )
            let journalPath = directory + "/" + ResumeJournal.fileName
            resumeWriter = ResumeWriter(
                directory: directory,
                journal: try point.map { try ResumeJournal(continuing: journalPath, entries: $0.journal) }
                    ?? ResumeJournal(creating: journalPath),
                options: options.stableHash,
                checkpoint: fingerprint,
                lastPoint: point?.state.nextBlock,
                logger: logger
            )
        }

        let output = try makeSink(checkpoint: checkpoint, directory: directory)
        var overlay: SpilledOverlay?
        if options.evaluation != nil {
            overlay = try SpilledOverlay(
                base: checkpoint,
                path: directory + "/.dsnot-eval-spill.safetensors",
                declarations: prunableDeclarations(model)
            )
        }
        let outputs: [any PrunedTensorSink] = [output.sink] + (overlay.map { [$0] } ?? [])
        let sink = TeeSink(outputs + (resumeWriter.map { [$0.journal] } ?? []))
        do {
            let report = try pruner.run(
                model: model,
                source: checkpoint,
                calibration: calibration,
                sink: sink,
                logger: logger,
                progress: { progress(.pruning($0)) },
                isCancelled: isCancelled,
                resumingFrom: point?.state,
                restoreOutput: {
                    guard let point else { return }
                    let restored = TeeSink(outputs)
                    try ResumeJournal.forEach(directory + "/" + ResumeJournal.fileName, entries: point.journal) {
                        try restored.write(name: $0.name, dtype: $0.dtype, shape: $0.shape, bytes: $1, pruned: true)
                    }
                },
                onBlockFinished: resumeWriter.map { writer in { try writer.blockFinished($0) } },
                lossWindows: lossWindows
            )
            return Attempt(report: report, output: output, overlay: overlay, resumeWriter: resumeWriter)
        } catch {
            output.abort()
            overlay?.remove()
            throw error
        }
    }

    /// Removes everything in `directory` (the job's own staging directory).
    static func emptyDirectory(_ directory: String) throws {
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
            try FileManager.default.removeItem(atPath: directory + "/" + name)
        }
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
