// SPDX-License-Identifier: Apache-2.0
// PruneJob+Steps: calibration, the output sink per format, and the before/after evaluation.

import DSnoTCore
import Foundation
import SafeTensors
import SparseFormat

/// The output of one job: where tensors go, and how to finish or abandon the directory.
struct OutputTarget {
    let sink: any PrunedTensorSink
    let finish: ([UInt8]) throws -> Void
    let abort: () -> Void
}

extension PruneJob {
    /// The calibration windows of the recipe (D2), or `nil` when the recipe needs none and names none;
    /// and, when the recipe has DSnoT's loss check and a calibration text, the check's windows: drawn
    /// after the calibration windows by the same generator, so the calibration windows do not change and
    /// no pruning decision sees the loss windows. A token file has no more windows to draw: the check
    /// then scores its last sequences (`SequentialPruner.run`).
    func loadCalibration(model: any DecoderModel) throws -> (calibration: CalibrationSet?, lossWindows: CalibrationSet?)
    {
        let c = options.recipe.calibration
        guard let path = c.path, !path.isEmpty else {
            if options.recipe.needsCalibration { try options.recipe.validateCalibration() }
            return (nil, nil)
        }
        switch c.source {
        case .tokens:
            return (try CalibrationSet.load(tokenFile: path, vocabularySize: model.vocabularySize), nil)
        case .text:
            let tokens = try tokenize(path)
            let length = min(c.sequenceLength, model.maxPositions)
            let calibration = try CalibrationSet(tokens: tokens, count: c.sequences, length: length, seed: c.seed)
            guard options.recipe.dsnot?.lossCheck == true else { return (calibration, nil) }
            let lossWindows = try CalibrationSet(
                tokens: tokens,
                count: SequentialPruner.lossCheckWindowCount(calibrationSequences: c.sequences),
                length: length,
                seed: c.seed,
                skipping: c.sequences
            )
            return (calibration, lossWindows)
        }
    }

    /// A whole text file as one token stream with the checkpoint's own tokenizer, no special tokens.
    func tokenize(_ path: String) throws -> [Int32] {
        let tokenizerPath = input + "/tokenizer.json"
        guard FileManager.default.fileExists(atPath: tokenizerPath) else {
            throw PruneJobError.missingTokenizer(directory: input)
        }
        let tokenizer = try Tokenizer(contentsOf: tokenizerPath)
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw PruneJobError.unreadableText(path: path, reason: error.localizedDescription)
        }
        return try tokenizer.encode(text)
    }

    func makeSink(checkpoint: Checkpoint, directory: String) throws -> OutputTarget {
        switch options.format {
        case .dense:
            let sink = try DenseCheckpointSink(input: checkpoint, directory: directory)
            return OutputTarget(
                sink: sink,
                finish: { report in
                    try sink.finish()
                    try Data(report).write(to: URL(fileURLWithPath: directory + "/dsnot-report.json"))
                },
                abort: { sink.abort() }
            )
        case .sparse(let level, let bytePlanes):
            let plan = OutputPlan(
                shards: zip(checkpoint.shards, checkpoint.files).map { shard, file in
                    OutputPlan.Shard(fileName: shard, tensors: file.header.tensors.map(\.name))
                },
                writesIndex: checkpoint.isSharded
            )
            let structure: SparsityStructure = options.recipe.pattern == .nOfM(2, 4) ? .twoFour : .unstructured
            // Shards spool to the staging directory (`bufferLimit: 0`) rather than stay in memory: a
            // prune hands the writer its tensors over minutes, so holding them would only add up to
            // the writer's 256 MiB default to the job's RSS, which `MemoryEstimate` does not count.
            // Compression, checksum and hashing stay one parallel pass when a shard completes.
            let writer = try SparseCheckpointWriter(
                directory: directory,
                plan: plan,
                structure: structure,
                level: level,
                bytePlanes: bytePlanes,
                bufferLimit: 0
            )
            let input = self.input
            return OutputTarget(
                sink: SparseSink(writer),
                finish: { report in
                    let config = Array(try Data(contentsOf: URL(fileURLWithPath: input + "/config.json")))
                    let copies = Checkpoint.companionFiles.filter {
                        FileManager.default.fileExists(atPath: input + "/" + $0)
                    }
                    .map { SparseCheckpointWriter.CopiedFile(source: input + "/" + $0, name: $0) }
                    try writer.finish(inputConfig: config, copying: copies, report: report)
                },
                abort: {}
            )
        }
    }

    /// Perplexity of the dense and the pruned model on the same windows (D10).
    func evaluate(
        _ evaluation: EvaluationOptions,
        dense: any DecoderModel,
        pruned: any DecoderModel,
        progress: (Progress) -> Void,
        isCancelled: () -> Bool
    ) throws -> PruneReport.PerplexitySummary {
        let tokens = try tokenize(evaluation.textPath).map(Int.init)
        let length = min(evaluation.sequenceLength, dense.maxPositions)
        var results: [Perplexity.Result] = []
        // Perplexity takes an optional (hence escaping) callback; it does not keep it past the call.
        try withoutActuallyEscaping(progress) { report in
            for (isPruned, model) in [(false, dense), (true, pruned)] {
                if isCancelled() { throw PipelineError.cancelled(block: dense.blockCount) }
                results.append(
                    try Perplexity.evaluate(
                        model: model,
                        tokens: tokens,
                        sequenceLength: length,
                        maxWindows: evaluation.maxWindows,
                        compute: options.recipe.compute.effective.format,
                        progress: { report(.evaluating(pruned: isPruned, done: $0, total: $1)) }
                    )
                )
            }
        }
        return PruneReport.PerplexitySummary(
            text: evaluation.textPath,
            sequenceLength: length,
            windows: results[0].windowLosses.count,
            dense: results[0].perplexity,
            pruned: results[1].perplexity
        )
    }
}
