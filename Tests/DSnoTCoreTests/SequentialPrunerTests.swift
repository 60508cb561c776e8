// SPDX-License-Identifier: Apache-2.0
// SequentialPruner tests: the whole D3 flow against the reference's block-level runs, and end to end
// on tiny LLaMA and OPT checkpoints through the dense sink.

import DSnoTCore
import DSnoTPipeline
import DSnoTTestSupport
import Foundation
import Logging
import SafeTensors
import Testing

/// Keeps every tensor the pipeline writes, in memory.
final class CapturingSink: PrunedTensorSink {
    struct Entry {
        var dtype: DType
        var shape: [Int]
        var bytes: [UInt8]
        var pruned: Bool
    }
    var tensors: [String: Entry] = [:]
    var order: [String] = []

    func write(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer, pruned: Bool) throws {
        #expect(tensors[name] == nil, "tensor \(name) written twice")
        tensors[name] = Entry(dtype: dtype, shape: shape, bytes: Array(bytes), pruned: pruned)
        order.append(name)
    }

    /// The mask implied by the output (1 where the written value is zero).
    func zeroMask(_ name: String) throws -> [UInt8] {
        let entry = try #require(tensors[name])
        var values = [Float](repeating: 0, count: entry.bytes.count / entry.dtype.byteWidth)
        entry.bytes.withUnsafeBytes { raw in
            values.withUnsafeMutableBufferPointer { FloatConversion.convert(raw, dtype: entry.dtype, into: $0) }
        }
        return values.map { $0 == 0 ? 1 : 0 }
    }
}

@Suite struct SequentialPrunerTests {
    static let logger = Logger(label: "test")
    static var goldenModel: String { GoldenFixture.root.appendingPathComponent("block/model").path }

    static func goldenCalibration() throws -> CalibrationSet {
        try CalibrationSet.load(tokenFile: ModelFixtures.path("golden-block", "calib.safetensors"))
    }

    // The reference's block-level runs (golden/block) prune the two-block model with its sequential
    // loop; the masks of every layer of both blocks must come out bit for bit, which checks the
    // statistics pass, the in-place pruning and the propagation of pruned outputs into block 1.
    @Test(arguments: [
        ("wanda_u50", Recipe(method: .wanda, pattern: .unstructured(0.5))),
        (
            "dsnot_wanda_u60_T10",
            Recipe(method: .wanda, pattern: .unstructured(0.6), dsnot: DSnoT.Settings(maxCycles: .fixed(10)))
        ),
    ])
    func blockLevelMasksMatchTheReference(_ run: String, _ recipe: Recipe) throws {
        let checkpoint = try Checkpoint(directory: Self.goldenModel)
        let model = try ModelRegistry.load(directory: Self.goldenModel)
        let sink = CapturingSink()
        let report = try SequentialPruner(recipe: recipe).run(
            model: model,
            source: checkpoint,
            calibration: try Self.goldenCalibration(),
            sink: sink,
            logger: Self.logger
        )
        let reference = try GoldenFixture.file("block/\(run).safetensors")
        var layersChecked = 0
        for b in 0..<model.blockCount {
            for layer in model.prunableLinearLayers(block: b) {
                let module = String(layer.tensorName.dropLast(".weight".count))
                let expected = try GoldenFixture.mask(reference, "mask.\(module)")
                #expect(try sink.zeroMask(layer.tensorName) == expected.bytes, "\(run): \(layer.tensorName)")
                layersChecked += 1
            }
        }
        #expect(layersChecked == 14)
        #expect(report.layers.count == 14)
        // Untouched tensors are copied byte for byte.
        for name in checkpoint.tensorNames where !(sink.tensors[name]?.pruned ?? true) {
            #expect(sink.tensors[name]?.bytes == Array(try checkpoint.rawBytes(named: name)))
        }
        #expect(Set(sink.tensors.keys) == Set(checkpoint.tensorNames))
    }

