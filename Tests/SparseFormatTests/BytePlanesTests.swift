// SPDX-License-Identifier: Apache-2.0
// The opt-in byte-plane variant: smaller frames that only `unpack` restores, bit-exact.

import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@testable import SparseFormat

@Suite struct BytePlanesTests {
    @Test func splitAndJoinAreInverse() {
        let bytes: [UInt8] = [1, 2, 3, 4, 5, 6]
        let planes = bytes.withUnsafeBytes { BytePlanes.split($0) }
        #expect(planes == [1, 3, 5, 2, 4, 6])
        #expect(planes.withUnsafeBytes { BytePlanes.join($0) } == bytes)
    }

    @Test(arguments: [DType.bf16, .f16, .f32], SparsityStructure.allCases)
    func unpackRestoresThePlainOutputExactly(dtype: DType, structure: SparsityStructure) throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let plain = try CheckpointFixture(dtype: dtype, structure: structure, in: dir, name: "plain")
        let planes = try CheckpointFixture(
            dtype: dtype,
            structure: structure,
            in: dir,
            name: "planes",
            bytePlanes: true
        )
        #expect(planes.manifest.bytePlanes == true && plain.manifest.bytePlanes == nil)
        #expect(try SparseVerifier.verify(directory: planes.output).shardsChecked == 2)
        try SparseUnpacker.unpack(outputDirectory: planes.output, destination: dir.file("dense"), mode: .dense)
        #expect(try CheckpointFixture.readTensors(in: dir.file("dense")) == planes.expected)
        try SparseUnpacker.unpack(outputDirectory: planes.output, destination: dir.file("ct"), mode: .compressedTensors)
        for shard in CheckpointFixture.shardNames {
            let frame = planes.output + "/" + shard + BytePlanes.frameSuffix
            #expect(FileIO.exists(frame))
            // Still a valid LZ4 frame, but its content is the plane layout (and a marked header), not the plain file.
            #expect(try ExternalProcess.run(command: ["lz4", "-t", "-q", frame]).status == 0)
            #expect(
                try ExternalProcess.run(command: [
                    "lz4", "-d", "-q", plain.output + "/" + shard + ".lz4", dir.file(shard),
                ]).status == 0
            )
            let plainContent = try Tool.read(dir.file(shard))
            #expect(try Tool.read(dir.file("ct/" + shard)) == plainContent)
            #expect(
                try ExternalProcess.run(command: ["lz4", "-d", "-q", frame, dir.file(shard + ".planes")]).status == 0
            )
            #expect(try Tool.read(dir.file(shard + ".planes")) != plainContent)
        }
    }
}
