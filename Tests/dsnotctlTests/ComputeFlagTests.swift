// SPDX-License-Identifier: Apache-2.0
// `dsnotctl prune --compute` and `dsnotctl eval --compute` on the built binary: the report says which
// format ran; a process that may not make memory executable (PR_SET_MDWE, what systemd's
// MemoryDenyWriteExecute=yes sets) falls back to fp32 with a notice; bad values are clear errors.

import DSnoTCore
import DSnoTTestSupport
import Foundation
import Testing

@Suite(.serialized) struct ComputeFlagTests {
    /// `dsnotctl prune` of the six-block test model, Wanda 50 % without DSnoT, with `extra` flags;
    /// `prefix` runs before the binary (a wrapper that execs it).
    static func prune(_ extra: [String], prefix: [String] = []) throws -> (output: Output, report: [String: Any]?) {
        let scratch = try CrashRecoveryTests.scratchWithModel("dsnot-compute")
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let command =
            prefix + [
                try Binaries.path("dsnotctl"), "prune", scratch + "/model", scratch + "/out", "--calib-tokens",
                scratch + "/calib.safetensors", "--no-dsnot", "--json",
            ] + extra
        let output = try runProgram(command[0], Array(command.dropFirst()))
        let report = try? JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any]
        return (output, report)
    }

    @Test func bf16IsInTheRecipeAndTheReportSaysWhatRan() throws {
        let (output, report) = try Self.prune(["--compute", "bf16"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect((report?["recipe"] as? [String: Any])?["compute"] as? String == "bf16")
        #expect(report?["compute"] as? String == ComputeFormat.bf16.effective.format.rawValue)
        let (fp32Output, fp32Report) = try Self.prune([])
        #expect(fp32Output.status == 0, "\(fp32Output.stderr)")
        #expect(fp32Report?["compute"] as? String == "fp32")
        #expect(fp32Report?["recipe_hash"] as? String != report?["recipe_hash"] as? String)
    }

    /// With PR_SET_MDWE (refuse exec gain) set before exec, oneDNN cannot build its kernels: the run
    /// is fp32, says so on stderr, and succeeds.
    @Test(
        .enabled(
            if: ComputeFormat.bf16.effective.format == .bf16,
            "without AVX-512 BF16 the run is fp32 before oneDNN is asked"
        )
    )
    func aProcessThatMayNotMakeMemoryExecutableRunsFP32WithANotice() throws {
        let python = try #require(ExternalProcess.python, "DSNOT_PYTHON (make test sets it)")
        let wrapper = [
            python, "-c",
            "import ctypes, os, sys\n"
                + "assert ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) == 0, 'PR_SET_MDWE'\n"  // PR_MDWE_REFUSE_EXEC_GAIN
                + "os.execv(sys.argv[1], sys.argv[1:])",
        ]
        let (output, report) = try Self.prune(["--compute", "bf16"], prefix: wrapper)
        #expect(output.status == 0, "\(output.stderr)")
        #expect(report?["compute"] as? String == "fp32")
        #expect(output.stderr.contains("oneDNN cannot build its kernels"), "\(output.stderr)")
    }

    @Test func anUnknownFormatIsAClearError() throws {
        let (output, _) = try Self.prune(["--compute", "fp16"])
        #expect(output.status != 0)
        #expect(output.stderr.contains("--compute") && output.stderr.contains("\"bf16\""), "\(output.stderr)")
        let eval = try runProgram(
            try Binaries.path("dsnotctl"),
            ["eval", "/nonexistent", "--text", "/nonexistent", "--compute", "fp16"]
        )
        #expect(
            eval.status != 0 && eval.stderr.contains("--compute: expected fp32 or bf16, got fp16"),
            "\(eval.stderr)"
        )
    }
}
