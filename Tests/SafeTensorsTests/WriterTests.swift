// SPDX-License-Identifier: Apache-2.0
// Writer tests: stream writer layout and order checks, atomic publish, random-access writer.

import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@Suite struct WriterTests {
    static let declarations = [
        TensorDeclaration(name: "b.weight", dtype: .f32, shape: [2, 3]),
        TensorDeclaration(name: "a.bias", dtype: .bf16, shape: [3]),
        TensorDeclaration(name: "empty", dtype: .i64, shape: [0, 4]),
        TensorDeclaration(name: "scalar", dtype: .u8, shape: []),
    ]
    static let payloads: [[UInt8]] = [
        littleEndianBytes([Float](arrayLiteral: 1, 2, 3, 4, 5, 6)),
        littleEndianBytes([UInt16](arrayLiteral: 0x3F80, 0x4000, 0xC040)),
        [],
        [7],
    ]

    @Test func streamWriterLaysOutHeaderInDeclarationOrderPaddedToEight() throws {
        var writer = try SafeTensorsStreamWriter(
            declarations: Self.declarations,
            metadata: ["format": "pt"],
            sink: MemorySink()
        )
        for (declaration, bytes) in zip(Self.declarations, Self.payloads) {
            try writer.write(name: declaration.name, contentsOf: bytes)
        }
        let bytes = try writer.finish().bytes
        let length = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        #expect(length % 8 == 0)
        let json = String(decoding: bytes[8..<(8 + length)], as: UTF8.self)
        #expect(json.hasPrefix(#"{"__metadata__":{"format":"pt"},"b.weight":{"dtype":"F32","shape":[2,3],"#))
        #expect(bytes.count == 8 + length + 24 + 6 + 0 + 1)
        #expect(Array(bytes[(8 + length)...]) == Self.payloads.flatMap { $0 })
        #expect(writer.header.tensors.map(\.dataOffsets) == [0..<24, 24..<30, 30..<30, 30..<31])
    }

    @Test func streamWriterRejectsOutOfOrderWrongSizeAndMissingTensors() throws {
        var writer = try SafeTensorsStreamWriter(declarations: Self.declarations, sink: MemorySink())
        #expect(
            throws: SafeTensorsError.unexpectedTensor(
                file: "<memory>",
                tensor: "a.bias",
                expected: "'b.weight' (declaration order)"
            )
        ) {
            try writer.write(name: "a.bias", contentsOf: Self.payloads[1])
        }
        #expect(
            throws: SafeTensorsError.wrongByteCount(
                file: "<memory>",
                tensor: "b.weight",
                expectedBytes: 24,
                actualBytes: 23
            )
        ) {
            try writer.write(name: "b.weight", contentsOf: [UInt8](repeating: 0, count: 23))
        }
        try writer.write(name: "b.weight", contentsOf: Self.payloads[0])
        #expect(throws: SafeTensorsError.missingTensors(file: "<memory>", tensors: ["a.bias", "empty", "scalar"])) {
            _ = try writer.finish()
        }
    }

    @Test func declarationsWithDuplicateReservedOrOverflowingNamesAreRejected() {
        let duplicate = [Self.declarations[0], Self.declarations[0]]
        #expect(
            throws: SafeTensorsError.invalidDeclaration(file: "<memory>", tensor: "b.weight", reason: "declared twice")
        ) {
            _ = try SafeTensorsStreamWriter(declarations: duplicate, sink: MemorySink())
        }
        let reserved = [TensorDeclaration(name: "__metadata__", dtype: .u8, shape: [1])]
        #expect(throws: SafeTensorsError.self) {
            _ = try SafeTensorsStreamWriter(declarations: reserved, sink: MemorySink())
        }
        let huge = [TensorDeclaration(name: "huge", dtype: .f64, shape: [1 << 40, 1 << 40])]
        #expect(throws: SafeTensorsError.self) {
            _ = try SafeTensorsStreamWriter(declarations: huge, sink: MemorySink())
        }
    }

    @Test func atomicSinkPublishesOnlyOnCommitAndNeverReplaces() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let path = dir.file("model.safetensors")
        var writer = try SafeTensorsStreamWriter(
            declarations: Self.declarations,
            sink: try AtomicFileSink(path: path, bufferSize: 16)
        )
        for (declaration, bytes) in zip(Self.declarations, Self.payloads) {
            try writer.write(name: declaration.name, contentsOf: bytes)
        }
        let sink = try writer.finish()
        // Before commit only the hidden temporary file exists.
        #expect(try dir.entries().count == 1)
        #expect(try dir.entries()[0].hasPrefix(".model.safetensors.tmp-"))
        try sink.commit()
        #expect(try dir.entries() == ["model.safetensors"])
        let file = try SafeTensorsFile(path: path)
        #expect(try file.floats(named: "b.weight") == [1, 2, 3, 4, 5, 6])
        #expect(try file.floats(named: "a.bias") == [1, 2, -3])
        #expect(try file.integers(named: "scalar") == [7])

        #expect(throws: SafeTensorsError.destinationExists(path: path)) { _ = try AtomicFileSink(path: path) }
    }

    @Test func atomicSinkRefusesToReplaceAFileCreatedDuringTheWrite() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let path = dir.file("out.safetensors")
        let sink = try AtomicFileSink(path: path)
        try [1, 2, 3].withUnsafeBytes { try sink.write($0) }
        try dir.write("out.safetensors", [9])
        #expect(throws: SafeTensorsError.destinationExists(path: path)) { try sink.commit() }
        #expect(try dir.entries() == ["out.safetensors"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data([9]))
    }

    @Test func abortedOrDroppedSinksLeaveNothingBehind() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        do {
            let sink = try AtomicFileSink(directory: dir.path, name: "dropped.safetensors")
            try [1].withUnsafeBytes { try sink.write($0) }
        }
        let aborted = try AtomicFileSink(directory: dir.path, name: "aborted.safetensors")
        aborted.abort()
        #expect(throws: SafeTensorsError.writerClosed(file: dir.file("aborted.safetensors"))) {
            try [1].withUnsafeBytes { try aborted.write($0) }
        }
        #expect(try dir.entries().isEmpty)
    }

    @Test func randomAccessWriterAcceptsAnyOrderAndRefusesToCommitIncompleteFiles() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let path = dir.file("model.safetensors")
        let writer = try SafeTensorsRandomAccessWriter(
            path: path,
            declarations: Self.declarations,
            metadata: ["format": "pt"]
        )
        try writer.write(name: "scalar", contentsOf: Self.payloads[3])
        try writer.write(name: "a.bias", contentsOf: Self.payloads[1])
        #expect(throws: SafeTensorsError.missingTensors(file: path, tensors: ["b.weight", "empty"])) {
            try writer.commit()
        }
        #expect(
            throws: SafeTensorsError.unexpectedTensor(
                file: path,
                tensor: "a.bias",
                expected: "a tensor not written yet"
            )
        ) {
            try writer.write(name: "a.bias", contentsOf: Self.payloads[1])
        }
        #expect(throws: SafeTensorsError.unexpectedTensor(file: path, tensor: "nope", expected: "a declared tensor")) {
            try writer.write(name: "nope", contentsOf: [UInt8]())
        }
        try writer.write(name: "empty", contentsOf: [UInt8]())
        try writer.write(name: "b.weight", contentsOf: Self.payloads[0])
        try writer.commit()

        // Byte-identical to the stream writer's output for the same declarations.
        var stream = try SafeTensorsStreamWriter(
            declarations: Self.declarations,
            metadata: ["format": "pt"],
            sink: MemorySink()
        )
        for (declaration, bytes) in zip(Self.declarations, Self.payloads) {
            try stream.write(name: declaration.name, contentsOf: bytes)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == Data(try stream.finish().bytes))
        #expect(try dir.entries() == ["model.safetensors"])
    }
}
