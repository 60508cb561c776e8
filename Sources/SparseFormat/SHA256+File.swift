// SPDX-License-Identifier: Apache-2.0
// SHA256+File: hashing a file on disk in bounded memory, for the output manifest.

public import DSnoTSupport

extension SHA256 {
    /// SHA-256 of the file at `path`, read in 1 MiB chunks.
    /// - Throws: `SparseFormatError.io`.
    public static func hash(fileAt path: String) throws -> Digest {
        var hasher = SHA256()
        try FileIO.forEachChunk(of: path) { hasher.update($0) }
        return hasher.finalize()
    }
}
