// SPDX-License-Identifier: Apache-2.0
// dsnotd.toml: a full file parses; every kind of mistake names its key and line.

import DSnoTCore
import DSnoTPipeline
import Foundation
import Logging
import Testing

@testable import DSnoTDaemon

@Suite struct ConfigurationTests {
    let base = URL(fileURLWithPath: "/etc/dsnot")

    func parse(_ source: String) throws(ConfigurationError) -> DaemonConfiguration {
        try ConfigurationLoader.parse(source, file: "dsnotd.toml", baseDirectory: base)
    }

    @Test func fullConfigurationParses() throws {
        let configuration = try parse(
            """
            # every key
            state_dir = "/var/lib/dsnot"
            socket = "/run/dsnot/dsnotd.sock"
            admin_group = "dsnot"
            workers = 2
            rescan_interval = 120
            settle = 5.5
            free_disk_margin = "2GiB"
            memory_budget = 17179869184
            log_level = "debug"

            [[watch]]
            name = "llama"
            inbox = "/srv/in"
            outbox = "out"
            priority = 3
            [watch.recipe]
            method = "sparsegpt"
            pattern = "2:4"
            magnitude_scope = "row"
            error_sequences = 4
            [watch.recipe.dsnot]
            max_cycles = "scaled"
            update_threshold = 0.2
            variance_power = 2
            same_sign = true
            skip = ["mlp", "lm_head"]
            accept = "none"
            [watch.recipe.sparsegpt]
            block_size = 64
            dampening = 0.05
            max_retries = 2
            [watch.recipe.calibration]
            source = "text"
            path = "calib.txt"
            sequences = 64
            sequence_length = 512
            seed = 7
            [watch.recipe.output]
            format = "dense"
            compression = "hc-9"
            [watch.recipe.evaluation]
            path = "/data/wiki.txt"
            windows = 3
            max_increase_percent = 5

            [[watch]]
            name = "opt"
            inbox = "/srv/opt-in"
            outbox = "/srv/opt-out"
            paused = true
            """
        )
        #expect(configuration.stateDirectory == "/var/lib/dsnot")
        #expect(configuration.adminGroup == "dsnot")
        #expect(configuration.workers == 2 && configuration.settle == 5.5 && configuration.rescanInterval == 120)
        #expect(configuration.freeDiskMargin == 2 << 30 && configuration.memoryBudget == 16 << 30)
        #expect(configuration.logLevel == .debug)
        #expect(configuration.watches.map(\.name) == ["llama", "opt"])
        let llama = configuration.watches[0]
        #expect(llama.outbox == "/etc/dsnot/out" && llama.priority == 3)
        let expected = PruneJobOptions(
            recipe: Recipe(
                method: .sparsegpt,
                pattern: .nOfM(2, 4),
                magnitudeScope: .row,
                dsnot: DSnoT.Settings(
                    maxCycles: .scaled,
                    updateThreshold: 0.2,
                    variancePower: 2,
                    sameSign: true,
                    skip: ["mlp", "lm_head"],
                    accept: .none,
                    outputCheck: DSnoT.Profile.default.settings.outputCheck,  // not named: the profile's
                    lossCheck: DSnoT.Profile.default.settings.lossCheck
                ),
                sparseGPT: SparseGPT.Settings(blockSize: 64, dampening: 0.05, maxRetries: 2),
                calibration: Recipe.Calibration(
                    path: "/etc/dsnot/calib.txt",
                    sequences: 64,
                    sequenceLength: 512,
                    seed: 7
                )
            ),
            format: .dense,
            evaluation: EvaluationOptions(textPath: "/data/wiki.txt", maxWindows: 3, maxIncreasePercent: 5),
            errorSequences: 4
        )
        #expect(llama.recipe == expected)
        #expect(llama.recipe.recipe.label == "sparsegpt-2of4-dsnot")
        #expect(configuration.watches[1].paused && configuration.watches[1].recipe == .defaults)
    }

