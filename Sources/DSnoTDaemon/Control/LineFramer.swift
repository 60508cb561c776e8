// SPDX-License-Identifier: Apache-2.0
// Splits a byte stream into newline-terminated lines with a hard cap on line length.

/// Bounded line framing for the control socket. Pure: feed bytes, take lines.
///
/// A line longer than `maximumLineBytes` yields `.tooLong` once and the framer stops producing lines;
/// the connection is then closed (the rest of an oversized request cannot be trusted to resynchronise).
struct LineFramer {
    enum Item: Equatable {
        case line([UInt8])
        case tooLong
    }

    let maximumLineBytes: Int
    private var buffer: [UInt8] = []
    private var failed = false

    init(maximumLineBytes: Int) {
        self.maximumLineBytes = maximumLineBytes
    }

    mutating func append<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if !failed { buffer.append(contentsOf: bytes) }
    }

    /// The next complete line (without `\n`, and without a trailing `\r`), `.tooLong`, or nil.
    mutating func next() -> Item? {
        guard !failed else { return nil }
        if let newline = buffer.firstIndex(of: 0x0A) {
            guard newline <= maximumLineBytes else { return fail() }
            var line = Array(buffer[..<newline])
            buffer.removeSubrange(...newline)
            if line.last == 0x0D { line.removeLast() }
            return .line(line)
        }
        return buffer.count > maximumLineBytes ? fail() : nil
    }

    /// Whether `byte` is blank: a line of only these bytes (space, tab, CR) is ignored by the server
    /// and is not a request for `RequestDeadlineHandler`.
    static func isBlank(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D
    }

    /// Whether `line` is blank (empty or only blank bytes).
    static func isBlank(_ line: [UInt8]) -> Bool {
        line.allSatisfy(isBlank)
    }

    /// Bytes of an incomplete line held now.
    var pendingBytes: Int { buffer.count }

    private mutating func fail() -> Item {
        failed = true
        buffer = []
        return .tooLong
    }
}
