// SPDX-License-Identifier: Apache-2.0
// Recipe tests: validation errors, snake_case Codable round trip, canonical JSON, stable hash, SHA-256 vectors.

import DSnoTCore
import Foundation
import Testing

@Suite struct RecipeTests {
    static let base = Recipe(method: .wanda, pattern: .unstructured(0.5), calibration: .init(path: "c4.txt"))

    @Test(arguments: [
        ("unstructured", 0.0, PruningError.sparsityOutOfRange(ratio: 0)),
        ("unstructured", 1.0, PruningError.sparsityOutOfRange(ratio: 1)),
        ("unstructured", -0.2, PruningError.sparsityOutOfRange(ratio: -0.2)),
        ("2:4", 0.6, PruningError.patternRatioMismatch(n: 2, m: 4, ratio: 0.6)),
        ("4:8", 0.7, PruningError.patternRatioMismatch(n: 4, m: 8, ratio: 0.7)),
        ("1:4", 0.5, PruningError.unsupportedPattern(n: 1, m: 4)),
        ("2:8", 0.5, PruningError.unsupportedPattern(n: 2, m: 8)),
        (
            "blocks", 0.5,
            PruningError.invalidSetting(name: "pattern", expected: "unstructured, 2:4 or 4:8", got: "blocks")
        ),
    ])
    func unsupportedPatternsAreClearErrors(_ row: (String, Double, PruningError)) {
        #expect(throws: row.2) { _ = try Recipe.pattern(type: row.0, ratio: row.1) }
    }

    @Test func supportedPatternsParse() throws {
        #expect(try Recipe.pattern(type: "2:4", ratio: 0.5) == .nOfM(2, 4))
        #expect(try Recipe.pattern(type: "4:8", ratio: 0.5) == .nOfM(4, 8))
        #expect(try Recipe.pattern(type: "unstructured", ratio: 0.6) == .unstructured(0.6))
    }