    @Test(arguments: [
        "llama_gqa_tied", "llama_gqa_untied", "llama_gqa_tied_bf16", "qwen2_bias", "opt_pre_ln", "opt_post_ln_proj",
    ])
    func denseSinkWritesALoadableCheckpointWithExactSparsity(_ fixture: String) throws {
        let input = ModelFixtures.path(fixture)
        let checkpoint = try Checkpoint(directory: input)
        let output = try TemporaryDirectory("dsnot-model-tests").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let report = try Self.pruneToDenseCheckpoint(input, output: output)

        let pruned = try Checkpoint(directory: output)
        #expect(pruned.tensorNames.sorted() == checkpoint.tensorNames.sorted())
        let prunable = Set(report.layers.map(\.name))
        for name in checkpoint.tensorNames {
            let original = try checkpoint.info(named: name)
            let written = try pruned.info(named: name)
            #expect(written.dtype == original.dtype && written.shape == original.shape)
            if prunable.contains(name) {
                // Wanda + DSnoT: exactly floor(C_in · 0.5) zeros in every row.
                let values = try pruned.floats(named: name)
                let columns = original.shape[1]
                for row in 0..<original.shape[0] {
                    let zeros = values[(row * columns)..<((row + 1) * columns)].filter { $0 == 0 }.count
                    #expect(zeros == columns / 2, "\(name) row \(row)")
                }
            } else {
                #expect(Array(try pruned.rawBytes(named: name)) == Array(try checkpoint.rawBytes(named: name)))
            }
        }
        #expect(FileManager.default.fileExists(atPath: output + "/config.json"))
        #expect(report.totals.sparsity == 0.5)
        #expect(report.layers.allSatisfy { $0.finalRelativeError != nil && $0.baseRelativeError != nil })
        // The pruned model still runs.
        let logits = try ModelRegistry.load(directory: output).logits(tokens: [1, 2, 3])
        #expect(logits.storage.allSatisfy { $0.isFinite })
    }

    /// The same outputs through Python's `safetensors.numpy.load_file` (with ml_dtypes for bf16):
    /// the names, dtypes and shapes of the input, `⌊C_in/2⌋` zeros in every row of every pruned
    /// matrix, every other tensor byte-identical to the input.
    @Test(
        .enabled(if: ExternalProcess.python != nil, "needs the Python peer (make test)"),
        arguments: ["llama_gqa_tied_bf16", "opt_post_ln_proj"]
    )
    func pythonSafetensorsLoadsThePrunedCheckpoint(_ fixture: String) throws {
        let input = ModelFixtures.path(fixture)
        let output = try TemporaryDirectory("dsnot-model-tests").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let report = try Self.pruneToDenseCheckpoint(input, output: output)
        let names = String(decoding: try JSONEncoder().encode(report.layers.map(\.name)), as: UTF8.self)
        let (status, printed) = try ExternalProcess.run(
            try #require(ExternalProcess.python),
            ["-c", Self.pythonCheck, output, input, names]
        )
        #expect(status == 0, "\(printed)")
        #expect(printed.hasPrefix("ok \(report.layers.count) pruned"), "\(printed)")
    }

    static let pythonCheck = """
        import json, os, sys
        import ml_dtypes, numpy as np
        from safetensors.numpy import load_file
        out, inp, pruned = sys.argv[1], sys.argv[2], set(json.loads(sys.argv[3]))
        def load(d):  # the checkpoint's files: the index's shards, or model.safetensors
            index = os.path.join(d, "model.safetensors.index.json")
            files = sorted(set(json.load(open(index))["weight_map"].values())) if os.path.exists(index) \
                else ["model.safetensors"]
            tensors = {}
            for f in files:
                tensors.update(load_file(os.path.join(d, f)))
            return tensors
        o, i = load(out), load(inp)
        assert sorted(o) == sorted(i), ("names", sorted(o), sorted(i))
        for name, a in o.items():
            b = i[name]
            assert a.dtype == b.dtype and a.shape == b.shape, (name, a.dtype, a.shape, b.dtype, b.shape)
            if name in pruned:
                zeros = (a.astype(np.float32) == 0).sum(axis=1)
                assert (zeros == a.shape[1] // 2).all(), (name, zeros.tolist())
            else:
                assert a.tobytes() == b.tobytes(), name
        print("ok", len(pruned & set(o)), "pruned of", len(o))
        """

