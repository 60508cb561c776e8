// SPDX-License-Identifier: Apache-2.0
// Pre-tokenizers: split a normalized segment into the words the BPE model encodes one by one.

/// A word on its way through the pre-tokenizers. `atOrigin` is true for the piece that starts at offset 0
/// of the whole input (Metaspace's `prepend_scheme: first` prepends only there).
struct Piece {
    var scalars: [Unicode.Scalar]
    var atOrigin: Bool
}

/// When Metaspace prepends its replacement character.
enum PrependScheme: String, Sendable {
    case always
    case first
    case never
}

/// The supported `pre_tokenizer` components of tokenizer.json.
indirect enum PreTokenizer: Sendable {
    case sequence([PreTokenizer])
    /// Byte-level: optional prefix space, optional GPT-2 regex split, then the byte → scalar mapping.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// `Split` with one of the known regexes, behaviour `Isolated`, not inverted.
    case split(RegexSplitter)
    /// `Digits`: numbers split off, each digit alone when `individualDigits`.
    case digits(individualDigits: Bool)
    /// SentencePiece's `Metaspace`: spaces become `replacement`, which then starts each word.
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme, split: Bool)

    /// Applies the pre-tokenizer to every piece, in order.
    func apply(_ pieces: [Piece]) -> [Piece] {
        switch self {
        case .sequence(let steps):
            return steps.reduce(pieces) { current, step in step.apply(current) }
        case .byteLevel(let addPrefixSpace, let useRegex):
            return pieces.flatMap { PreTokenizer.byteLevel($0, addPrefixSpace: addPrefixSpace, useRegex: useRegex) }
        case .split(let splitter):
            return pieces.flatMap { PreTokenizer.split($0, with: splitter) }
        case .digits(let individualDigits):
            return pieces.flatMap { PreTokenizer.digits($0, individual: individualDigits) }
        case .metaspace(let replacement, let scheme, let split):
            return pieces.flatMap { PreTokenizer.metaspace($0, replacement: replacement, scheme: scheme, split: split) }
        }
    }

    /// Cuts `piece` at the given end offsets (into `scalars`), dropping empty parts.
    static func cut(_ piece: Piece, scalars: [Unicode.Scalar], ends: [Int]) -> [Piece] {
        var result: [Piece] = []
        result.reserveCapacity(ends.count)
        var start = 0
        for end in ends where end > start {
            result.append(Piece(scalars: Array(scalars[start..<end]), atOrigin: piece.atOrigin && start == 0))
            start = end
        }
        return result
    }

    static func byteLevel(_ piece: Piece, addPrefixSpace: Bool, useRegex: Bool) -> [Piece] {
        var scalars = piece.scalars
        if addPrefixSpace, scalars.first != " " { scalars.insert(" ", at: 0) }
        guard useRegex else { return [Piece(scalars: ByteLevel.encode(scalars[...]), atOrigin: piece.atOrigin)] }
        var ends: [Int] = []
        RegexSplitter.gpt2.appendMatchEnds(of: scalars[...], to: &ends)
        var result: [Piece] = []
        result.reserveCapacity(ends.count)
        var start = 0
        for end in ends {
            result.append(
                Piece(scalars: ByteLevel.encode(scalars[start..<end]), atOrigin: piece.atOrigin && start == 0)
            )
            start = end
        }
        return result
    }

    static func split(_ piece: Piece, with splitter: RegexSplitter) -> [Piece] {
        var ends: [Int] = []
        splitter.appendMatchEnds(of: piece.scalars[...], to: &ends)
        return cut(piece, scalars: piece.scalars, ends: ends)
    }

    static func digits(_ piece: Piece, individual: Bool) -> [Piece] {
        let scalars = piece.scalars
        var ends: [Int] = []
        var index = 0
        while index < scalars.count {
            let isNumber = ScalarClass.of(scalars[index]) == .number
            var end = index + 1
            if !isNumber || !individual {
                while end < scalars.count, (ScalarClass.of(scalars[end]) == .number) == isNumber { end += 1 }
            }
            ends.append(end)
            index = end
        }
        return cut(piece, scalars: scalars, ends: ends)
    }

    static func metaspace(
        _ piece: Piece,
        replacement: Unicode.Scalar,
        scheme: PrependScheme,
        split: Bool
    ) -> [Piece] {
        var scalars = piece.scalars.map { $0 == " " ? replacement : $0 }
        let prepend = scheme == .always || (scheme == .first && piece.atOrigin)
        if prepend, scalars.first != replacement { scalars.insert(replacement, at: 0) }
        guard split else { return [Piece(scalars: scalars, atOrigin: piece.atOrigin)] }
        // Behaviour MergedWithNext: every replacement starts a new word.
        var ends: [Int] = []
        for (index, scalar) in scalars.enumerated() where scalar == replacement && index > 0 { ends.append(index) }
        ends.append(scalars.count)
        return cut(piece, scalars: scalars, ends: ends)
    }
}