    // Each row: a file with one mistake, the key the error must name and the line it must give.
    @Test(arguments: [
        ("workers = 0", "workers", 1),
        ("\n\nworkrs = 1", "workrs", 3),
        ("log_level = \"loud\"", "log_level", 1),
        ("settle = \"soon\"", "settle", 1),
        ("free_disk_margin = \"2 parsecs\"", "free_disk_margin", 1),
        ("[[watch]]\nname = \"a\"\ninbox = \"/i\"\noutbox = \"/o\"\ncolour = 1", "watch[0].colour", 5),
        ("[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\npattern = 1.5", "watch[0].recipe.pattern", 5),
        (
            "[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\nmethod = \"sparsegtp\"",
            "watch[0].recipe.method", 5
        ),
        ("[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\npattern = \"3:4\"", "watch[0].recipe.pattern", 5),
        (
            "[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\n[watch.recipe.output]\ncompression = \"hc-13\"",
            "watch[0].recipe.output.compression", 6
        ),
        (
            "[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe.dsnot]\nmax_cycles = -1",
            "watch[0].recipe.dsnot.max_cycles", 5
        ),
        (
            "[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe.dsnot]\nskip = [1]",
            "watch[0].recipe.dsnot.skip", 5
        ),
        (
            "[[watch]]\ninbox = \"/a\"\noutbox = \"/b\"\n\n[[watch]]\ninbox = \"/c\"\noutbox = \"/d\"\n[watch.recipe.calibration]\nsequences = -1",
            "watch[1].recipe.calibration.sequences", 9
        ),
        (
            "[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe.calibration]\nsequences = \"many\"",
            "watch[0].recipe.calibration.sequences", 5
        ),
        ("[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\nsparsity = 0.5", "watch[0].recipe.sparsity", 5),
        (
            "[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe.dsnot]\nmax_cycles = 0\ncycles = 1",
            "watch[0].recipe.dsnot.cycles", 6
        ),
        (
            "[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe.evaluation]\nmax_increase_percent = 5",
            "watch[0].recipe.evaluation.path", 4
        ),
        (
            "[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\nmagnitude_scope = \"column\"",
            "watch[0].recipe.magnitude_scope", 5
        ),
        (
            "[[watch]]\nname = \"x\"\ninbox = \"/i\"\noutbox = \"/o\"\n[[watch]]\nname = \"x\"\ninbox = \"/j\"\noutbox = \"/p\"",
            "watch[1].name", 6
        ),
        ("workers = 1\nmetrics_listen = \"0.0.0.0:9464\"", "metrics_listen", 2),
        ("metrics_listen = 9464", "metrics_listen", 1),
        ("job_store = \"mysql\"", "job_store", 1),
        ("node_name = \"node a\"", "node_name", 1),
        ("[postgresql]\nurl = \"postgresql://u@h/d\"", "postgresql", 1),
        ("job_store = \"postgresql\"\n[postgresql]\nurl = \"mysql://u@h/d\"", "postgresql.url", 3),
        ("job_store = \"postgresql\"\n[postgresql]\nurl = \"postgresql://u@h/d\"\nlease = 0", "postgresql.lease", 4),
        ("job_store = \"postgresql\"\n[postgresql]\nurl = \"postgresql://u@h/d\"\nleese = 30", "postgresql.leese", 4),
        (
            "job_store = \"postgresql\"\n[postgresql]\nurl = \"postgresql://u:pw@h/d\"\npassword_file = \"/p\"",
            "postgresql.password_file", 4
        ),
    ])
    func mistakesNameTheirKeyAndLine(_ source: String, _ key: String, _ line: Int) {
        do {
            _ = try parse(source)
            Issue.record("accepted: \(source)")
        } catch {
            #expect(error.key == key, "\(error)")
            #expect(error.line == line, "\(error)")
            #expect(error.description.contains("dsnotd.toml:\(line)"), "\(error)")
        }
    }