    /// Wanda 50 % + DSnoT (no skip) of a tiny fixture into a dense checkpoint at `output`.
    static func pruneToDenseCheckpoint(_ input: String, output: String) throws -> PruneReport {
        let checkpoint = try Checkpoint(directory: input)
        let model = try ModelRegistry.load(directory: input)
        let tokens = (0..<400).map { Int32(($0 * 7919) % model.vocabularySize) }
        let calibration = try CalibrationSet(tokens: tokens, count: 4, length: 16, seed: 0)
        let sink = try DenseCheckpointSink(input: checkpoint, directory: output)
        let recipe = Recipe(method: .wanda, pattern: .unstructured(0.5), dsnot: DSnoT.Settings(skip: []))
        let report = try SequentialPruner(recipe: recipe).run(
            model: model,
            source: checkpoint,
            calibration: calibration,
            sink: sink,
            logger: logger
        )
        try sink.finish()
        return report
    }

    @Test func magnitudeNeedsNoCalibrationButWandaDoes() throws {
        let checkpoint = try Checkpoint(directory: Self.goldenModel)
        let model = try ModelRegistry.load(directory: Self.goldenModel)
        let magnitude = try SequentialPruner(recipe: Recipe(method: .magnitude, pattern: .nOfM(2, 4)))
        let sink = CapturingSink()
        let report = try magnitude.run(
            model: model,
            source: checkpoint,
            calibration: nil,
            sink: sink,
            logger: Self.logger
        )
        #expect(report.totals.sparsity == 0.5)
        #expect(report.calibration == nil)
        let wanda = try SequentialPruner(recipe: Recipe(method: .wanda, pattern: .unstructured(0.5)))
        #expect(throws: PipelineError.calibrationRequired(method: "wanda")) {
            try wanda.run(
                model: model,
                source: checkpoint,
                calibration: nil,
                sink: CapturingSink(),
                logger: Self.logger
            )
        }
    }

    @Test func cancellationStopsAtTheNextSequenceBoundary() throws {
        let checkpoint = try Checkpoint(directory: Self.goldenModel)
        let model = try ModelRegistry.load(directory: Self.goldenModel)
        let pruner = try SequentialPruner(recipe: Recipe(method: .wanda, pattern: .unstructured(0.5)))
        var phases: [PruneProgress.Phase] = []
        // Block 0's propagation pass sees the flag after its first sequence.
        #expect(throws: PipelineError.cancelled(block: 0)) {
            try pruner.run(
                model: model,
                source: checkpoint,
                calibration: try Self.goldenCalibration(),
                sink: CapturingSink(),
                logger: Self.logger,
                progress: { phases.append($0.phase) },
                isCancelled: { phases.contains(.propagation) }
            )
        }
        #expect(phases.first == .copying)
    }

    @Test func reportRecordsCalibrationFingerprintAndTimings() throws {
        let checkpoint = try Checkpoint(directory: Self.goldenModel)
        let model = try ModelRegistry.load(directory: Self.goldenModel)
        let recipe = Recipe(method: .sparsegpt, pattern: .unstructured(0.5))
        let calibration = try Self.goldenCalibration()
        let pruner = try SequentialPruner(recipe: recipe)
        let report = try pruner.run(
            model: model,
            source: checkpoint,
            calibration: calibration,
            sink: CapturingSink(),
            logger: Self.logger
        )
        #expect(report.calibration?.sequences == 4 && report.calibration?.sequenceLength == 32)
        #expect(report.calibration?.fingerprint.count == 64)
        #expect(report.recipeHash == recipe.stableHash)
        #expect(report.timings.total >= report.timings.statistics + report.timings.base)
        // SparseGPT's Hessian serves the error metric: every layer has one, and it is small but non-zero.
        for layer in report.layers {
            let error = try #require(layer.finalRelativeError)
            #expect(error > 0 && error < 1, "\(layer.name)")
        }
        let encoded = try JSONEncoder().encode(report)
        #expect(try JSONDecoder().decode(PruneReport.self, from: encoded) == report)
        #expect(report.memoryEstimateBytes > 0)
    }
}
