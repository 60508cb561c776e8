// SPDX-License-Identifier: Apache-2.0
// GoldenFixture: loads the reference golden vectors bundled in Resources/golden (copied from shared/golden).

import DSnoTCore
import Foundation
import SafeTensors
import Testing

/// Access to the golden files (README.md and manifest.json beside them describe every case).
enum GoldenFixture {
    /// `Resources/` is copied as a folder into the bundle (`resources: [.copy("Resources")]`).
    static let root: URL = Bundle.module.bundleURL.appendingPathComponent("Resources/golden")

    static func file(_ relative: String) throws -> SafeTensorsFile {
        try SafeTensorsFile(path: root.appendingPathComponent(relative).path)
    }

    static func matrix(_ file: SafeTensorsFile, _ name: String) throws -> Matrix {
        let info = try file.info(named: name)
        let shape = info.shape
        let columns = shape.last ?? 1
        let values = try file.floats(named: name)
        return Matrix(rows: values.count / max(1, columns), columns: columns, storage: values)
    }

    static func mask(_ file: SafeTensorsFile, _ name: String = "mask") throws -> PruneMask {
        let info = try file.info(named: name)
        let values = try file.integers(named: name)
        return PruneMask(rows: info.shape[0], columns: info.shape[1], bytes: values.map { UInt8($0) })
    }

    /// One synthetic layer: `W`, `X` as sequences and the reference statistics.
    struct Layer {
        let weights: Matrix
        let sequences: [Matrix]  // N × (L, C_in)
        let stored: LayerStatistics  // the reference's own statistics
        let file: SafeTensorsFile
    }

    static func layer(_ id: String) throws -> Layer {
        let f = try file("layers/\(id).safetensors")
        let w = try matrix(f, "W")
        let xInfo = try f.info(named: "X")
        let x = try f.floats(named: "X")
        let (n, l, c) = (xInfo.shape[0], xInfo.shape[1], xInfo.shape[2])
        let sequences = (0..<n).map { s in
            Matrix(rows: l, columns: c, storage: Array(x[(s * l * c)..<((s + 1) * l * c)]))
        }
        let hessian = f.info(ifPresent: "H") == nil ? nil : try f.floats(named: "H")
        let stored = try LayerStatistics(
            scalerRow: f.floats(named: "scaler_row"),
            sumRow: f.floats(named: "sum_metric_row"),
            variance: f.floats(named: "var"),
            hessian: hessian,
            sequenceCount: n,
            tokenCount: n * l
        )
        return Layer(weights: w, sequences: sequences, stored: stored, file: f)
    }

    /// Statistics recomputed by dsnot from `X`.
    static func recomputed(_ layer: Layer, hessian: Bool) -> LayerStatistics {
        var stats = LayerStatistics(inputFeatures: layer.weights.columns, accumulateHessian: hessian)
        for s in layer.sequences { stats.accumulate(sequence: s) }
        return stats
    }

    /// The manifest's case entries, keyed by id.
    nonisolated(unsafe) static let manifest: [String: Any] = {
        guard let data = try? Data(contentsOf: root.appendingPathComponent("manifest.json")),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [:] }
        return json
    }()

    static func caseEntry(_ id: String) -> [String: Any] {
        let cases = manifest["cases"] as? [[String: Any]] ?? []
        return cases.first { ($0["id"] as? String) == id } ?? [:]
    }

    static func caseIDs(prefix: String) -> [String] {
        let cases = manifest["cases"] as? [[String: Any]] ?? []
        return cases.compactMap { $0["id"] as? String }.filter { $0.hasPrefix(prefix) }
    }
}

@Suite struct GoldenFixtureTests {
    @Test func bundledManifestListsAllFiftyOneCases() throws {
        let cases = try #require(GoldenFixture.manifest["cases"] as? [[String: Any]])
        #expect(cases.count == 51)
        for entry in cases {
            let file = try #require(entry["file"] as? String)
            #expect(FileManager.default.fileExists(atPath: GoldenFixture.root.appendingPathComponent(file).path))
        }
    }
}

/// The parameters of one golden case, from the manifest.
struct GoldenCase: CustomStringConvertible, Sendable {
    let id: String
    let data: String
    let pattern: SparsityPattern
    let initialMethod: String?
    let layerName: String
    let dsnot: DSnoT.Settings

    var description: String { id }

    init(_ id: String) {
        let entry = GoldenFixture.caseEntry(id)
        let reference = entry["reference"] as? [String: Any] ?? [:]
        let args = reference["args"] as? [String: Any] ?? [:]
        self.id = id
        data = entry["data"] as? String ?? "?"
        func number(_ x: Any?) -> Double? { (x as? NSNumber)?.doubleValue }
        let ratio = number(entry["sparsity"]) ?? 0
        switch entry["type"] as? String {
        case "2:4": pattern = .nOfM(2, 4)
        case "4:8": pattern = .nOfM(4, 8)
        default: pattern = .unstructured(ratio)
        }
        initialMethod = entry["initial_method"] as? String
        layerName = reference["layer_name"] as? String ?? "self_attn.q_proj"
        var s = DSnoT.Settings()
        if let t = number(args["max_cycle_time"]) { s.maxCycles = .fixed(Int(t)) }
        if let e = number(args["update_threshold"]) { s.updateThreshold = e }
        if let g = number(args["pow_of_var_regrowing"]) { s.variancePower = g }
        if let w = (args["without_same_sign"] as? NSNumber)?.boolValue { s.sameSign = !w }
        if let skip = args["skip_layer"] as? String { s.skip = [skip] }
        dsnot = s
    }

    static func all(prefix: String) -> [GoldenCase] { GoldenFixture.caseIDs(prefix: prefix).map(GoldenCase.init) }
}