    /// `resume` defaults to true; `false` turns resume points off; anything but a boolean is refused.
    @Test func resumeIsABooleanDefaultingToTrue() throws {
        #expect(try parse("workers = 1").resume)
        #expect(try parse("resume = true").resume)
        #expect(try !parse("resume = false").resume)
        do {
            _ = try parse("resume = \"yes\"")
            Issue.record("accepted a string")
        } catch {
            #expect(error.key == "resume" && error.description.contains("true or false"), "\(error)")
        }
    }

    @Test func syntaxErrorGivesLineAndColumn() {
        #expect(throws: ConfigurationError.self) { try parse("workers = 1\nsettle = = 3") }
        do {
            _ = try parse("workers = 1\nsettle = = 3")
        } catch {
            #expect(error.line == 2, "\(error)")
        }
    }

    @Test func missingInboxIsNamed() {
        do {
            _ = try parse("[[watch]]\noutbox = \"/o\"")
            Issue.record("accepted")
        } catch {
            #expect(error == .missingKey(file: "dsnotd.toml", key: "watch[0].inbox"))
        }
    }

    @Test func metricsAreOffUnlessAListenAddressIsGiven() throws {
        #expect(try parse("workers = 1").metricsListen == nil)
        #expect(try parse("metrics_listen = \"\"").metricsListen == nil)
        #expect(try parse("metrics_listen = \"127.0.0.1:9464\"").metricsListen == .tcp(host: "127.0.0.1", port: 9464))
        #expect(try parse("metrics_listen = \"/run/dsnot/m.sock\"").metricsListen == .unix(path: "/run/dsnot/m.sock"))
        do {
            _ = try parse("metrics_listen = \"0.0.0.0:9464\"")
            Issue.record("accepted a non-loopback address")
        } catch {
            #expect(error.description.contains("loopback") && error.description.contains("0.0.0.0:9464"), "\(error)")
        }
    }

    @Test func fileWithoutDirectoriesUsesTheSystemOnes() throws {
        let configuration = try parse("workers = 1")
        #expect(configuration.stateDirectory == "/var/lib/dsnot")
        #expect(configuration.socketPath == "/run/dsnotd.sock")
        #expect(configuration.watches.isEmpty)
    }

    @Test func defaultWorksUnprivilegedInTheCurrentDirectory() {
        let configuration = DaemonConfiguration.unprivilegedDefault(in: "/home/me/work")
        #expect(configuration.stateDirectory == "/home/me/work/.dsnot/state")
        #expect(configuration.socketPath == ".dsnot/dsnotd.sock")
        #expect(configuration.watches.map(\.inbox) == ["/home/me/work/inbox"])
        #expect(configuration.adminGroup == nil && configuration.workers == 1)
    }

    /// Bad values name the key, what was expected and what was got, in the file's words.
    @Test func badValuesSayExpectedAndGot() {
        let cases: [(String, String)] = [
            (
                "method = \"sparsegtp\"",
                "method: expected one of \"magnitude\", \"wanda\", \"sparsegpt\", got \"sparsegtp\""
            ),
            ("pattern = 1.5", "pattern: expected a sparsity ratio in (0, 1), got 1.5"),
            (
                "[watch.recipe.dsnot]\nmax_cycles = \"lots\"",
                "max_cycles: expected an integer ≥ 0 or \"scaled\", got \"lots\""
            ),
            ("[watch.recipe.calibration]\nsequences = \"many\"", "sequences: expected an integer, got \"many\""),
            ("[watch.recipe.calibration]\nseed = -1", "seed: expected an integer in 0...18446744073709551615, got -1"),
            (
                "[watch.recipe.output]\ncompression = \"none\"",
                "compression: expected fast or hc[-N] for --format sparse"
            ),
            ("pattern = nan", "watch[0].recipe.pattern: expected a finite number, got nan"),
            (
                "[watch.recipe.dsnot]\nupdate_threshold = inf",
                "dsnot.update_threshold: expected a finite number, got inf"
            ),
        ]
        for (recipe, message) in cases {
            do {
                _ = try parse("[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\n" + recipe)
                Issue.record("accepted: \(recipe)")
            } catch {
                #expect(error.description.hasPrefix("dsnotd.toml:"), "\(error)")
                #expect(error.description.contains(message), "\(error)")
            }
        }
    }

