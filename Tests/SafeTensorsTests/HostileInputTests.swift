// SPDX-License-Identifier: Apache-2.0
// Hostile-input tables: hand-made corrupt files and checkpoints, each rejected with its specific error.

import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

/// One hand-made corrupt safetensors file (llama.cpp `test-gguf.cpp` and safetensors'
/// `test_json_attack` style): its bytes and the exact error the reader must throw.
enum CorruptFile: String, CaseIterable, CustomTestStringConvertible {
    case emptyFile, truncatedLengthPrefix, headerLongerThanFile, headerOverLimit, headerNotUTF8, headerNotJSON
    case headerIsAnArray, truncatedHeaderJSON, excessiveNesting, unknownDType, negativeDimension
    case fractionalDimension, overflowingShape, dimensionBeyondInt64, shapeDisagreesWithOffsets, invertedOffsets
    case overlappingTensors, gapBetweenTensors, offsetsOutOfBounds, trailingBytes, duplicateNames
    case metadataWithNumber, metadataNotObject, entryMissingDType, entryWithUnknownField, offsetsNotPair
    case hugeShapeArray

    var testDescription: String { rawValue }

    static let f32Pair = #""dtype":"F32","shape":[2]"#

    /// The file's bytes.
    var bytes: [UInt8] {
        switch self {
        case .emptyFile: []
        case .truncatedLengthPrefix: [0x10, 0, 0, 0, 0]
        case .headerLongerThanFile: safetensorsBytes(header: "{}", declaredLength: 4096)
        case .headerOverLimit: safetensorsBytes(header: "{}", declaredLength: 1 << 40)
        case .headerNotUTF8:
            // `{"` + an invalid two-byte sequence (C3 28) + `":{}}`: well-formed JSON except for the encoding.
            [9, 0, 0, 0, 0, 0, 0, 0] + Array("{\"".utf8) + [0xC3, 0x28] + Array("\":{}}".utf8)
        case .headerNotJSON: safetensorsBytes(header: "not json")
        case .headerIsAnArray: safetensorsBytes(header: "[1, 2]")
        case .truncatedHeaderJSON: safetensorsBytes(header: #"{"a":{"dtype":"F32","sha"#)
        case .excessiveNesting: safetensorsBytes(header: "{\"a\":" + String(repeating: "[", count: 100_000) + "}")
        case .unknownDType:
            safetensorsBytes(header: #"{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}"#, data: [0])
        case .negativeDimension:
            safetensorsBytes(
                header: #"{"a":{"dtype":"F32","shape":[-1, 2],"data_offsets":[0,8]}}"#,
                data: Array(repeating: 0, count: 8)
            )
        case .fractionalDimension:
            safetensorsBytes(
                header: #"{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#,
                data: Array(repeating: 0, count: 8)
            )
        case .overflowingShape:
            safetensorsBytes(
                header: #"{"a":{"dtype":"F32","shape":[4294967296, 4294967296],"data_offsets":[0,0]}}"#
            )
        case .dimensionBeyondInt64:
            safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[100000000000000000000],"data_offsets":[0,0]}}"#)
        case .shapeDisagreesWithOffsets:
            safetensorsBytes(
                header: #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                data: Array(repeating: 0, count: 8)
            )
        case .invertedOffsets:
            safetensorsBytes(
                header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
                data: Array(repeating: 0, count: 8)
            )
        case .overlappingTensors:
            safetensorsBytes(
                header:
                    "{\"a\":{\(Self.f32Pair),\"data_offsets\":[0,8]},\"b\":{\(Self.f32Pair),\"data_offsets\":[4,12]}}",
                data: Array(repeating: 0, count: 12)
            )
        case .gapBetweenTensors:
            safetensorsBytes(
                header:
                    "{\"a\":{\(Self.f32Pair),\"data_offsets\":[0,8]},\"b\":{\(Self.f32Pair),\"data_offsets\":[12,20]}}",
                data: Array(repeating: 0, count: 20)
            )
        case .offsetsOutOfBounds:
            safetensorsBytes(
                header: "{\"a\":{\(Self.f32Pair),\"data_offsets\":[0,8]}}",
                data: Array(repeating: 0, count: 4)
            )
        case .trailingBytes:
            safetensorsBytes(
                header: "{\"a\":{\(Self.f32Pair),\"data_offsets\":[0,8]}}",
                data: Array(repeating: 0, count: 9)
            )
        case .duplicateNames:
            safetensorsBytes(
                header:
                    "{\"a\":{\(Self.f32Pair),\"data_offsets\":[0,8]},\"a\":{\(Self.f32Pair),\"data_offsets\":[8,16]}}",
                data: Array(repeating: 0, count: 16)
            )
        case .metadataWithNumber:
            safetensorsBytes(header: #"{"__metadata__":{"format":"pt","step":3}}"#)
        case .metadataNotObject:
            safetensorsBytes(header: #"{"__metadata__":["format","pt"]}"#)
        case .entryMissingDType:
            safetensorsBytes(header: #"{"a":{"shape":[1],"data_offsets":[0,1]}}"#, data: [0])
        case .entryWithUnknownField:
            safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1}}"#, data: [0])
        case .hugeShapeArray:
            safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":["# + String(repeating: "1,", count: 5000) + "1]}}")
        case .offsetsNotPair:
            safetensorsBytes(header: #"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}}"#, data: [0])
        }
    }

    /// The exact error for a file at `path`.
    func expectedError(path: String) -> SafeTensorsError {
        let f = path
        return switch self {
        case .emptyFile: .fileTooSmall(file: f, size: 0)
        case .truncatedLengthPrefix: .fileTooSmall(file: f, size: 5)
        case .headerLongerThanFile: .headerBeyondFile(file: f, declared: 4096, fileSize: 10)
        case .headerOverLimit: .headerTooLarge(file: f, declared: 1 << 40, limit: Header.maximumLength)
        case .headerNotUTF8: .headerNotUTF8(file: f)
        case .headerNotJSON: .headerNotJSON(file: f, reason: "invalid literal at byte 1")
        case .headerIsAnArray: .headerNotJSON(file: f, reason: "top level is an array, expected an object")
        case .truncatedHeaderJSON: .headerNotJSON(file: f, reason: "unterminated string at byte 24")
        case .excessiveNesting: .headerNotJSON(file: f, reason: "nesting deeper than 64 at byte 68")
        case .unknownDType: .unsupportedDType(file: f, tensor: "a", dtype: "F8_E4M3")
        case .negativeDimension: .invalidShape(file: f, tensor: "a", shape: "[-1, 2]")
        case .fractionalDimension: .invalidShape(file: f, tensor: "a", shape: "[2.5]")
        case .overflowingShape: .sizeOverflow(file: f, tensor: "a", shape: "[4294967296, 4294967296]")
        case .dimensionBeyondInt64: .sizeOverflow(file: f, tensor: "a", shape: "[1e+20]")
        case .shapeDisagreesWithOffsets: .sizeMismatch(file: f, tensor: "a", expectedBytes: 12, declaredBytes: 8)
        case .invertedOffsets: .invalidOffsets(file: f, tensor: "a", begin: 8, end: 0)
        case .overlappingTensors: .tensorsOverlap(file: f, tensor: "b", previous: "a", previousEnd: 8, begin: 4)
        case .gapBetweenTensors: .dataGap(file: f, tensor: "b", expectedBegin: 8, begin: 12)
        case .offsetsOutOfBounds: .dataOutOfBounds(file: f, tensor: "a", end: 8, dataSize: 4)
        case .trailingBytes: .trailingBytes(file: f, dataEnd: 8, dataSize: 9)
        case .duplicateNames: .duplicateTensor(file: f, tensor: "a")
        case .metadataWithNumber:
            .invalidMetadata(file: f, key: "step", reason: "expected a string value, found a number")
        case .metadataNotObject: .invalidMetadata(file: f, key: "__metadata__", reason: "expected an object")
        case .entryMissingDType: .malformedEntry(file: f, tensor: "a", reason: "missing or non-string 'dtype'")
        case .entryWithUnknownField: .malformedEntry(file: f, tensor: "a", reason: "unknown field 'extra'")
        case .hugeShapeArray: .headerNotJSON(file: f, reason: "array longer than 4096 elements at byte 8220")
        case .offsetsNotPair:
            .malformedEntry(file: f, tensor: "a", reason: "'data_offsets' must be an array of two integers")
        }
    }
}

/// One hand-made inconsistent checkpoint directory and the exact error `Checkpoint` must throw.
enum CorruptCheckpoint: String, CaseIterable, CustomTestStringConvertible {
    case indexNamesMissingShard, indexNamesTensorAbsentFromShard, shardTensorAbsentFromIndex
    case tensorInTwoShards, shardNameEscapesDirectory, indexNotJSON, weightMapNotObject, emptyWeightMap
    case shardNameNotString, corruptShard, noSafetensorsFile, twoUnindexedFiles, tensorListedTwiceInIndex

    var testDescription: String { rawValue }

    static let shardA = "model-00001-of-00002.safetensors"
    static let shardB = "model-00002-of-00002.safetensors"

    /// A valid shard holding F32 tensors of two elements with the given names.
    static func shard(_ names: [String]) -> [UInt8] {
        var offset = 0
        let entries = names.map { name in
            defer { offset += 8 }
            return "\"\(name)\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\(offset),\(offset + 8)]}"
        }
        return safetensorsBytes(
            header: "{" + entries.joined(separator: ",") + "}",
            data: Array(repeating: 0, count: 8 * names.count)
        )
    }

    static func index(_ map: [(String, String)]) -> [UInt8] {
        Array(("{\"weight_map\":{" + map.map { "\"\($0.0)\":\"\($0.1)\"" }.joined(separator: ",") + "}}").utf8)
    }

    /// File name → contents.
    var files: [(String, [UInt8])] {
        let (a, b) = (Self.shardA, Self.shardB)
        let indexName = Checkpoint.indexFileName
        return switch self {
        case .indexNamesMissingShard: [(indexName, Self.index([("x", a), ("y", b)])), (a, Self.shard(["x"]))]
        case .indexNamesTensorAbsentFromShard: [(indexName, Self.index([("x", a), ("y", a)])), (a, Self.shard(["x"]))]
        case .shardTensorAbsentFromIndex: [(indexName, Self.index([("x", a)])), (a, Self.shard(["x", "y"]))]
        case .tensorInTwoShards:
            [(indexName, Self.index([("x", a), ("y", b)])), (a, Self.shard(["x", "y"])), (b, Self.shard(["y"]))]
        case .shardNameEscapesDirectory: [(indexName, Self.index([("x", "../" + a)]))]
        case .indexNotJSON: [(indexName, Array("{\"weight_map\": ".utf8))]
        case .weightMapNotObject: [(indexName, Array(#"{"weight_map": ["x"]}"#.utf8))]
        case .emptyWeightMap: [(indexName, Array(#"{"metadata": {}, "weight_map": {}}"#.utf8))]
        case .shardNameNotString: [(indexName, Array(#"{"weight_map": {"x": 1}}"#.utf8))]
        case .corruptShard: [(indexName, Self.index([("x", a)])), (a, Self.shard(["x"]) + [0])]
        case .noSafetensorsFile: [("config.json", Array("{}".utf8))]
        case .tensorListedTwiceInIndex:
            [(indexName, Self.index([("x", a), ("x", b)])), (a, Self.shard(["x"])), (b, Self.shard(["x"]))]
        case .twoUnindexedFiles: [(a, Self.shard(["x"])), (b, Self.shard(["y"]))]
        }
    }

    func expectedError(directory: String) -> SafeTensorsError {
        let index = directory + "/" + Checkpoint.indexFileName
        let (a, b) = (Self.shardA, Self.shardB)
        return switch self {
        case .indexNamesMissingShard: .missingShard(index: index, shard: b)
        case .indexNamesTensorAbsentFromShard:
            .indexMismatch(index: index, tensor: "y", reason: "the index places it in '\(a)', which lacks it")
        case .shardTensorAbsentFromIndex:
            .indexMismatch(index: index, tensor: "y", reason: "present in '\(a)' but missing from the index")
        case .tensorInTwoShards:
            .indexMismatch(index: index, tensor: "y", reason: "present in '\(a)' but the index places it in '\(b)'")
        case .shardNameEscapesDirectory:
            .invalidIndex(
                file: index,
                reason: "tensor 'x': shard name '../\(a)' contains '/' (expected a plain file name)"
            )
        case .indexNotJSON:
            .invalidIndex(
                file: index,
                reason: "not a JSON object: unexpected end of input at byte 15"
            )
        case .weightMapNotObject: .invalidIndex(file: index, reason: "'weight_map' must be an object, found an array")
        case .emptyWeightMap: .invalidIndex(file: index, reason: "'weight_map' is empty")
        case .shardNameNotString:
            .invalidIndex(file: index, reason: "tensor 'x': shard must be a string, found a number")
        case .corruptShard: .trailingBytes(file: directory + "/" + a, dataEnd: 8, dataSize: 9)
        case .noSafetensorsFile:
            .noCheckpoint(
                directory: directory,
                reason:
                    "expected model.safetensors.index.json, model.safetensors or exactly one *.safetensors file, found none"
            )
        case .tensorListedTwiceInIndex:
            .invalidIndex(file: index, reason: "not a JSON object: duplicate key 'x' at byte 57")
        case .twoUnindexedFiles:
            .noCheckpoint(
                directory: directory,
                reason: "expected model.safetensors.index.json, model.safetensors or exactly one *.safetensors file, "
                    + "found \(a), \(b)"
            )
        }
    }
}

@Suite struct HostileInputTests {
    @Test(arguments: CorruptFile.allCases)
    func corruptFileIsRejectedWithItsSpecificError(_ corrupt: CorruptFile) throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let path = try dir.write("corrupt.safetensors", corrupt.bytes)
        let error = #expect(throws: SafeTensorsError.self) { _ = try SafeTensorsFile(path: path) }
        #expect(error == corrupt.expectedError(path: path))
        // Every message names the file.
        #expect(error?.description.contains(path) == true)
    }

    @Test(arguments: CorruptCheckpoint.allCases)
    func inconsistentCheckpointIsRejectedWithItsSpecificError(_ corrupt: CorruptCheckpoint) throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        for (name, bytes) in corrupt.files { try dir.write(name, bytes) }
        let error = #expect(throws: SafeTensorsError.self) { _ = try Checkpoint(directory: dir.path) }
        #expect(error == corrupt.expectedError(directory: dir.path))
        #expect(error?.description.contains(dir.path) == true)
    }

    /// The header length is checked against the limit and the file size before anything is read
    /// or allocated: a 16-byte file declaring a header just under the limit is rejected at once.
    @Test func declaredHeaderLengthIsCheckedBeforeAllocation() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let path = try dir.write(
            "big.safetensors",
            safetensorsBytes(header: "{}      ", declaredLength: UInt64(Header.maximumLength))
        )
        #expect(
            throws: SafeTensorsError.headerBeyondFile(file: path, declared: UInt64(Header.maximumLength), fileSize: 16)
        ) {
            _ = try SafeTensorsFile(path: path)
        }
    }

    /// Every single-byte truncation of a valid file is rejected with a typed error (no crash).
    @Test func everyTruncationOfAValidFileIsRejected() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let valid = CorruptCheckpoint.shard(["x", "y"])
        #expect(throws: Never.self) { _ = try SafeTensorsFile(path: try dir.write("valid.safetensors", valid)) }
        for length in 0..<valid.count {
            let path = try dir.write("cut-\(length).safetensors", Array(valid[0..<length]))
            #expect(throws: SafeTensorsError.self) { _ = try SafeTensorsFile(path: path) }
        }
    }

    /// Random byte flips in a valid file either still parse to a consistent header or throw a
    /// `SafeTensorsError`; nothing traps.
    @Test func randomByteFlipsNeverCrash() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let valid = CorruptCheckpoint.shard(["x", "y", "z"])
        var state: UInt64 = 42
        for trial in 0..<500 {
            var bytes = valid
            for _ in 0..<3 {
                state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                bytes[Int(state >> 33) % bytes.count] = UInt8(truncatingIfNeeded: state >> 13)
            }
            let path = try dir.write("flip-\(trial % 8).safetensors", bytes)
            do {
                let file = try SafeTensorsFile(path: path)
                #expect(file.header.fileSize == bytes.count)
            } catch {
                #expect(error is SafeTensorsError)
            }
        }
    }
}
