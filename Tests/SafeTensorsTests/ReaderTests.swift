// SPDX-License-Identifier: Apache-2.0
// Reader tests: hand-built files are mapped, validated and read back through every accessor.

import DSnoTTestSupport
import Foundation
import SafeTensors
import SystemPackage
import Testing

@Suite struct ReaderTests {
    /// Header of 140 bytes: the data section starts at 148, aligned for F32; 5 bytes of padding
    /// misalign it (the copy path of `withElements`).
    static let header =
        #"{"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
        + #""__metadata__":{"format":"pt"}}"#

    static func handBuiltFile(_ dir: TemporaryDirectory, padding: Int = 0) throws -> String {
        var data = littleEndianBytes([Float(1.5), -2])
        data += [0x80, 0x3F, 0x00, 0x40]  // BF16 1.0, 2.0
        return try dir.write(
            "hand-\(padding).safetensors",
            safetensorsBytes(header: Self.header + String(repeating: " ", count: padding), data: data)
        )
    }

    @Test func readsHandBuiltFile() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let path = try Self.handBuiltFile(dir)
        let file = try SafeTensorsFile(path: path)
        #expect(file.tensorNames == ["a", "b"])
        #expect(file.header.metadata == ["format": "pt"])
        #expect(try file.floats(named: "a") == [1.5, -2])
        #expect(try file.floats(named: "b") == [1, 2])
        #expect(throws: SafeTensorsError.tensorNotFound(name: "c", file: path)) { try file.info(named: "c") }
        #expect(throws: SafeTensorsError.typeMismatch(file: path, tensor: "a", dtype: .f32, requested: "Int")) {
            try file.integers(named: "a")
        }
    }

    /// Typed views are zero-copy when aligned and copied when a hand-made header leaves the data
    /// misaligned; both give the same elements.
    @Test(arguments: [0, 5])
    func typedViewsWorkAlignedAndMisaligned(padding: Int) throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let file = try SafeTensorsFile(path: try Self.handBuiltFile(dir, padding: padding))
        #expect((file.header.dataStart % 4 == 0) == (padding == 0))
        #expect(try file.withElements(named: "a", as: Float.self) { Array($0) } == [1.5, -2])
        #expect(try file.withElements(named: "b", as: UInt16.self) { Array($0) } == [0x3F80, 0x4000])
        #expect(throws: SafeTensorsError.typeMismatch(file: file.path, tensor: "a", dtype: .f32, requested: "Double")) {
            try file.withElements(named: "a", as: Double.self) { $0.count }
        }
    }

    @Test func floatsIntoRequiresTheExactElementCount() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let file = try SafeTensorsFile(path: try Self.handBuiltFile(dir))
        var buffer = [Float](repeating: 0, count: 2)
        try buffer.withUnsafeMutableBufferPointer { try file.floats(named: "b", into: $0) }
        #expect(buffer == [1, 2])
        var short = [Float](repeating: 0, count: 1)
        #expect(throws: SafeTensorsError.wrongByteCount(file: file.path, tensor: "b", expectedBytes: 8, actualBytes: 4))
        {
            try short.withUnsafeMutableBufferPointer { try file.floats(named: "b", into: $0) }
        }
    }

    @Test func integersWidenEverySignedAndUnsignedType() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let path = dir.file("ints.safetensors")
        try SafeTensorsStreamWriter.writeFile(
            path: path,
            tensors: [
                (TensorDeclaration(name: "i64", dtype: .i64, shape: [2]), littleEndianBytes([Int64.min, Int64.max])),
                (TensorDeclaration(name: "i32", dtype: .i32, shape: [2]), littleEndianBytes([Int32.min, -1])),
                (TensorDeclaration(name: "i16", dtype: .i16, shape: [2]), littleEndianBytes([Int16.min, 7])),
                (TensorDeclaration(name: "i8", dtype: .i8, shape: [2]), littleEndianBytes([Int8.min, -3])),
                (TensorDeclaration(name: "u8", dtype: .u8, shape: [2]), [0, 255]),
                (TensorDeclaration(name: "bool", dtype: .bool, shape: [2]), [1, 0]),
            ]
        )
        let file = try SafeTensorsFile(path: path)
        #expect(try file.integers(named: "i64") == [Int(Int64.min), Int(Int64.max)])
        #expect(try file.integers(named: "i32") == [Int(Int32.min), -1])
        #expect(try file.integers(named: "i16") == [Int(Int16.min), 7])
        #expect(try file.integers(named: "i8") == [-128, -3])
        #expect(try file.integers(named: "u8") == [0, 255])
        #expect(try file.integers(named: "bool") == [1, 0])
        #expect(try file.withElements(named: "bool", as: UInt8.self) { Array($0) } == [1, 0])
    }

    /// Zero-sized tensors may share an offset with the next tensor (the reference sorts by
    /// (begin, end)); such files must be accepted.
    @Test func zeroSizedTensorSharingAnOffsetIsAccepted() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let header =
            #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#
        let path = try dir.write(
            "zero.safetensors",
            safetensorsBytes(header: header, data: littleEndianBytes([Float(3)]))
        )
        let file = try SafeTensorsFile(path: path)
        #expect(file.tensorNames == ["z", "a"])
        #expect(try file.floats(named: "z").isEmpty)
        #expect(try file.floats(named: "a") == [3])
    }

    @Test func directoriesAndFifosAreNotSafetensorsFiles() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        #expect(throws: SafeTensorsError.self) { _ = try SafeTensorsFile(path: dir.path) }
        #expect(
            throws: SafeTensorsError.io(path: dir.file("missing"), operation: "open", errno: .noSuchFileOrDirectory)
        ) {
            _ = try SafeTensorsFile(path: dir.file("missing"))
        }
    }
}
