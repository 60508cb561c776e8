// SPDX-License-Identifier: Apache-2.0
// A FIFO under a checkpoint's file names is refused at once: open(2) without O_NONBLOCK waited for a writer.

import DSnoTTestSupport
import Foundation
import Testing

@testable import SafeTensors

#if canImport(Glibc)
    import Glibc
#endif

@Suite struct SpecialFileTests {
    @Test(arguments: [Checkpoint.singleFileName, Checkpoint.indexFileName])
    func fifoIsRefusedWithoutWaitingForAWriter(_ name: String) throws {
        let directory = try TemporaryDirectory("dsnot-st")
        defer { directory.remove() }
        let path = directory.file(name)
        #expect(mkfifo(path, 0o644) == 0)
        let started = Date()
        #expect(throws: SafeTensorsError.self) { _ = try Checkpoint(directory: directory.path) }
        if name == Checkpoint.indexFileName {
            #expect(throws: SafeTensorsError.invalidIndex(file: path, reason: "not a regular file")) {
                _ = try CheckpointIndex(path: path)
            }
        } else {
            #expect(throws: SafeTensorsError.self) { _ = try SafeTensorsFile(path: path) }
        }
        #expect(Date().timeIntervalSince(started) < 2)
    }
}
