// SPDX-License-Identifier: Apache-2.0
// Round-trip property: any declared tensor list written by either writer reads back equal.

import DSnoTTestSupport
import Foundation
import PropertyBased
import SafeTensors
import Testing

@Suite struct RoundTripTests {
    /// Random tensor lists (1–6 tensors, every dtype, shapes of rank 0–3 with zero dimensions,
    /// names with quotes, backslashes, control characters and non-ASCII) and metadata: the
    /// stream writer's file and the random-access writer's (tensors written in reverse) are
    /// byte-identical, and the reader returns the same names, dtypes, shapes, bytes and metadata.
    @Test func writeThenReadReturnsTheSameTensors() async throws {
        let dtypes = Gen.element(of: DType.allCases).array(of: 1...6)
        let shapes = Gen.int(in: 0...5).array(of: 0...3).array(of: 6)
        let names = Gen.letterOrNumber.string(of: 0...6).array(of: 6)
        await propertyCheck(count: 60, input: dtypes, shapes, names, Gen.uint64()) { dtypes, shapes, names, seed in
            let decorations = ["", "\"", "\\", "é", "\n", "/", "__"]
            let declarations = dtypes.enumerated().compactMap { i, dtype -> TensorDeclaration? in
                guard let dtype else { return nil }  // `element(of:)` is optional only for empty collections
                let name = "t\(i).\(names[i])\(decorations[i % decorations.count])"
                return TensorDeclaration(name: name, dtype: dtype, shape: shapes[i])
            }
            var state = seed
            let payloads = declarations.map { declaration in
                (0..<declaration.shape.reduce(declaration.dtype.byteWidth, *)).map { _ -> UInt8 in
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    return UInt8(truncatingIfNeeded: state >> 40)
                }
            }
            let metadata = seed % 2 == 0 ? [:] : ["seed": "\(seed)", "note": "é\"\\"]
            do {
                try Self.checkRoundTrip(declarations, payloads, metadata)
            } catch {
                Issue.record(error, "declarations \(declarations)")
            }
        }
    }

    static func checkRoundTrip(_ declarations: [TensorDeclaration], _ payloads: [[UInt8]], _ metadata: [String: String])
        throws
    {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let streamPath = dir.file("stream.safetensors")
        let pairs = Array(zip(declarations, payloads))
        try SafeTensorsStreamWriter.writeFile(path: streamPath, tensors: pairs, metadata: metadata)

        let randomPath = dir.file("random.safetensors")
        let writer = try SafeTensorsRandomAccessWriter(path: randomPath, declarations: declarations, metadata: metadata)
        for (declaration, bytes) in pairs.reversed() { try writer.write(name: declaration.name, contentsOf: bytes) }
        try writer.commit()
        #expect(
            try Data(contentsOf: URL(fileURLWithPath: streamPath)) == Data(contentsOf: URL(fileURLWithPath: randomPath))
        )

        let file = try SafeTensorsFile(path: streamPath)
        #expect(file.header.metadata == metadata)
        #expect(file.header.dataStart % 8 == 0)
        // Reader order is data-offset order; zero-sized tensors sharing an offset are ordered by name.
        #expect(Set(file.tensorNames) == Set(declarations.map(\.name)))
        for (declaration, bytes) in pairs {
            let info = try file.info(named: declaration.name)
            #expect(TensorDeclaration(info) == declaration)
            #expect(Array(try file.rawBytes(named: declaration.name)) == bytes)
        }
    }
}
