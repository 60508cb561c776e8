// SPDX-License-Identifier: Apache-2.0
// One recipe schema: dsnotd.toml, a checkpoint's dsnot.toml, `submit --set` and `dsnotctl prune` flags give
// the same PruneJobOptions and hash; every flag has a key and every key a flag; stored recipes round-trip.

import ArgumentParser
import DSnoTCore
import DSnoTPipeline
import Foundation
import Testing

@testable import DSnoTDaemon
@testable import dsnotctl

@Suite struct RecipeSchemaTests {
    /// One recipe in the four spellings.
    struct Spellings: Sendable, CustomStringConvertible {
        var name: String
        /// The body of `[watch.recipe]` (sub-tables allowed) in dsnotd.toml.
        var daemon: String
        /// A checkpoint's dsnot.toml (with `[recipe]` or keys at the top).
        var dsnotTOML: String
        var overrides: [String: String]
        var flags: [String]
        var description: String { name }
    }

    static let rows: [Spellings] = [
        Spellings(
            name: "defaults",
            daemon: "[watch.recipe.calibration]\npath = \"/c/calib.txt\"",
            dsnotTOML: "calibration.path = \"/c/calib.txt\"",
            overrides: ["calibration.path": "/c/calib.txt"],
            flags: ["--calib-text", "/c/calib.txt"]
        ),
        Spellings(
            name: "sparsegpt 2:4, scaled DSnoT, tokens, hc-9 byte planes, gate",
            daemon: """
                method = "sparsegpt"
                pattern = "2:4"
                [watch.recipe.dsnot]
                max_cycles = "scaled"
                same_sign = true
                skip = []
                [watch.recipe.sparsegpt]
                block_size = 64
                dampening = 0.05
                max_retries = 1
                [watch.recipe.calibration]
                source = "tokens"
                path = "/c/ids.safetensors"
                sequences = 32
                sequence_length = 512
                seed = 7
                [watch.recipe.output]
                compression = "hc-9"
                byte_planes = true
                [watch.recipe.evaluation]
                path = "/c/eval.txt"
                sequence_length = 256
                windows = 3
                max_increase_percent = 12.5
                """,
            dsnotTOML: """
                [recipe]
                method = "sparsegpt"
                pattern = "2:4"
                dsnot = { max_cycles = "scaled", same_sign = true, skip = [] }
                sparsegpt = { block_size = 64, dampening = 0.05, max_retries = 1 }
                calibration = { source = "tokens", path = "/c/ids.safetensors", sequences = 32, sequence_length = 512, seed = 7 }
                output = { compression = "hc-9", byte_planes = true }
                evaluation = { path = "/c/eval.txt", sequence_length = 256, windows = 3, max_increase_percent = 12.5 }
                """,
            overrides: [
                "method": "sparsegpt", "pattern": "2:4", "dsnot.max_cycles": "scaled", "dsnot.same_sign": "true",
                "dsnot.skip": "[]", "sparsegpt.block_size": "64", "sparsegpt.dampening": "0.05",
                "sparsegpt.max_retries": "1", "calibration.source": "tokens", "calibration.path": "/c/ids.safetensors",
                "calibration.sequences": "32", "calibration.sequence_length": "512", "calibration.seed": "7",
                "output.compression": "hc-9", "output.byte_planes": "true", "evaluation.path": "/c/eval.txt",
                "evaluation.sequence_length": "256", "evaluation.windows": "3",
                "evaluation.max_increase_percent": "12.5",
            ],
            flags: [
                "--method", "sparsegpt", "--pattern", "2:4", "--dsnot-max-cycles", "scaled", "--dsnot-same-sign",
                "--dsnot-skip", "none", "--sparsegpt-block-size", "64", "--sparsegpt-dampening", "0.05",
                "--sparsegpt-max-retries", "1", "--calib-tokens", "/c/ids.safetensors", "--nsamples", "32",
                "--seqlen", "512", "--seed", "7", "--compression", "hc-9", "--byte-planes", "--eval-text",
                "/c/eval.txt", "--eval-seqlen", "256", "--eval-windows", "3", "--max-ppl-increase", "12.5",
            ]
        ),
        Spellings(
            name: "magnitude per row without DSnoT, dense, bf16 compute",
            daemon: """
                method = "magnitude"
                pattern = 0.7
                magnitude_scope = "row"
                dsnot = false
                compute = "bf16"
                output = { format = "dense" }
                """,
            dsnotTOML:
                "method = \"magnitude\"\npattern = 0.7\nmagnitude_scope = \"row\"\ndsnot = false\ncompute = \"bf16\"\noutput.format = \"dense\"",
            overrides: [
                "method": "magnitude", "pattern": "0.7", "magnitude_scope": "row", "dsnot": "false",
                "compute": "bf16", "output.format": "dense",
            ],
            flags: [
                "--method", "magnitude", "--sparsity", "0.7", "--magnitude-scope", "row", "--no-dsnot", "--compute",
                "bf16", "--format", "dense",
            ]
        ),
        Spellings(
            name: "wanda 60 %, DSnoT with true-error acceptance",
            daemon: """
                pattern = 0.6
                error_sequences = 4
                [watch.recipe.dsnot]
                accept = "true-error"
                update_threshold = 0.2
                variance_power = 2
                max_cycles = 0
                [watch.recipe.calibration]
                path = "/c/calib.txt"
                sequences = 16
                """,
            dsnotTOML: """
                pattern = 0.6
                error_sequences = 4
                calibration.path = "/c/calib.txt"
                calibration.sequences = 16
                [dsnot]
                accept = "true-error"
                update_threshold = 0.2
                variance_power = 2.0
                max_cycles = 0
                """,
            overrides: [
                "pattern": "0.6", "error_sequences": "4", "dsnot.accept": "true-error", "dsnot.update_threshold": "0.2",
                "dsnot.variance_power": "2", "dsnot.max_cycles": "0", "calibration.path": "/c/calib.txt",
                "calibration.sequences": "16",
            ],
            flags: [
                "--sparsity", "0.6", "--error-sequences", "4", "--dsnot-accept", "true-error", "--dsnot-threshold",
                "0.2",
                "--dsnot-variance-power", "2", "--dsnot-max-cycles", "0", "--calib-text", "/c/calib.txt",
                "--nsamples", "16",
            ]
        ),
        // DSnoT on without settings: the default profile leaves SparseGPT's masks alone (no DSnoT, the
        // plain SparseGPT recipe and hash) in every spelling, `--dsnot` included.
        Spellings(
            name: "sparsegpt 60 %, DSnoT on by default",
            daemon: "method = \"sparsegpt\"\npattern = 0.6\ndsnot = true\ncalibration.path = \"/c/calib.txt\"",
            dsnotTOML: "method = \"sparsegpt\"\npattern = 0.6\ncalibration.path = \"/c/calib.txt\"",
            overrides: ["method": "sparsegpt", "pattern": "0.6", "dsnot": "true", "calibration.path": "/c/calib.txt"],
            flags: ["--method", "sparsegpt", "--sparsity", "0.6", "--dsnot", "--calib-text", "/c/calib.txt"]
        ),
    ]

