// SPDX-License-Identifier: Apache-2.0
// TokenEmbedding: embedding lookups and the LM head, read from the mmap'd checkpoint on demand.

/// A `(vocabulary, width)` table left in the checkpoint: rows are converted to fp32 only when used.
///
/// As an embedding it converts just the rows of the requested tokens. As an LM head it streams the
/// table through a `chunkRows × width` buffer, so the fp32 copy of a large vocabulary never exists.
struct TokenEmbedding: Sendable {
    let reader: WeightReader
    let tensorName: String
    let vocabularySize: Int
    let width: Int
    /// Rows per LM-head chunk (4096 × 4096 × 4 B = 64 MiB at most for a 4096-wide model).
    static let chunkRows = 4096

    /// - Throws: `ModelLoadError` when the tensor is missing, not float or not `(vocabulary, width)`.
    init(reader: WeightReader, tensorName: String, vocabularySize: Int, width: Int) throws {
        _ = try reader.checkedInfo(tensorName, shape: [vocabularySize, width])
        self.reader = reader
        self.tensorName = tensorName
        self.vocabularySize = vocabularySize
        self.width = width
    }

    /// Rows of the given tokens.
    /// - Returns: `(tokens.count, width)`.
    /// - Throws: `ModelLoadError.tokenOutOfRange`, `.nonFiniteWeight`.
    func lookup(_ tokens: [Int]) throws -> Matrix {
        for (position, token) in tokens.enumerated() where !(0..<vocabularySize).contains(token) {
            throw ModelLoadError.tokenOutOfRange(token: token, position: position, vocabularySize: vocabularySize)
        }
        let info = try reader.checkedInfo(tensorName, shape: [vocabularySize, width])
        var out = Matrix(rows: tokens.count, columns: width)
        try out.storage.withUnsafeMutableBufferPointer { po in
            for (row, token) in tokens.enumerated() {
                let destination = UnsafeMutableBufferPointer(rebasing: po[(row * width)..<((row + 1) * width)])
                try reader.readRows(tensorName, info: info, range: token..<(token + 1), into: destination)
            }
        }
        // Scattered rows of a large table: drop the touched pages rather than let them accumulate.
        reader.source.releasePages(named: tensorName)
        return out
    }

    /// The table as an output projection: `logits = x · Eᵀ`.
    /// - Parameter x: `(L, width)`.
    /// - Returns: `(L, vocabulary)`.
    func project(_ x: Matrix) throws -> Matrix {
        precondition(x.columns == width, "LM head: input width \(x.columns), table width \(width)")
        let info = try reader.checkedInfo(tensorName, shape: [vocabularySize, width])
        var logits = Matrix(rows: x.rows, columns: vocabularySize)
        var chunk = [Float](repeating: 0, count: min(Self.chunkRows, vocabularySize) * width)
        let vocabulary = vocabularySize
        try x.storage.withUnsafeBufferPointer { px in
            try logits.storage.withUnsafeMutableBufferPointer { pl in
                try chunk.withUnsafeMutableBufferPointer { pc in
                    var start = 0
                    while start < vocabulary {
                        let end = min(start + Self.chunkRows, vocabulary)
                        let rows = end - start
                        let slice = UnsafeMutableBufferPointer(rebasing: pc[0..<(rows * width)])
                        try reader.readRows(tensorName, info: info, range: start..<end, into: slice)
                        // logits[:, start..<end] = X (L, w) · chunkᵀ (w, rows).
                        Linalg.gemm(
                            m: x.rows,
                            n: rows,
                            k: width,
                            a: px.baseAddress,
                            lda: width,
                            b: pc.baseAddress,
                            ldb: width,
                            transposeB: true,
                            c: pl.baseAddress.map { $0 + start },
                            ldc: vocabulary
                        )
                        start = end
                    }
                }
            }
        }
        return logits
    }
}