    /// `job_store` defaults to SQLite with the hostname as node name; `postgresql` reads `[postgresql]`:
    /// TCP and libpq's Unix-socket URL, a password file relative to the configuration, lease settings.
    @Test func jobStoreDefaultsToSQLiteAndPostgreSQLReadsItsTable() throws {
        let plain = try parse("workers = 1")
        #expect(plain.jobStore == .sqlite && plain.postgresql == nil)
        #expect(plain.nodeName == ProcessInfo.processInfo.hostName)
        let tcp = try parse(
            """
            job_store = "postgresql"
            node_name = "gpu-01"
            [postgresql]
            url = "postgresql://dsnot@db.example:6543/jobs"
            password_file = "secrets/pg"
            lease = 20
            lease_settle = 5
            """
        )
        let postgresql = try #require(tcp.postgresql)
        #expect(tcp.jobStore == .postgresql && tcp.nodeName == "gpu-01")
        #expect(postgresql.url.endpoint == .tcp(host: "db.example", port: 6543))
        #expect(postgresql.url.user == "dsnot" && postgresql.url.database == "jobs" && postgresql.url.password == nil)
        #expect(postgresql.passwordFile == "/etc/dsnot/secrets/pg")
        #expect(postgresql.leaseSeconds == 20 && postgresql.settleSeconds == 5)
        let socket = try #require(
            try parse(
                "job_store = \"postgresql\"\n[postgresql]\nurl = \"postgresql://dsnot@/jobs?host=/run/postgresql\""
            ).postgresql
        )
        #expect(socket.url.endpoint == .unixSocket(directory: "/run/postgresql", port: 5432))
        #expect(socket.url.socketPath == "/run/postgresql/.s.PGSQL.5432")
        #expect(socket.leaseSeconds == 30 && socket.settleSeconds == 30)
        // The password never shows in the URL's description (logs, errors).
        let secret = try PostgreSQLURL(parsing: "postgresql://dsnot:hunter2@db/jobs")
        #expect(secret.password == "hunter2" && !secret.description.contains("hunter2"))
    }

    /// A PostgreSQL job store without its table, and URLs that are not what libpq accepts.
    @Test func postgresqlMistakesSayExpectedAndGot() {
        let cases: [(String, String)] = [
            ("job_store = \"postgresql\"", "dsnotd.toml: missing required key 'postgresql.url'"),
            (
                "job_store = \"postgresql\"\n[postgresql]\nurl = \"postgresql://dsnot@/jobs?host=run\"",
                "host= must be an absolute socket directory, got \"run\""
            ),
            ("job_store = \"postgresql\"\n[postgresql]\nurl = \"postgresql://@db/jobs\"", "(no user"),
            ("job_store = \"postgresql\"\n[postgresql]\nurl = \"postgresql://u@db\"", "(no database name"),
            (
                "job_store = \"postgresql\"\n[postgresql]\nurl = \"postgresql://u@db/j?sslmode=require\"",
                "sslmode \"require\" is not supported"
            ),
            ("job_store = \"sqlite\"\n[postgresql]\nurl = \"postgresql://u@db/j\"", "only read with job_store"),
        ]
        for (source, message) in cases {
            do {
                _ = try parse(source)
                Issue.record("accepted: \(source)")
            } catch {
                #expect(error.description.hasPrefix("dsnotd.toml"), "\(error)")
                #expect(error.description.contains(message), "\(error)")
            }
        }
    }

    /// The core's range is the daemon's: `max_cycles = 0` (no swaps) is a valid DSnoT setting.
    @Test func maxCyclesZeroIsAccepted() throws {
        let watch = try #require(
            try parse("[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe.dsnot]\nmax_cycles = 0").watches.first
        )
        #expect(watch.recipe.recipe.dsnot?.maxCycles == .fixed(0))
    }

    func watch(_ recipe: String = "") throws -> WatchConfiguration {
        try #require(try parse("[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\n" + recipe).watches.first)
    }

    @Test func checkpointDsnotTomlOverridesTheWatchRecipe() throws {
        let watch = try watch("method = \"magnitude\"\n[watch.recipe.dsnot]\nmax_cycles = 7")
        let options = try watch.recipe(
            dsnotTOML: "[recipe]\npattern = 0.7\ncalibration.path = \"c.txt\"\ndsnot.same_sign = true",
            file: "/in/m/dsnot.toml",
            checkpoint: "/in/m"
        )
        #expect(options.recipe.pattern == .unstructured(0.7) && options.recipe.method == .magnitude)
        #expect(options.recipe.calibration.path == "/in/m/c.txt")
        var expectedDSnoT = DSnoT.Profile.default.settings
        expectedDSnoT.maxCycles = .fixed(7)
        expectedDSnoT.sameSign = true
        #expect(options.recipe.dsnot == expectedDSnoT)
        do {
            _ = try watch.recipe(dsnotTOML: "\n[recipe]\nsparsty = 0.7", file: "/in/m/dsnot.toml", checkpoint: "/in/m")
            Issue.record("accepted")
        } catch {
            #expect(error == .unknownKey(file: "/in/m/dsnot.toml", line: 3, key: "recipe.sparsty"))
        }
    }

    @Test func submitOverridesTakeDottedKeysAndBareStrings() throws {
        let options = try watch().recipe(
            dsnotTOML: nil,
            file: "dsnot.toml",
            checkpoint: "/",
            overrides: ["method": "sparsegpt", "pattern": "2:4", "dsnot": "false", "calibration.sequences": "16"]
        )
        #expect(options.recipe.method == .sparsegpt && options.recipe.pattern == .nOfM(2, 4))
        #expect(options.recipe.dsnot == nil && options.recipe.calibration.sequences == 16)
        #expect(options.recipe.label == "sparsegpt-2of4")
        let scaled = try watch().recipe(
            dsnotTOML: nil,
            file: "dsnot.toml",
            checkpoint: "/",
            overrides: ["dsnot.max_cycles": "scaled"]
        )
        #expect(scaled.recipe.dsnot?.maxCycles == .scaled)
        #expect(throws: ConfigurationError.self) {
            try watch().recipe(dsnotTOML: nil, file: "dsnot.toml", checkpoint: "/", overrides: ["bad key": "1"])
        }
        let plain = try watch()
        do {
            _ = try plain.recipe(dsnotTOML: nil, file: "d", checkpoint: "/", overrides: ["calibration.seed": "x"])
            Issue.record("accepted")
        } catch {
            #expect(error.key == "calibration.seed" && error.description.hasPrefix("overrides: "), "\(error)")
        }
    }

    /// The label in output names is as before for the recipes that existed.
    @Test func labelsAreStable() throws {
        #expect(try watch().recipe.recipe.label == "wanda-u50-dsnot")
        #expect(try watch("pattern = 0.7\nmethod = \"magnitude\"").recipe.recipe.label == "magnitude-u70-dsnot")
        #expect(try watch("pattern = \"4:8\"\ndsnot = false").recipe.recipe.label == "wanda-4of8")
    }

    @Test func jobHashChangesWithAnyField() throws {
        let base = try watch().recipe
        var other = base
        other.recipe.calibration.seed = 1
        #expect(base.stableHash != other.stableHash)
        var format = base
        format.format = .dense
        #expect(base.stableHash != format.stableHash)
        #expect(base.stableHash == PruneJobOptions.defaults.stableHash && base.stableHash.count == 64)
    }
}
