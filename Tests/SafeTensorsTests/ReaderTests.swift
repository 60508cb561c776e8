// SPDX-License-Identifier: Apache-2.0
// Reader tests: a hand-built file is mapped, validated and read back.

import Foundation
import SafeTensors
import Testing

@Suite struct ReaderTests {
    @Test func readsHandBuiltFile() throws {
        let header =
            #"{"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}}"#
        var bytes = [UInt8]()
        let json = Array(header.utf8)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { bytes += $0 }
        bytes += json
        withUnsafeBytes(of: Float(1.5).bitPattern.littleEndian) { bytes += $0 }
        withUnsafeBytes(of: Float(-2).bitPattern.littleEndian) { bytes += $0 }
        bytes += [0x80, 0x3F, 0x00, 0x40]  // BF16 1.0, 2.0
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("reader-\(getpid()).safetensors").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }

        let file = try SafeTensorsFile(path: path)
        #expect(file.tensorNames == ["a", "b"])
        #expect(file.header.metadata == ["format": "pt"])
        #expect(try file.floats(named: "a") == [1.5, -2])
        #expect(try file.floats(named: "b") == [1, 2])
        #expect(throws: SafeTensorsError.tensorNotFound(name: "c", file: path)) { try file.info(named: "c") }
    }
}
