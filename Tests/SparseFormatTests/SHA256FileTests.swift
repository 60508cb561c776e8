// SPDX-License-Identifier: Apache-2.0
// SHA-256 of a file on disk against sha256sum (the FIPS vectors: DSnoTSupportTests).

import DSnoTSupport
import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@testable import SparseFormat

@Suite struct SHA256FileTests {
    @Test func fileHashEqualsSha256sum() throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        var factory = TensorFactory(seed: 3)
        let data = (0..<(3 << 20) + 17).map { _ in UInt8(truncatingIfNeeded: factory.next() >> 7) }
        try Tool.write(dir.file("blob"), data)
        let (status, output) = try ExternalProcess.run(command: ["sha256sum", dir.file("blob")])
        #expect(status == 0)
        #expect(try SHA256.hash(fileAt: dir.file("blob")).hex == String(output.prefix(64)))
    }
}