    static func watch(_ recipe: String) throws -> WatchConfiguration {
        let source = "[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\n" + recipe
        let configuration = try ConfigurationLoader.parse(
            source,
            file: "dsnotd.toml",
            baseDirectory: URL(fileURLWithPath: "/etc/dsnot")
        )
        return try #require(configuration.watches.first)
    }

    @Test(arguments: rows)
    func everySpellingGivesTheSameRecipeAndHash(_ row: Spellings) throws {
        let daemon = try Self.watch(row.daemon).recipe
        let empty = try Self.watch("")
        let dsnotTOML = try empty.recipe(dsnotTOML: row.dsnotTOML, file: "/m/dsnot.toml", checkpoint: "/m")
        let submit = try empty.recipe(dsnotTOML: nil, file: "/m/dsnot.toml", checkpoint: "/m", overrides: row.overrides)
        let prune = try #require(
            try DsnotCtl.parseAsRoot(["prune", "/m", "/nonexistent/out"] + row.flags) as? DsnotCtl.Prune
        )
        let flags = try prune.makeOptions()
        for (spelling, options) in [("dsnot.toml", dsnotTOML), ("submit --set", submit), ("prune flags", flags)] {
            #expect(options == daemon, "\(spelling)")
            #expect(options.recipe.stableHash == daemon.recipe.stableHash, "\(spelling)")
            #expect(options.stableHash == daemon.stableHash, "\(spelling)")
        }
        if daemon.recipe.method == .sparsegpt && !row.daemon.contains("[watch.recipe.dsnot]") {
            #expect(daemon.recipe.dsnot == nil)
            #expect(
                daemon.recipe
                    == Recipe(
                        method: .sparsegpt,
                        pattern: daemon.recipe.pattern,
                        calibration: daemon.recipe.calibration
                    )
            )
        }
        // What dsnotd stores is the canonical JSON, and it decodes back to the same options.
        #expect(try RecipeDocument.decode(json: daemon.canonicalJSON) == daemon)
    }

    /// The recipe flags, read from `dsnotctl prune --help`: each has recipe keys, and the schema's keys
    /// (from the canonical form of a recipe with every optional part set) each have a flag.
    @Test func everyFlagHasAKeyAndEveryKeyAFlag() throws {
        let help = DsnotCtl.Prune.helpMessage(columns: 10_000)
        let regex = try NSRegularExpression(pattern: "--([a-z][a-z0-9-]*)")
        let range = NSRange(help.startIndex..., in: help)
        var flags = Set(
            regex.matches(in: help, range: range).compactMap {
                Range($0.range(at: 1), in: help).map { String(help[$0]) }
            }
        )
        flags.subtract(["help", "json", "print-recipe", "version"])
        flags = flags.filter { !($0.hasPrefix("no-") && flags.contains(String($0.dropFirst(3)))) }
        #expect(flags == Set(DsnotCtl.Prune.recipeFlags.keys))

        let schema = PruneJobOptions.schemaKeys
        let flagKeys = Set(DsnotCtl.Prune.recipeFlags.values.flatMap { $0 })
        for key in schema {
            #expect(flagKeys.contains { key == $0 || key.hasPrefix($0 + ".") }, "no flag sets \(key)")
        }
        for key in flagKeys {
            #expect(schema.contains { $0 == key || $0.hasPrefix(key + ".") }, "\(key) is not a recipe key")
        }
    }

    /// A bad flag value names the flag, the value and what was expected, in the schema's words.
    @Test(arguments: [
        (
            ["--method", "sparsegtp"],
            #"invalid --method 'sparsegtp': expected one of "magnitude", "wanda", "sparsegpt""#
        ),
        (["--nsamples", "0", "--calib-text", "c"], "invalid --nsamples '0': expected > 0"),
        (
            ["--dsnot-max-cycles", "lots", "--calib-text", "c"],
            #"invalid --dsnot-max-cycles 'lots': expected an integer ≥ 0 or "scaled""#
        ),
        (
            ["--sparsity", "1.5", "--calib-text", "c"],
            "invalid --pattern/--sparsity '1.5': expected a sparsity ratio in (0, 1)"
        ),
        ([], "invalid --calib-text/--calib-tokens 'none': expected a text file for method wanda"),
        (
            ["--compression", "hc-2", "--calib-text", "c"],
            "invalid --compression 'hc-2': expected fast, hc, hc-N (N in 3...12) or none"
        ),
    ])
    func badFlagValuesNameFlagExpectedAndGot(_ flags: [String], _ message: String) throws {
        let prune = try #require(
            try DsnotCtl.parseAsRoot(["prune", "/m", "/nonexistent/out"] + flags) as? DsnotCtl.Prune
        )
        #expect(throws: PruneJobError.self) { try prune.makeOptions() }
        do {
            _ = try prune.makeOptions()
        } catch {
            #expect("\(error)" == message)
        }
    }

    /// Every key of the schema, written with a value in dsnotd.toml, is accepted and read back as written.
    @Test func daemonTOMLTakesEveryKeyOfTheSchema() throws {
        var full = PruneJobOptions.defaults
        full.recipe.calibration = Recipe.Calibration(
            source: .tokens,
            path: "/c/ids",
            sequences: 3,
            sequenceLength: 9,
            seed: 5
        )
        full.recipe.dsnot?.skip = ["self_attn"]
        full.format = try OutputFormat.parse(format: "sparse", compression: "hc-5", bytePlanes: true)
        full.evaluation = EvaluationOptions(
            textPath: "/c/e.txt",
            sequenceLength: 64,
            maxWindows: 2,
            maxIncreasePercent: 3
        )
        full.errorSequences = 2
        let parsed = try Self.watch(Self.toml(full.canonicalValue, table: "watch.recipe")).recipe
        #expect(parsed == full)
    }

    /// A canonical value as TOML: scalars first, then one `[table]` per object (nulls left out).
    static func toml(_ value: CanonicalJSON, table: String) -> String {
        guard case .object(let object) = value else { return "" }
        var lines: [String] = []
        var tables: [String] = []
        for key in object.keys.sorted() {
            switch object[key] {
            case .object(let inner)?: tables.append(toml(.object(inner), table: "\(table).\(key)"))
            case .null?, nil: continue
            case let scalar?: lines.append("\(key) = \(scalar.serialized)")
            }
        }
        return (table == "watch.recipe" ? "" : "[\(table)]\n") + (lines + tables).joined(separator: "\n") + "\n"
    }
}
