// SPDX-License-Identifier: Apache-2.0
// `dsnotctl unpack OUTDIR DEST [--dense]`: decompress a sparse output.

import ArgumentParser
import Foundation
import SparseFormat

extension DsnotCtl {
    struct Unpack: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decompress a dsnot output to the compressed-tensors layout, or to a dense checkpoint.",
            discussion: """
                Without --dense, DEST holds the sparse-bitmask safetensors files (what `lz4 -d` gives). \
                With --dense, DEST is a plain checkpoint with zeros in place and no sparsity metadata, \
                which transformers and vLLM load. Each shard is written while its frame decodes, in \
                memory of the order of its largest tensor rather than of the shard. DEST must not \
                exist; it is published atomically.
                """
        )

        @Argument(help: "A dsnot output directory.") var outputDirectory: String
        @Argument(help: "Destination directory; must not exist.") var destination: String
        @Flag(help: "Write a dense checkpoint (zeros in place).") var dense = false
        @Flag(help: "Print the summary as JSON.") var json = false

        func run() throws {
            do {
                let summary = try SparseUnpacker.unpack(
                    outputDirectory: outputDirectory,
                    destination: destination,
                    mode: dense ? .dense : .compressedTensors
                )
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    print(String(decoding: try encoder.encode(summary), as: UTF8.self))
                } else {
                    print("\(destination): unpacked (\(dense ? "dense" : "compressed-tensors"))")
                }
            } catch { throw failOffline(error) }
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show per-tensor shape, dtype, sparsity, pattern and bytes of a dsnot output or a checkpoint."
        )

        @Argument(help: "A dsnot output directory or one of its files.") var path: String
        @Flag(help: "Print the report as JSON.") var json = false

        func run() throws {
            do {
                let report = try SparseInspector.inspect(path: path)
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    print(String(decoding: try encoder.encode(report), as: UTF8.self))
                } else {
                    print(SparseInspector.render(report))
                }
            } catch { throw failOffline(error) }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a dsnot output: file checksums against dsnot-report.json, frames, bitmasks, index.",
            discussion: "Exit status: 0 when the output verifies, 1 otherwise (the first problem is printed)."
        )

        @Argument(help: "A dsnot output directory.") var directory: String
        @Flag(help: "Print the report as JSON.") var json = false

        func run() throws {
            do {
                let report = try SparseVerifier.verify(directory: directory)
                if json {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                    print(String(decoding: try encoder.encode(report), as: UTF8.self))
                } else {
                    print("\(directory): ok")
                }
            } catch { throw failOffline(error) }
        }
    }
}
