// SPDX-License-Identifier: Apache-2.0
// Interop tests against Python's safetensors (+ numpy, ml_dtypes): files cross both ways, rounding agrees.

import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

/// The Python peer (`$DSNOT_PYTHON`, set by `make test` to the repository's `.venv`).
enum PythonPeer {
    static let interpreter: String? = ExternalProcess.python
    static let disabledReason: Comment =
        "DSNOT_PYTHON is unset or not executable: the interop tests need the Python peer (run `make test`)"

    static var script: String {
        get throws {
            try #require(Bundle.module.path(forResource: "safetensors_peer", ofType: "py", inDirectory: "Resources"))
        }
    }

    /// Runs the peer script; returns its combined output, failing the test on a non-zero exit.
    @discardableResult
    static func run(_ arguments: [String]) throws -> String {
        let (status, output) = try ExternalProcess.run(try #require(interpreter), [try script] + arguments)
        #expect(status == 0, "peer \(arguments[0]) failed: \(output)")
        return output
    }
}

func hexBytes(_ hex: String) -> [UInt8] {
    let digits = Array(hex.utf8)
    return stride(from: 0, to: digits.count - 1, by: 2).compactMap {
        UInt8(String(decoding: digits[$0...$0 + 1], as: UTF8.self), radix: 16)
    }
}

func hexString(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

@Suite(.enabled(if: PythonPeer.interpreter != nil, PythonPeer.disabledReason))
struct InteropTests {
    /// Files written by `safetensors.numpy.save_file` (every dtype, scalar, empty, metadata) read identically.
    @Test func filesWrittenByPythonReadIdentically() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        try PythonPeer.run(["write", dir.path])
        let description = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.file("peer.json"))))
                as? [String: Any]
        )
        let tensors = try #require(description["tensors"] as? [String: [String: Any]])
        let file = try SafeTensorsFile(path: dir.file("peer.safetensors"))
        #expect(file.header.metadata == (description["metadata"] as? [String: String]))
        #expect(Set(file.tensorNames) == Set(tensors.keys))
        #expect(Set(file.header.tensors.map(\.dtype)) == Set(DType.allCases))
        for (name, expected) in tensors {
            let info = try file.info(named: name)
            #expect(info.dtype.rawValue == expected["dtype"] as? String, "\(name)")
            #expect(info.shape == expected["shape"] as? [Int], "\(name)")
            #expect(hexString(try file.rawBytes(named: name)) == expected["hex"] as? String, "\(name)")
            if let f32hex = expected["f32hex"] as? String {
                // Widening to F32 is exact, so numpy's astype(float32) bytes match bit for bit (NaNs included).
                let floats = try file.floats(named: name)
                #expect(hexString(floats.withUnsafeBytes { Array($0) }) == f32hex, "\(name)")
            }
        }
    }

    /// Files we write load identically with `safetensors.numpy.load_file` (dtype, shape, bytes, metadata).
    @Test func filesWeWriteLoadIdenticallyInPython() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        var state: UInt64 = 7
        var tensors: [(TensorDeclaration, [UInt8])] = []
        for (i, dtype) in DType.allCases.enumerated() {
            let shape = [[2, 3], [5], [], [0, 3], [1, 1, 4]][i % 5]
            let count = shape.reduce(1, *)
            let bytes = (0..<count * dtype.byteWidth).map { _ -> UInt8 in
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return UInt8(truncatingIfNeeded: state >> 40)
            }
            // numpy bools must be 0 or 1.
            tensors.append(
                (
                    TensorDeclaration(name: "w.\(dtype.rawValue)", dtype: dtype, shape: shape),
                    dtype == .bool ? bytes.map { $0 & 1 } : bytes
                )
            )
        }
        let metadata = ["format": "pt", "quote\"and\\slash": "line\nbreak é"]
        let path = dir.file("ours.safetensors")
        try SafeTensorsStreamWriter.writeFile(path: path, tensors: tensors, metadata: metadata)
        let expected: [String: Any] = [
            "metadata": metadata,
            "tensors": Dictionary(
                uniqueKeysWithValues: tensors.map { declaration, bytes in
                    (
                        declaration.name,
                        ["dtype": declaration.dtype.rawValue, "shape": declaration.shape, "hex": hexString(bytes)]
                            as [String: Any]
                    )
                }
            ),
        ]
        let expectedPath = dir.file("ours.json")
        try JSONSerialization.data(withJSONObject: expected).write(to: URL(fileURLWithPath: expectedPath))
        let output = try PythonPeer.run(["check", path, expectedPath])
        #expect(output.contains("ok: \(tensors.count) tensors"), "\(output)")
    }

    /// Our F32 → F16/BF16 rounding equals numpy's `astype(float16)` and ml_dtypes' `astype(bfloat16)`
    /// bit for bit on 2²⁰ random patterns, 2¹⁷ constructed ties and edge cases (NaN: NaN with the same
    /// sign, since payload handling differs between numpy, torch and F16C); widening of all 65,536
    /// patterns equals theirs bit for bit, except that NaNs only need to stay NaN with the same sign.
    @Test func roundingMatchesNumpyAndMLDtypes() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        try PythonPeer.run(["write", dir.path])
        let file = try SafeTensorsFile(path: dir.file("conversion.safetensors"))
        let sample = try file.floats(named: "sample")
        for (name, narrow) in [("sample_f16", FloatConversion.f32ToF16), ("sample_bf16", FloatConversion.f32ToBF16)] {
            let theirs = try file.withElements(named: name, as: UInt16.self) { Array($0) }
            var ours = [UInt16](repeating: 0, count: sample.count)
            sample.withUnsafeBufferPointer { src in ours.withUnsafeMutableBufferPointer { narrow(src, $0) } }
            let widen: (UInt16) -> Float =
                name == "sample_f16" ? { FloatConversion.f32(f16Bits: $0) } : { FloatConversion.f32(bf16Bits: $0) }
            var mismatches: [String] = []
            for i in sample.indices where ours[i] != theirs[i] {
                let (a, b) = (widen(ours[i]), widen(theirs[i]))
                if a.isNaN && b.isNaN && a.sign == b.sign { continue }
                mismatches.append(
                    "\(sample[i]) (0x\(String(sample[i].bitPattern, radix: 16))): ours 0x\(String(ours[i], radix: 16)) theirs 0x\(String(theirs[i], radix: 16))"
                )
            }
            #expect(mismatches.isEmpty, "\(name): \(mismatches.count) mismatches, first: \(mismatches.prefix(3))")
        }
        let all = (0...UInt16.max).map { $0 }
        for (name, widen) in [
            ("all_f16_as_f32", FloatConversion.f16ToF32), ("all_bf16_as_f32", FloatConversion.bf16ToF32),
        ] {
            let theirs = try file.floats(named: name)
            var ours = [Float](repeating: 0, count: all.count)
            all.withUnsafeBufferPointer { src in ours.withUnsafeMutableBufferPointer { widen(src, $0) } }
            let mismatches = all.indices.filter { i in
                ours[i].isNaN
                    ? !(theirs[i].isNaN && theirs[i].sign == ours[i].sign) : ours[i].bitPattern != theirs[i].bitPattern
            }
            #expect(mismatches.isEmpty, "\(name): \(mismatches.count) mismatches")
        }
    }
}
