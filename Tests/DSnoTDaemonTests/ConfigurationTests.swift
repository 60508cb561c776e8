// SPDX-License-Identifier: Apache-2.0
// dsnotd.toml: a full file parses; every kind of mistake names its key and line.

import DSnoTDaemon
import Foundation
import Logging
import Testing

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
            dsnot = true
            max_cycles = "scaled"
            update_threshold = 0.2
            variance_power = 2
            same_sign = true
            skip = ["mlp", "lm_head"]
            accept = "true-error"
            calibration_text = "calib.txt"
            nsamples = 64
            seqlen = 512
            seed = 7
            compression = "hc-9"
            format = "dense"
            eval_text = "/data/wiki.txt"
            max_ppl_increase_percent = 5

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
        #expect(llama.recipe.method == .sparsegpt && llama.recipe.pattern == "2:4" && llama.recipe.sparsity == nil)
        #expect(llama.recipe.maxCycles == nil && llama.recipe.updateThreshold == 0.2 && llama.recipe.sameSign)
        #expect(llama.recipe.skip == ["mlp", "lm_head"] && llama.recipe.accept == .trueError)
        #expect(llama.recipe.calibrationText == "/etc/dsnot/calib.txt" && llama.recipe.nsamples == 64)
        #expect(llama.recipe.compression == "hc-9" && llama.recipe.format == .dense)
        #expect(llama.recipe.maxPerplexityIncreasePercent == 5)
        #expect(configuration.watches[1].paused && configuration.watches[1].recipe == RecipeConfiguration())
    }

    // Each row: a file with one mistake, the key the error must name and the line it must give.
    @Test(arguments: [
        ("workers = 0", "workers", 1),
        ("\n\nworkrs = 1", "workrs", 3),
        ("log_level = \"loud\"", "log_level", 1),
        ("settle = \"soon\"", "settle", 1),
        ("free_disk_margin = \"2 parsecs\"", "free_disk_margin", 1),
        ("[[watch]]\nname = \"a\"\ninbox = \"/i\"\noutbox = \"/o\"\ncolour = 1", "watch[0].colour", 5),
        ("[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\nsparsity = 1.5", "watch[0].recipe.sparsity", 5),
        (
            "[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\nmethod = \"sparsegtp\"",
            "watch[0].recipe.method", 5
        ),
        ("[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\npattern = \"3:4\"", "watch[0].recipe.pattern", 5),
        (
            "[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\ncompression = \"hc-13\"",
            "watch[0].recipe.compression", 5
        ),
        ("[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\nmax_cycles = 0", "watch[0].recipe.max_cycles", 5),
        ("[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\nskip = [1]", "watch[0].recipe.skip", 5),
        (
            "[[watch]]\ninbox = \"/a\"\noutbox = \"/b\"\n\n[[watch]]\ninbox = \"/c\"\noutbox = \"/d\"\n[watch.recipe]\nnsamples = -1",
            "watch[1].recipe.nsamples", 9
        ),
        (
            "[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\nsparsity = 0.5\npattern = \"2:4\"",
            "watch[0].recipe.pattern", 6
        ),
        (
            "[[watch]]\ninbox = \"/i\"\noutbox = \"/o\"\n[watch.recipe]\nmax_ppl_increase_percent = 5",
            "watch[0].recipe.max_ppl_increase_percent", 5
        ),
        (
            "[[watch]]\nname = \"x\"\ninbox = \"/i\"\noutbox = \"/o\"\n[[watch]]\nname = \"x\"\ninbox = \"/j\"\noutbox = \"/p\"",
            "watch[1].name", 6
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

    @Test func checkpointDsnotTomlOverridesTheWatchRecipe() throws {
        let recipe = try RecipeConfiguration().overridden(
            byTOML: "[recipe]\nsparsity = 0.7\ncalibration_text = \"c.txt\"",
            file: "dsnot.toml",
            baseDirectory: URL(fileURLWithPath: "/in/m")
        )
        #expect(recipe.sparsity == 0.7 && recipe.method == .wanda && recipe.calibrationText == "/in/m/c.txt")
        #expect(throws: ConfigurationError.self) {
            try RecipeConfiguration().overridden(
                byTOML: "sparsty = 0.7",
                file: "dsnot.toml",
                baseDirectory: URL(fileURLWithPath: "/")
            )
        }
    }

    @Test func submitOverridesAcceptBareStrings() throws {
        let recipe = try RecipeConfiguration().overridden(
            by: ["method": "sparsegpt", "pattern": "2:4", "dsnot": "false", "nsamples": "16"],
            baseDirectory: URL(fileURLWithPath: "/")
        )
        #expect(recipe.method == .sparsegpt && recipe.pattern == "2:4" && !recipe.dsnot && recipe.nsamples == 16)
        #expect(recipe.label == "sparsegpt-2of4")
        #expect(throws: ConfigurationError.self) {
            try RecipeConfiguration().overridden(by: ["bad key": "1"], baseDirectory: URL(fileURLWithPath: "/"))
        }
    }

    @Test func recipeHashChangesWithAnyField() {
        var other = RecipeConfiguration()
        other.seed = 1
        #expect(RecipeConfiguration().hash != other.hash)
        #expect(RecipeConfiguration().hash == RecipeConfiguration().hash)
        #expect(RecipeConfiguration().hash.count == 64)
    }
}
