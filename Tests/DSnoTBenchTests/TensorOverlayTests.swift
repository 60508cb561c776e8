// SPDX-License-Identifier: Apache-2.0
// TensorOverlay tests: the in-memory pruned model serves exactly what the dense sink writes.

import DSnoTCore
import DSnoTPipeline
import DSnoTTestSupport
import Foundation
import Logging
import SafeTensors
import Testing

@testable import dsnot_bench

@Suite struct TensorOverlayTests {
    // Evaluating the pruned model through the overlay must be the same as evaluating the written output.
    @Test func overlayServesExactlyWhatTheDenseSinkWrites() throws {
        let input = BenchFixtures.model("llama_gqa_tied_bf16")
        let checkpoint = try Checkpoint(directory: input)
        let model = try ModelRegistry.load(directory: input)
        let tokens = (0..<300).map { Int32(($0 * 31) % model.vocabularySize) }
        let calibration = try CalibrationSet(tokens: tokens, count: 3, length: 16, seed: 1)
        let pruner = try SequentialPruner(recipe: Recipe(method: .sparsegpt, pattern: .nOfM(2, 4)))
        let overlay = TensorOverlay(base: checkpoint)
        _ = try pruner.run(
            model: model,
            source: checkpoint,
            calibration: calibration,
            sink: overlay,
            logger: Logger(label: "test")
        )
        let output = try TemporaryDirectory("dsnot-model-tests").path
        defer { try? FileManager.default.removeItem(atPath: output) }
        let dense = try DenseCheckpointSink(input: checkpoint, directory: output)
        _ = try pruner.run(
            model: model,
            source: checkpoint,
            calibration: calibration,
            sink: dense,
            logger: Logger(label: "test")
        )
        try dense.finish()

        let config = try Data(contentsOf: URL(fileURLWithPath: input + "/config.json"))
        let viaOverlay = try ModelRegistry.model(config: config, tensors: overlay).logits(tokens: [3, 1, 4, 1, 5])
        let viaOutput = try ModelRegistry.load(directory: output).logits(tokens: [3, 1, 4, 1, 5])
        #expect(viaOverlay == viaOutput)
        #expect(viaOverlay != (try model.logits(tokens: [3, 1, 4, 1, 5])))
    }
}
