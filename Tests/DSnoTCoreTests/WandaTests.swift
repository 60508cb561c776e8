// SPDX-License-Identifier: Apache-2.0
// Wanda tests: every golden wanda_* mask bit for bit, from the stored and from dsnot's own statistics (D5).

import DSnoTCore
import Testing

@Suite struct WandaTests {
    @Test(arguments: GoldenCase.all(prefix: "wanda_"))
    func goldenMaskIsReproducedBitForBit(_ golden: GoldenCase) throws {
        let layer = try GoldenFixture.layer(golden.data)
        let expected = try GoldenFixture.mask(GoldenFixture.file("cases/\(golden.id).safetensors"))
        let fromStored = try Wanda.mask(
            weights: layer.weights,
            scalerRow: layer.stored.scalerRow,
            pattern: golden.pattern
        )
        #expect(fromStored.mismatches(expected) == 0)
        let ours = GoldenFixture.recomputed(layer, hessian: false)
        let fromOwn = try Wanda.mask(weights: layer.weights, scalerRow: ours.scalerRow, pattern: golden.pattern)
        #expect(fromOwn.mismatches(expected) == 0)
    }

    @Test func tiesAreBrokenByColumnIndex() throws {
        // All scores equal: a stable sort prunes the first floor(C_in·s) columns of every row.
        let w = Matrix(rows: 2, columns: 5, storage: [Float](repeating: 1, count: 10))
        let mask = try Wanda.mask(weights: w, scalerRow: [1, 1, 1, 1, 1], pattern: .unstructured(0.6))
        #expect(mask.bytes == [1, 1, 1, 0, 0, 1, 1, 1, 0, 0])
    }

    @Test func rejectsAScalerRowOfTheWrongLength() {
        let w = Matrix(rows: 1, columns: 4)
        #expect(throws: PruningError.statisticShapeMismatch(layer: "x", statistic: "scaler_row", expected: 4, got: 3)) {
            _ = try Wanda.mask(weights: w, scalerRow: [1, 1, 1], pattern: .unstructured(0.5), layer: "x")
        }
    }
}
