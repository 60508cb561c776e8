// SPDX-License-Identifier: Apache-2.0
// CalibrationSet tests: seeded window draws (D2), length checks, pre-tokenized files.

import DSnoTCore
import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@Suite struct CalibrationSetTests {
    @Test func windowsAreSeededUniformDrawsOverTheValidStarts() throws {
        let tokens = (0..<1000).map { Int32($0) }
        let a = try CalibrationSet(tokens: tokens, count: 16, length: 32, seed: 7)
        let b = try CalibrationSet(tokens: tokens, count: 16, length: 32, seed: 7)
        let c = try CalibrationSet(tokens: tokens, count: 16, length: 32, seed: 8)
        #expect(a == b)
        #expect(a != c)
        // Windows are contiguous slices starting in [0, len − L − 1], drawn in order by SplitMix64.
        var rng = SplitMix64(seed: 7)
        for window in a.sequences {
            let start = Int32(rng.uniform(through: UInt64(1000 - 32 - 1)))
            #expect(window == Array(start..<(start + 32)))
        }
    }

    /// DSnoT's loss check draws its windows after the calibration windows of the same seed: they are the
    /// windows a larger draw would continue with, and the calibration windows are unchanged.
    @Test func skippingContinuesTheSameDraws() throws {
        let tokens = (0..<1000).map { Int32($0) }
        let both = try CalibrationSet(tokens: tokens, count: 10, length: 32, seed: 7)
        let calibration = try CalibrationSet(tokens: tokens, count: 8, length: 32, seed: 7)
        let loss = try CalibrationSet(tokens: tokens, count: 2, length: 32, seed: 7, skipping: 8)
        #expect(calibration.sequences == Array(both.sequences[0..<8]))
        #expect(loss.sequences == Array(both.sequences[8..<10]))
        #expect(throws: CalibrationError.self) {
            try CalibrationSet(tokens: tokens, count: 2, length: 32, seed: 7, skipping: -1)
        }
    }

    @Test func textShorterThanOneWindowPlusOneIsAnError() {
        #expect(throws: CalibrationError.textTooShort(tokens: 32, needed: 33)) {
            try CalibrationSet(tokens: Array(repeating: 1, count: 32), count: 1, length: 32, seed: 0)
        }
        #expect(throws: CalibrationError.invalidParameter(name: "nsamples", value: 0)) {
            try CalibrationSet(tokens: Array(repeating: 1, count: 64), count: 0, length: 32, seed: 0)
        }
    }

    @Test func tokenFileIsUsedVerbatimAndCheckedAgainstTheVocabulary() throws {
        let ids: [Int64] = [1, 2, 3, 4, 5, 6]
        let directory = try TemporaryDirectory("calib")
        defer { directory.remove() }
        let path = directory.file("calib.safetensors")
        var sink = MemorySink()
        var writer = try SafeTensorsStreamWriter(
            declarations: [TensorDeclaration(name: "input_ids", dtype: .i64, shape: [2, 3])],
            metadata: [:],
            sink: sink
        )
        try ids.withUnsafeBytes { try writer.write(name: "input_ids", bytes: $0) }
        sink = try writer.finish()
        try Data(sink.bytes).write(to: URL(fileURLWithPath: path))

        let set = try CalibrationSet.load(tokenFile: path)
        #expect(set.sequences == [[1, 2, 3], [4, 5, 6]])
        #expect(set.length == 3)
        #expect(throws: CalibrationError.self) { try CalibrationSet.load(tokenFile: path, vocabularySize: 6) }
    }
}