    @Test func validateRejectsBadSettings() {
        var r = Self.base
        r.pattern = .unstructured(1.5)
        #expect(throws: PruningError.sparsityOutOfRange(ratio: 1.5)) { try r.validate() }
        r = Self.base
        r.dsnot = DSnoT.Settings(updateThreshold: -1)
        #expect(throws: PruningError.self) { try r.validate() }
        r = Self.base
        r.calibration.path = nil
        #expect(throws: PruningError.self) { try r.validate() }
        r = Self.base
        r.calibration.sequences = 0
        #expect(throws: PruningError.invalidSetting(name: "calibration.sequences", expected: "> 0", got: "0")) {
            try r.validate()
        }
        r = Recipe(
            method: .magnitude,
            pattern: .unstructured(0.5),
            dsnot: DSnoT.Settings(accept: .trueError),
            calibration: .init(path: "x")
        )
        #expect(throws: PruningError.self) { try r.validate() }
        r = Self.base
        r.pattern = .nOfM(2, 4)
        #expect(throws: PruningError.columnsNotMultipleOfGroup(layer: "mlp.down_proj", columns: 11006, m: 4)) {
            try r.validate(layer: "mlp.down_proj", columns: 11006)
        }
        // Magnitude alone needs no calibration data.
        #expect(throws: Never.self) { try Recipe(method: .magnitude, pattern: .unstructured(0.5)).validate() }
    }

    @Test func codableRoundTripUsesSnakeCaseKeys() throws {
        var r = Self.base
        r.dsnot = DSnoT.Settings(maxCycles: .scaled, sameSign: true, accept: .trueError)
        r.pattern = .nOfM(2, 4)
        let data = try JSONEncoder().encode(r)
        let text = String(decoding: data, as: UTF8.self)
        for key in [
            "\"max_cycles\":\"scaled\"", "\"update_threshold\"", "\"variance_power\"", "\"same_sign\":true",
            "\"sequence_length\":2048", "\"magnitude_scope\"", "\"block_size\":128", "\"n_of_m\"", "\"true-error\"",
        ] {
            #expect(text.contains(key), "\(key) in \(text)")
        }
        #expect(try JSONDecoder().decode(Recipe.self, from: data) == r)
    }

    @Test func decodingNOfMWithAnotherRatioFails() {
        let json = #"{"type":"n_of_m","n":2,"m":4,"ratio":0.6}"#
        #expect(throws: PruningError.patternRatioMismatch(n: 2, m: 4, ratio: 0.6)) {
            _ = try JSONDecoder().decode(SparsityPattern.self, from: Data(json.utf8))
        }
    }

    @Test func canonicalJSONIsSortedAndFixed() {
        let json = Self.base.canonicalJSON
        #expect(
            json.hasPrefix(
                #"{"calibration":{"path":"c4.txt","seed":"0","sequence_length":2048,"sequences":128,"source":"text"},"dsnot":null,"magnitude_scope":"layer","method":"wanda","pattern":{"ratio":0.5,"type":"unstructured"}"#
            )
        )
        #expect(json.hasSuffix(#""sparsegpt":{"block_size":128,"dampening":0.01,"max_retries":3}}"#))
    }

    @Test func hashIsStableAndSensitive() {
        // Pinned: changing the canonical form changes every recipe id, so it must be deliberate.
        // Independently computed with Python's hashlib over the canonical text above.
        #expect(Self.base.stableHash == "cb865347ba09c127a21880a4ee26cb9f348e4b07eac0e54dde00f699d08dd351")
        #expect(Self.base.stableHash.count == 64)
        var other = Self.base
        other.calibration.seed = 1
        #expect(other.stableHash != Self.base.stableHash)
        var same = Self.base
        same.calibration = .init(path: "c4.txt")
        #expect(same.stableHash == Self.base.stableHash)
    }

    @Test func absentKeysTakeTheDocumentedDefaults() throws {
        let json =
            #"{"method":"wanda","pattern":{"type":"unstructured","ratio":0.6},"dsnot":{"max_cycles":"scaled"},"calibration":{"path":"c4.txt"}}"#
        let r = try JSONDecoder().decode(Recipe.self, from: Data(json.utf8))
        // Keys the recipe does not name come from the default profile (docs/algorithms.md).
        var expected = DSnoT.Profile.default.settings
        expected.maxCycles = .scaled
        #expect(r.dsnot == expected)
        #expect(r.calibration == Recipe.Calibration(path: "c4.txt"))
        #expect(r.sparseGPT == SparseGPT.Settings())
        #expect(r.magnitudeScope == .layer)
        #expect(!r.needsHessian)
        #expect(LayerStatistics(inputFeatures: 4, recipe: r).hasHessian == false)
        #expect(LayerStatistics(inputFeatures: 4, recipe: Recipe(method: .sparsegpt, pattern: .nOfM(2, 4))).hasHessian)
    }

    /// The one schema's short forms and defaults: absent keys mean Wanda 50 % + DSnoT, `dsnot` is a
    /// boolean or a table (absent `accept` is `true-error` after SparseGPT), `pattern` a ratio or "N:M".
    @Test func schemaShortFormsAndDefaults() throws {
        func decode(_ json: String) throws -> Recipe { try JSONDecoder().decode(Recipe.self, from: Data(json.utf8)) }
        #expect(try decode("{}") == Recipe.defaults)
        #expect(try decode(#"{"pattern":0.7}"#).pattern == .unstructured(0.7))
        #expect(try decode(#"{"pattern":"4:8"}"#).pattern == .nOfM(4, 8))
        #expect(try decode(#"{"dsnot":false}"#).dsnot == nil && decode(#"{"dsnot":null}"#).dsnot == nil)
        #expect(try decode(#"{"dsnot":true}"#).dsnot == DSnoT.Profile.default.settings)
        // On without settings means the default profile's choice: no DSnoT after SparseGPT.
        #expect(try decode(#"{"method":"sparsegpt"}"#).dsnot == nil)
        #expect(try decode(#"{"method":"sparsegpt","dsnot":true}"#).dsnot == nil)
        #expect(try decode(#"{"method":"magnitude","dsnot":true}"#).dsnot == DSnoT.Profile.default.settings)
        // A table runs DSnoT after SparseGPT, with D9's true-error acceptance unless it names one.
        #expect(
            try decode(#"{"method":"sparsegpt","dsnot":{}}"#).dsnot == DSnoT.Profile.default.settings(after: .sparsegpt)
        )
        #expect(try decode(#"{"method":"sparsegpt","dsnot":{"max_cycles":3}}"#).dsnot?.accept == .trueError)
        #expect(try decode(#"{"method":"sparsegpt","dsnot":{"accept":"none"}}"#).dsnot?.accept == DSnoT.Acceptance.none)
        #expect(try decode(#"{"calibration":{"seed":"18446744073709551615"}}"#).calibration.seed == .max)
        // Off survives a round trip through the report's encoding (an absent key would mean on).
        var off = Self.base
        off.dsnot = nil
        #expect(try JSONDecoder().decode(Recipe.self, from: JSONEncoder().encode(off)) == off)
        // Errors name the dotted key, the choices and the value.
        #expect(
            throws: PruningError.invalidSetting(
                name: "dsnot.accept",
                expected: #"one of "none", "true-error""#,
                got: #""always""#
            )
        ) {
            try decode(#"{"dsnot":{"accept":"always"}}"#)
        }
        #expect(
            throws: PruningError.invalidSetting(
                name: "pattern",
                expected: #"a sparsity ratio in (0, 1), "2:4" or "4:8""#,
                got: #""half""#
            )
        ) {
            try decode(#"{"pattern":"half"}"#)
        }
        #expect(
            throws: PruningError.invalidSetting(
                name: "calibration.seed",
                expected: "an integer in 0...18446744073709551615",
                got: "-1"
            )
        ) {
            try decode(#"{"calibration":{"seed":-1}}"#)
        }
    }

    @Test func nonFiniteWeightsAreAClearError() {
        let w = Matrix(rows: 1, columns: 4, storage: [1, .nan, 2, .infinity])
        let recipe = Recipe(method: .magnitude, pattern: .unstructured(0.5))
        #expect(throws: PruningError.nonFiniteValues(layer: "mlp.up_proj", tensor: "weights", count: 2)) {
            _ = try LayerPruner.prune(weights: w, statistics: nil, recipe: recipe, layer: "mlp.up_proj")
        }
    }
}
