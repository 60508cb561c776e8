// SPDX-License-Identifier: Apache-2.0
// StrictJSON: a small RFC 8259 parser for untrusted headers: ordered keys, duplicate detection, depth limit.

/// A strict JSON parser for safetensors headers, checkpoint indexes and (in the daemon, through `package`
/// access) control-socket requests.
///
/// Foundation's parsers keep only one of two duplicate keys and accept some non-standard input;
/// a header that names a tensor twice must be rejected, so dsnot parses headers itself. Objects keep
/// their key order; integers that fit `Int` are `.integer`, other numbers `.number`. Nesting deeper
/// than `maximumDepth` is rejected (no unbounded recursion on hostile input), and so are arrays longer
/// than `maximumArrayLength` (a shape has a handful of dimensions; without the limit a 100 MB header
/// of `[0,0,0,…]` would become 50 million values). Memory is thus a small multiple of the input size.
package enum StrictJSON {
    static let maximumDepth = 64
    static let maximumArrayLength = 4096

    package enum Value: Equatable, Sendable {  // not `indirect`: arrays already box, scalars stay inline
        case null
        case bool(Bool)
        case integer(Int)
        case number(Double)
        case string(String)
        case array([Value])
        case object([(String, Value)])

        package static func == (lhs: Value, rhs: Value) -> Bool {
            switch (lhs, rhs) {
            case (.null, .null): true
            case (.bool(let a), .bool(let b)): a == b
            case (.integer(let a), .integer(let b)): a == b
            case (.number(let a), .number(let b)): a == b
            case (.string(let a), .string(let b)): a == b
            case (.array(let a), .array(let b)): a == b
            case (.object(let a), .object(let b)): a.map(\.0) == b.map(\.0) && a.map(\.1) == b.map(\.1)
            default: false
            }
        }

        package var kindName: String {
            switch self {
            case .null: "null"
            case .bool: "a boolean"
            case .integer, .number: "a number"
            case .string: "a string"
            case .array: "an array"
            case .object: "an object"
            }
        }

        /// A short rendering for error messages.
        package var debugText: String {
            switch self {
            case .null: "null"
            case .bool(let b): "\(b)"
            case .integer(let i): "\(i)"
            case .number(let d): "\(d)"
            case .string(let s): "\"\(s.prefix(40))\""
            case .array: "[…]"
            case .object: "{…}"
            }
        }
    }

    package struct Failure: Error {
        package var reason: String
        var duplicateTopLevelKey: String?
    }

    /// Parses a whole document that must be a JSON object; maps failures to `SafeTensorsError`.
    static func parseObject(_ bytes: UnsafeRawBufferPointer, file: String) throws -> [(String, Value)] {
        guard String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) != nil else {
            throw SafeTensorsError.headerNotUTF8(file: file)
        }
        do {
            var parser = Parser(bytes: bytes)
            let value = try parser.parseDocument()
            guard case .object(let pairs) = value else {
                throw Failure(reason: "top level is \(value.kindName), expected an object")
            }
            return pairs
        } catch let failure as Failure {
            if let key = failure.duplicateTopLevelKey {
                throw SafeTensorsError.duplicateTensor(file: file, tensor: key)
            }
            throw SafeTensorsError.headerNotJSON(file: file, reason: failure.reason)
        }
    }

    package struct Parser {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        package init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        package mutating func parseDocument() throws -> Value {
            let value = try parseValue(depth: 0)
            skipWhitespace()
            // safetensors pads headers with trailing spaces; anything else after the value is an error.
            guard index == bytes.count else { throw fail("unexpected data after the JSON value") }
            return value
        }

        func fail(_ reason: String) -> Failure { Failure(reason: "\(reason) at byte \(index)") }

        mutating func skipWhitespace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        mutating func parseValue(depth: Int) throws -> Value {
            guard depth < StrictJSON.maximumDepth else { throw fail("nesting deeper than \(StrictJSON.maximumDepth)") }
            skipWhitespace()
            guard index < bytes.count else { throw fail("unexpected end of input") }
            switch bytes[index] {
            case UInt8(ascii: "{"): return try parseObjectBody(depth: depth)
            case UInt8(ascii: "["): return try parseArray(depth: depth)
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
            case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
            case UInt8(ascii: "n"): try expectLiteral("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
            default: throw fail("unexpected character")
            }
        }

        mutating func expectLiteral(_ literal: String) throws {
            for byte in literal.utf8 {
                guard index < bytes.count, bytes[index] == byte else { throw fail("invalid literal") }
                index += 1
            }
        }

        mutating func parseObjectBody(depth: Int) throws -> Value {
            index += 1
            var pairs: [(String, Value)] = []
            var seen = Set<String>()
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
                index += 1
                return .object(pairs)
            }
            while true {
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                let key = try parseString()
                guard seen.insert(key).inserted else {
                    var failure = fail("duplicate key '\(key)'")
                    if depth == 0 { failure.duplicateTopLevelKey = key }
                    throw failure
                }
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                index += 1
                pairs.append((key, try parseValue(depth: depth + 1)))
                skipWhitespace()
                guard index < bytes.count else { throw fail("unterminated object") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    try rejectTrailingComma(before: UInt8(ascii: "}"))
                } else if bytes[index] == UInt8(ascii: "}") {
                    index += 1
                    return .object(pairs)
                } else {
                    throw fail("expected ',' or '}'")
                }
            }
        }

        /// After a ',': a closing `bracket` next is a trailing comma, which RFC 8259 does not allow.
        mutating func rejectTrailingComma(before bracket: UInt8) throws {
            skipWhitespace()
            if index < bytes.count, bytes[index] == bracket { throw fail("trailing comma") }
        }

        mutating func parseArray(depth: Int) throws -> Value {
            index += 1
            var values: [Value] = []
            skipWhitespace()
            if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
                index += 1
                return .array(values)
            }
            while true {
                guard values.count < StrictJSON.maximumArrayLength else {
                    throw fail("array longer than \(StrictJSON.maximumArrayLength) elements")
                }
                values.append(try parseValue(depth: depth + 1))
                skipWhitespace()
                guard index < bytes.count else { throw fail("unterminated array") }
                if bytes[index] == UInt8(ascii: ",") {
                    index += 1
                    try rejectTrailingComma(before: UInt8(ascii: "]"))
                } else if bytes[index] == UInt8(ascii: "]") {
                    index += 1
                    return .array(values)
                } else {
                    throw fail("expected ',' or ']'")
                }
            }
        }

        mutating func parseString() throws -> String {
            index += 1  // opening quote
            var runStart = index
            var result = ""
            while true {
                guard index < bytes.count else { throw fail("unterminated string") }
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    result += text(runStart..<index)
                    index += 1
                    return result
                }
                guard byte >= 0x20 else { throw fail("control character in string") }
                if byte != UInt8(ascii: "\\") {
                    index += 1
                    continue
                }
                result += text(runStart..<index)
                index += 1
                guard index < bytes.count else { throw fail("unterminated escape") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): result += "\""
                case UInt8(ascii: "\\"): result += "\\"
                case UInt8(ascii: "/"): result += "/"
                case UInt8(ascii: "b"): result += "\u{08}"
                case UInt8(ascii: "f"): result += "\u{0C}"
                case UInt8(ascii: "n"): result += "\n"
                case UInt8(ascii: "r"): result += "\r"
                case UInt8(ascii: "t"): result += "\t"
                case UInt8(ascii: "u"):
                    var code = try parseHex4()
                    if (0xD800..<0xDC00).contains(code) {
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"),
                            bytes[index + 1] == UInt8(ascii: "u")
                        else { throw fail("unpaired surrogate") }
                        index += 2
                        let low = try parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("invalid low surrogate") }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                    result.unicodeScalars.append(scalar)
                default: throw fail("invalid escape")
                }
                runStart = index
            }
        }

        func text(_ range: Range<Int>) -> String {
            String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
        }

        mutating func parseHex4() throws -> UInt32 {
            guard index + 4 <= bytes.count else { throw fail("short \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[index]
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: throw fail("invalid hex digit")
                }
                value = value << 4 | digit
                index += 1
            }
            return value
        }

        mutating func parseNumber() throws -> Value {
            let start = index
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            let digitsStart = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            guard index > digitsStart else { throw fail("invalid number") }
            guard !(bytes[digitsStart] == UInt8(ascii: "0") && index - digitsStart > 1) else {
                throw fail("leading zero in number")
            }
            var isInteger = true
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                isInteger = false
                index += 1
                let fractionStart = index
                while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
                guard index > fractionStart else { throw fail("invalid fraction") }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                isInteger = false
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                    index += 1
                }
                let exponentStart = index
                while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
                guard index > exponentStart else { throw fail("invalid exponent") }
            }
            let literal = text(start..<index)
            if isInteger, let value = Int(literal) { return .integer(value) }
            guard let value = Double(literal) else { throw fail("invalid number") }
            return .number(value)
        }
    }
}
