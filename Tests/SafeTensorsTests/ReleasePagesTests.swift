// SPDX-License-Identifier: Apache-2.0
// releasePages: dropping a tensor's mapped pages never changes what later reads return.

import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@Suite struct ReleasePagesTests {
    /// Three tensors spanning several pages, the middle one not page-aligned: after releasing any
    /// of them (pages widened to whole pages, so neighbours are dropped too), every tensor reads back
    /// bit-exactly (exact comparison, no tolerance: the bytes come from the file again).
    @Test func readsAreUnchangedAfterRelease() throws {
        let dir = try TemporaryDirectory("dsnot-st")
        defer { dir.remove() }
        let a = (0..<3000).map { Float($0) * 0.5 }
        let b = (0..<1001).map { Float(-$0) }
        let c = (0..<5000).map { Float($0).squareRoot() }
        try CheckpointTests.writeShard(dir, "model.safetensors", [("a", a), ("b", b), ("c", c)])
        let checkpoint = try Checkpoint(directory: dir.path)
        let file = checkpoint.files[0]
        #expect(try file.floats(named: "a") == a)
        for name in ["b", "a", "c"] {
            file.releasePages(of: try file.info(named: name))
            #expect(try file.floats(named: "a") == a)
            #expect(try file.floats(named: "b") == b)
            #expect(try file.floats(named: "c") == c)
        }
        checkpoint.releasePages(named: "b")
        checkpoint.releasePages(named: "not-a-tensor")  // ignored
        #expect(try checkpoint.floats(named: "b") == b)
        #expect(try checkpoint.floats(named: "c") == c)
    }
}
