// SPDX-License-Identifier: Apache-2.0
// The GPT-2, LLaMA-3 and Qwen2 pre-tokenizer regexes, implemented by hand over Unicode scalars.

/// One of the pre-tokenization regexes real checkpoints use, matched exactly by its pattern string and
/// executed by a hand-written scanner that reproduces Oniguruma's leftmost-alternative semantics.
///
/// Every scalar is covered by some alternative of each pattern, so splitting with behaviour `Isolated`
/// yields exactly the sequence of matches.
enum RegexSplitter: String, Sendable, CaseIterable {
    /// GPT-2's pattern, also used by the `ByteLevel` pre-tokenizer when `use_regex` is true.
    case gpt2 = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    /// LLaMA-3's pattern (numbers in groups of up to three).
    case llama3 =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// Qwen2's pattern (single digits).
    case qwen2 =
        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// Appends the end offsets (exclusive) of the matches in `scalars` to `ends`.
    func appendMatchEnds(of scalars: ArraySlice<Unicode.Scalar>, to ends: inout [Int]) {
        var position = scalars.startIndex
        while position < scalars.endIndex {
            let end: Int
            switch self {
            case .gpt2: end = RegexSplitter.matchGPT2(scalars, at: position)
            case .llama3: end = RegexSplitter.matchLlama3(scalars, at: position, maxDigits: 3)
            case .qwen2: end = RegexSplitter.matchLlama3(scalars, at: position, maxDigits: 1)
            }
            ends.append(end)
            position = end
        }
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` at `position`, case-sensitive or not; returns the end or nil.
    @inline(__always)
    static func contraction(_ s: ArraySlice<Unicode.Scalar>, at position: Int, ignoreCase: Bool) -> Int? {
        guard s[position] == "'", position + 1 < s.endIndex else { return nil }
        func lower(_ scalar: Unicode.Scalar) -> UInt32 {
            ignoreCase && scalar.value >= 0x41 && scalar.value <= 0x5A ? scalar.value + 0x20 : scalar.value
        }
        let first = lower(s[position + 1])
        switch first {
        case 0x73, 0x74, 0x6D, 0x64: return position + 2  // s t m d
        case 0x72, 0x76, 0x6C:  // r v l → re ve ll
            guard position + 2 < s.endIndex else { return nil }
            let second = lower(s[position + 2])
            let expected: UInt32 = first == 0x6C ? 0x6C : 0x65
            return second == expected ? position + 3 : nil
        default: return nil
        }
    }

    /// The end of the run of scalars of class `kind` starting at `position`.
    @inline(__always)
    static func run(_ s: ArraySlice<Unicode.Scalar>, from position: Int, of kind: ScalarClass) -> Int {
        var end = position
        while end < s.endIndex, ScalarClass.of(s[end]) == kind { end += 1 }
        return end
    }

    /// `\s+(?!\S)|\s+` for a whitespace run `[position, runEnd)`: all of it at the end of the text,
    /// otherwise all but its last scalar (which joins the next match), or the single scalar.
    @inline(__always)
    static func whitespaceTail(_ s: ArraySlice<Unicode.Scalar>, from position: Int, runEnd: Int) -> Int {
        if runEnd == s.endIndex || runEnd - position < 2 { return runEnd }
        return runEnd - 1
    }

    static func matchGPT2(_ s: ArraySlice<Unicode.Scalar>, at i: Int) -> Int {
        if let end = contraction(s, at: i, ignoreCase: false) { return end }
        let kind = ScalarClass.of(s[i])
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
        if s[i] == " ", i + 1 < s.endIndex {
            let next = ScalarClass.of(s[i + 1])
            if next != .whitespace { return run(s, from: i + 1, of: next) }
        }
        if kind != .whitespace { return run(s, from: i, of: kind) }
        return whitespaceTail(s, from: i, runEnd: run(s, from: i, of: .whitespace))
    }

    static func matchLlama3(_ s: ArraySlice<Unicode.Scalar>, at i: Int, maxDigits: Int) -> Int {
        if let end = contraction(s, at: i, ignoreCase: true) { return end }
        let c = s[i]
        let kind = ScalarClass.of(c)
        // `[^\r\n\p{L}\p{N}]?\p{L}+`
        if kind == .letter { return run(s, from: i, of: .letter) }
        if kind != .number, !c.isCarriageReturnOrLineFeed, i + 1 < s.endIndex, ScalarClass.of(s[i + 1]) == .letter {
            return run(s, from: i + 1, of: .letter)
        }
        // `\p{N}{1,maxDigits}`
        if kind == .number {
            var end = i + 1
            while end < s.endIndex, end - i < maxDigits, ScalarClass.of(s[end]) == .number { end += 1 }
            return end
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        var start: Int? = nil
        if kind == .other {
            start = i
        } else if c == " ", i + 1 < s.endIndex, ScalarClass.of(s[i + 1]) == .other {
            start = i + 1
        }
        if let start {
            var end = run(s, from: start, of: .other)
            while end < s.endIndex, s[end].isCarriageReturnOrLineFeed { end += 1 }
            return end
        }
        // Whitespace from here on. `\s*[\r\n]+`: up to and including the run's last CR/LF.
        let runEnd = run(s, from: i, of: .whitespace)
        var last = runEnd - 1
        while last >= i, !s[last].isCarriageReturnOrLineFeed { last -= 1 }
        if last >= i { return last + 1 }
        return whitespaceTail(s, from: i, runEnd: runEnd)
    }
}
