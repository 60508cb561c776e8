// SPDX-License-Identifier: Apache-2.0
// `dsnotctl prune` with the quality flags (--dsnot-profile, --layer-sparsity owl and its parameters):
// the built binary on a random six-block LLaMA, its --json report read back, and the recipe errors.

import Foundation
import Testing

@Suite(.serialized) struct PruneQualityFlagsTests {
    /// Runs `dsnotctl prune MODEL OUT --calib-tokens … extra --json` in a fresh scratch directory.
    static func prune(_ extra: [String]) throws -> (output: Output, report: [String: Any]?) {
        let scratch = try CrashRecoveryTests.scratchWithModel("dsnot-quality")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let arguments =
            [
                "prune", scratch + "/model", scratch + "/out", "--calib-tokens", scratch + "/calib.safetensors",
                "--json",
            ] + extra
        let output = try runProgram(try Binaries.path("dsnotctl"), arguments)
        let report = try? JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any]
        return (output, report)
    }

    @Test func owlGivesEachBlockItsSparsityWithTheTargetAsMean() throws {
        let (output, report) = try Self.prune([
            "--sparsity", "0.6", "--layer-sparsity", "owl", "--owl-threshold", "2", "--owl-lambda", "0.05",
        ])
        #expect(output.status == 0, "\(output.stderr)")
        let blocks = try #require(report?["blocks"] as? [[String: Any]])
        let sparsities = blocks.compactMap { $0["sparsity"] as? Double }
        #expect(sparsities.count == 6)
        #expect(Set(sparsities).count > 1, "\(sparsities)")
        // Equal block sizes: the plain mean is the target; every block within ±λ.
        #expect(abs(sparsities.reduce(0, +) / 6 - 0.6) < 1e-12)
        #expect(sparsities.allSatisfy { abs($0 - 0.6) <= 0.05 + 1e-12 })
        #expect(blocks.allSatisfy { $0["outlier_ratio"] is Double })
        let recipe = try #require(report?["recipe"] as? [String: Any])
        #expect(recipe["layer_sparsity"] as? String == "owl")
        #expect(recipe["owl_lambda"] as? Double == 0.05)
    }

    @Test func theDefaultProfileChecksAgainstTheDenseModelAndTheReferenceDoesNot() throws {
        let guarded = try Self.prune(["--sparsity", "0.5"])
        #expect(guarded.output.status == 0, "\(guarded.output.stderr)")
        let dsnot = try #require((guarded.report?["recipe"] as? [String: Any])?["dsnot"] as? [String: Any])
        #expect(dsnot["output_check"] as? String == "model")
        #expect(dsnot["max_cycles"] as? String == "scaled")
        #expect(dsnot["loss_check"] as? Bool == true)
        // The loss check scored the token file's last 8 windows (it has no text to draw more from).
        let loss = try #require(guarded.report?["loss_check"] as? [String: Any])
        #expect(loss["windows"] as? Int == 8 && loss["calibration_windows"] as? Bool == true)
        #expect(["refined", "base"].contains(loss["published"] as? String ?? ""))
        #expect(loss["refined_loss"] is Double && loss["base_loss"] is Double && loss["standard_error"] is Double)

        // The block checks, seen in a run without the loss check (a fallback's report is the base run's).
        let blockChecked = try Self.prune(["--sparsity", "0.5", "--no-dsnot-loss-check"])
        #expect(blockChecked.output.status == 0, "\(blockChecked.output.stderr)")
        #expect(blockChecked.report?["loss_check"] == nil)
        let checks = (blockChecked.report?["blocks"] as? [[String: Any]] ?? []).compactMap {
            $0["output_check"] as? [String: Any]
        }
        #expect(!checks.isEmpty)
        for check in checks {
            let kept = try #require(check["kept_error"] as? Double)
            let base = try #require(check["base_error"] as? Double)
            #expect(kept <= base)
            // The token file's 64 windows are used verbatim: min(8, 64 / 4) held out.
            #expect(check["sequences"] as? Int == 8)
        }

        let reference = try Self.prune(["--sparsity", "0.5", "--dsnot-profile", "reference"])
        #expect(reference.output.status == 0, "\(reference.output.stderr)")
        let settings = try #require((reference.report?["recipe"] as? [String: Any])?["dsnot"] as? [String: Any])
        #expect(settings["output_check"] as? String == "none" && settings["loss_check"] as? Bool == false)
        #expect(reference.report?["loss_check"] == nil)
        #expect(settings["max_cycles"] as? Int == 50)
        #expect(settings["skip"] as? [String] == ["mlp"])
        let blocks = reference.report?["blocks"] as? [[String: Any]] ?? []
        #expect(blocks.count == 6 && blocks.allSatisfy { $0["output_check"] == nil })
    }

    /// The default profile leaves SparseGPT's masks alone (docs/algorithms.md): `--dsnot` alone prunes
    /// with SparseGPT only and says so; naming the profile runs DSnoT after SparseGPT.
    @Test func theDefaultProfileDoesNotRefineSparseGPTUnlessAsked() throws {
        let plain = try Self.prune(["--method", "sparsegpt", "--sparsity", "0.5", "--dsnot"])
        #expect(plain.output.status == 0, "\(plain.output.stderr)")
        #expect(plain.output.stderr.contains("notice: the guarded DSnoT profile leaves sparsegpt's masks"))
        let recipe = try #require(plain.report?["recipe"] as? [String: Any])
        #expect(recipe["dsnot"] is NSNull)
        #expect(plain.report?["loss_check"] == nil)
        #expect((plain.report?["totals"] as? [String: Any])?["dsnot_swaps"] as? Int == 0)

        let asked = try Self.prune(["--method", "sparsegpt", "--sparsity", "0.5", "--dsnot-profile", "guarded"])
        #expect(asked.output.status == 0, "\(asked.output.stderr)")
        #expect(!asked.output.stderr.contains("notice:"))
        let dsnot = try #require((asked.report?["recipe"] as? [String: Any])?["dsnot"] as? [String: Any])
        #expect(dsnot["accept"] as? String == "true-error" && dsnot["loss_check"] as? Bool == true)
        #expect(asked.report?["loss_check"] is [String: Any])
    }

    @Test(arguments: [
        (["--pattern", "2:4", "--layer-sparsity", "owl"], "owl"),
        (["--sparsity", "0.6", "--layer-sparsity", "owl", "--owl-lambda", "0.5"], "--owl-lambda"),
        (["--sparsity", "0.6", "--layer-sparsity", "owl", "--owl-threshold", "0"], "--owl-threshold"),
        (["--sparsity", "0.6", "--layer-sparsity", "bimodal"], "layer-sparsity"),
        (["--sparsity", "0.6", "--dsnot-profile", "best"], "dsnot-profile"),
        (["--sparsity", "0.6", "--dsnot-output-check", "rows"], "dsnot-output-check"),
    ])
    func badQualitySettingsAreClearErrors(_ extra: [String], _ named: String) throws {
        let (output, _) = try Self.prune(extra)
        #expect(output.status != 0)
        #expect(output.stderr.contains(named), "\(output.stderr)")
    }
}
