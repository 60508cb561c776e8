// SPDX-License-Identifier: Apache-2.0
// `dsnotctl inspect` lists tensors in natural order: layers.2 before layers.10.

import DSnoTTestSupport
import Foundation
import Testing

@testable import SparseFormat

@Suite struct SparseInspectorOrderTests {
    /// A safetensors file whose tensors (one F32 each) are stored in string order, as Python's
    /// safetensors writes them: layers.0, layers.1, layers.10, layers.11, layers.2, …
    static func stringOrderedFile(_ names: [String]) -> [UInt8] {
        let stored = names.sorted()
        var entries: [String] = []
        for (i, name) in stored.enumerated() {
            entries.append(#""\#(name)":{"dtype":"F32","shape":[1],"data_offsets":[\#(4 * i),\#(4 * i + 4)]}"#)
        }
        var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        let length = (0..<8).map { UInt8(truncatingIfNeeded: header.count >> (8 * $0)) }
        return length + header + [UInt8](repeating: 0, count: 4 * stored.count)
    }

    @Test func tensorsAreListedInNaturalOrder() throws {
        let directory = try TemporaryDirectory("sparseformat-test")
        defer { directory.remove() }
        let natural = (0..<12).map { "model.layers.\($0).mlp.up_proj.weight" } + ["model.norm.weight"]
        let path = directory.file("model.safetensors")
        try Tool.write(path, Self.stringOrderedFile(natural))
        let report = try SparseInspector.inspect(path: path, scratchDirectory: directory.path)
        #expect(report.files.first?.tensors.map(\.name) == natural)
        let text = SparseInspector.render(report)
        let two = try #require(text.range(of: "model.layers.2.mlp"))
        let ten = try #require(text.range(of: "model.layers.10.mlp"))
        #expect(two.lowerBound < ten.lowerBound)
    }

    @Test(arguments: [
        ("layers.2", "layers.10", true), ("layers.10", "layers.2", false), ("a9", "a10b", true),
        ("layers.1", "layers.1.bias", true), ("x01", "x1", true), ("x1", "x01", false), ("w", "w", false),
        ("b.2.a", "b.2.b", true), ("model.norm", "model.layers.0", false),
    ])
    func naturalOrder(_ a: String, _ b: String, _ precedes: Bool) {
        #expect(SparseInspector.naturallyPrecedes(a, b) == precedes)
    }
}
