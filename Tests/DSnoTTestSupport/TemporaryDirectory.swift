// SPDX-License-Identifier: Apache-2.0
// TemporaryDirectory: the one temp-dir helper of every test target (a fresh `mkdtemp` directory).

public import Foundation

/// A fresh directory `<parent>/<prefix>-XXXXXX` made by `mkdtemp`, removed by `remove()` (usually in a
/// `defer`). The default parent is `/tmp`, not `$TMPDIR`, so that `socketPath` fits in `sun_path`
/// (108 bytes); tests that need no socket may pass `NSTemporaryDirectory()`.
public struct TemporaryDirectory: Sendable {
    public let path: String
    public var url: URL { URL(fileURLWithPath: path) }

    public init(_ prefix: String = "dsnot", in parent: String = "/tmp") throws {
        let separator = parent.hasSuffix("/") ? "" : "/"
        var template = Array("\(parent)\(separator)\(prefix)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        path = String(cString: made)
    }

    /// The path of `name` inside the directory.
    public func file(_ name: String) -> String { path + "/" + name }

    /// The URL of `name` inside the directory.
    public func sub(_ name: String) -> URL { url.appendingPathComponent(name) }

    /// A socket path short enough for `sun_path` (108 bytes) with the default parent.
    public var socketPath: String { file("s.sock") }

    /// Writes raw bytes to `name` (overwriting), returning the path.
    @discardableResult
    public func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let target = file(name)
        try Data(bytes).write(to: URL(fileURLWithPath: target))
        return target
    }

    /// Names of the entries in the directory, sorted.
    public func entries() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: path).sorted() }

    /// Removes the directory and everything in it; errors are ignored (the test is over).
    public func remove() { try? FileManager.default.removeItem(atPath: path) }
}
