// SPDX-License-Identifier: Apache-2.0
// Maps dotted key paths (`watch[1].recipe.sparsity`) to the line that defines them.

/// Finds the line of a key in a TOML source, so that errors can name it.
///
/// TOMLKit does not expose source positions of parsed values, so this scans the text for table
/// headers (`[table]`, `[[array]]`) and `key =` lines. It understands what dsnot's files use: plain and
/// quoted keys, dotted keys, arrays of tables, sub-tables of the last array element. Anything it cannot
/// place gives `nil` and the error is reported without a line.
struct TOMLKeyLocator {
    private var lines: [String: Int] = [:]

    init(source: String) {
        var table = ""
        var arrayCounts: [String: Int] = [:]
        for (index, raw) in source.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: " \t\r")
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[[") {
                let name = Self.headerName(line.dropFirst(2))
                let count = arrayCounts[name, default: 0]
                arrayCounts[name] = count + 1
                table = "\(name)[\(count)]"
                record(table, index + 1)
            } else if line.hasPrefix("[") {
                let name = Self.headerName(line.dropFirst(1))
                let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
                if let count = arrayCounts[parts[0]], parts.count == 2 {
                    table = "\(parts[0])[\(count - 1)].\(parts[1])"
                } else {
                    table = name
                }
                record(table, index + 1)
            } else if let equals = line.firstIndex(of: "=") {
                let key = Self.clean(line[..<equals])
                record(table.isEmpty ? key : "\(table).\(key)", index + 1)
            }
        }
    }

    /// The 1-based line defining `path`, or of the nearest enclosing table.
    func line(of path: String) -> Int? {
        var candidate = path
        while true {
            if let line = lines[candidate] { return line }
            guard let dot = candidate.lastIndex(of: ".") else { return nil }
            candidate = String(candidate[..<dot])
        }
    }

    private mutating func record(_ path: String, _ line: Int) {
        if lines[path] == nil { lines[path] = line }
    }

    private static func headerName(_ text: Substring) -> String {
        clean(text.prefix { $0 != "]" })
    }

    private static func clean(_ text: Substring) -> String {
        text.split(separator: ".").map { $0.trimmingCharacters(in: " \t\"'") }.joined(separator: ".")
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var scalars = Substring(self)
        while let first = scalars.first, set.contains(first) { scalars.removeFirst() }
        while let last = scalars.last, set.contains(last) { scalars.removeLast() }
        return String(scalars)
    }
}
