// SPDX-License-Identifier: Apache-2.0
// Resume points: a run interrupted at a block boundary (or inside a block) and resumed produces output
// byte-identical to an uninterrupted run, for every recipe family; a damaged or foreign resume point is
// ignored (the run starts at block 0) and the output is still exact.

import DSnoTCore
import DSnoTTestSupport
import Foundation
import Logging
import SafeTensors
import SparseFormat
import Testing

@testable import DSnoTPipeline

/// Keeps the messages and `error` metadata of warnings (`Cannot resume, …`).
final class WarningLog: LogHandler, @unchecked Sendable {
    // @unchecked: `entries` is only touched under `lock`.
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .warning
    private let lock = NSLock()
    private var entries: [(message: String, error: String)] = []

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let error = event.metadata?["error"].map { "\($0)" } ?? ""
        lock.withLock { entries.append((event.message.description, error)) }
    }

    var warnings: [(message: String, error: String)] { lock.withLock { entries } }
}

@Suite(.serialized) struct ResumeTests {
    let logger = Logger(label: "test")
    static let blocks = 5

    /// Recipes whose resumed output must equal the uninterrupted one: every base pruner, DSnoT with the
    /// default (guarded: dense-path states) and reference profiles, OWL (allocation), 2:4, both formats.
    enum Variant: String, CaseIterable, CustomTestStringConvertible {
        case magnitude, wanda, sparsegpt, wandaDSnoTDefault, wandaDSnoTReference, owl, twoFour, denseFormat
        case sparsegptDSnoTEvaluated

        var testDescription: String { rawValue }

        func options(root: String) -> PruneJobOptions {
            let calibration = Recipe.Calibration(
                source: .text,
                path: TinyCheckpoint.text,
                sequences: 8,
                sequenceLength: 32,
                seed: 5
            )
            var recipe = Recipe(method: .wanda, pattern: .unstructured(0.5), calibration: calibration)
            var format = OutputFormat.sparse(level: .fast, bytePlanes: false)
            var evaluation: EvaluationOptions?
            switch self {
            case .magnitude: recipe.method = .magnitude
            case .wanda: break
            case .sparsegpt: recipe.method = .sparsegpt
            case .wandaDSnoTDefault: recipe.dsnot = DSnoT.Profile.default.settings(after: .wanda)
            case .wandaDSnoTReference: recipe.dsnot = DSnoT.Profile.reference.settings(after: .wanda)
            case .owl:
                recipe.layerSparsity = .owl
                recipe.pattern = .unstructured(0.6)
            case .twoFour:
                recipe.pattern = .nOfM(2, 4)
                recipe.dsnot = DSnoT.Profile.default.settings(after: .wanda)
            case .denseFormat:
                format = .dense
                recipe.dsnot = DSnoT.Profile.default.settings(after: .wanda)
            case .sparsegptDSnoTEvaluated:
                recipe.method = .sparsegpt
                recipe.dsnot = DSnoT.Profile.default.settings(after: .sparsegpt)
                evaluation = EvaluationOptions(textPath: TinyCheckpoint.text, sequenceLength: 32, maxWindows: 4)
            }
            return PruneJobOptions(recipe: recipe, format: format, evaluation: evaluation)
        }
    }

    /// Where the first run stops: at the start of a block (its resume point is the newest), or inside a
    /// block after its weights reached the sinks and the journal (bytes past the newest point).
    enum Interruption: CaseIterable, CustomTestStringConvertible {
        case atBlockStart, afterBlockWritten
        var testDescription: String { self == .atBlockStart ? "at the start of block 2" : "inside block 3" }

        /// Cancels at block 2's statistics pass, or at block 3's propagation (its tensors already written);
        /// `pruned` is the set of blocks whose pruning phase began (OWL's dense pass reports statistics too).
        func isCancelled(_ p: PruneProgress, pruned: Set<Int>) -> Bool {
            switch self {
            case .atBlockStart: p.block == 2 && p.phase == .statistics && pruned.contains(1)
            case .afterBlockWritten: p.block == 3 && p.phase == .propagation && pruned.contains(3)
            }
        }

        var resumedFrom: Int { self == .atBlockStart ? 2 : 3 }
    }

    /// Runs the job into `directory` with resume points, cancelling where `interruption` says.
    func interruptedRun(_ job: PruneJob, into directory: String, _ interruption: Interruption) throws {
        var stopped = false
        var pruned = Set<Int>()
        #expect(throws: PipelineError.self) {
            _ = try job.run(
                into: directory,
                resume: true,
                logger: logger,
                progress: {
                    guard case .pruning(let p) = $0 else { return }
                    if p.phase == .pruning { pruned.insert(p.block) }
                    if interruption.isCancelled(p, pruned: pruned) { stopped = true }
                },
                isCancelled: { stopped }
            )
        }
        let points = ResumePoint.candidates(in: directory)
        #expect(points.map(\.block) == [interruption.resumedFrom], "one resume point at a time")
    }

    /// Every file of the two directories byte for byte; in the report only the timings (and
    /// `resumed_from_block`) may differ.
    static func expectSameOutput(_ expected: String, _ actual: String) throws {
        let manager = FileManager.default
        let names = try manager.contentsOfDirectory(atPath: expected).sorted()
        #expect(try manager.contentsOfDirectory(atPath: actual).sorted() == names)
        for name in names {
            let a = try Data(contentsOf: URL(fileURLWithPath: expected + "/" + name))
            let b = try Data(contentsOf: URL(fileURLWithPath: actual + "/" + name))
            if name == OutputManifest.reportFileName {
                #expect(try reportWithoutTimings(a) == reportWithoutTimings(b))
            } else {
                #expect(a == b, "\(name) differs")
            }
        }
    }

    /// A report without what measures time (`timings`, each layer's and output check's `seconds…`) and
    /// without `resumed_from_block`: what must equal between an interrupted and an uninterrupted run.
    static func reportWithoutTimings(_ data: Data) throws -> NSDictionary {
        func strip(_ value: Any) -> Any {
            if let object = value as? [String: Any] {
                return object.filter { key, _ in
                    key != "timings" && key != "resumed_from_block" && !key.hasPrefix("seconds")
                }
                .mapValues(strip)
            }
            if let array = value as? [Any] { return array.map(strip) }
            return value
        }
        return try #require(strip(try JSONSerialization.jsonObject(with: data)) as? [String: Any]) as NSDictionary
    }

    static func reportWithoutTimings(_ report: PruneReport) throws -> NSDictionary {
        try reportWithoutTimings(Data(try PruneJob.encode(report)))
    }

    func fixture() throws -> (root: String, input: String) {
        let root = try TemporaryDirectory("dsnot-resume").path
        try TinyCheckpoint.write(to: root + "/in", dtype: .bf16, blocks: Self.blocks)
        return (root, root + "/in")
    }

    func makeDirectory(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    @Test(arguments: Variant.allCases, Interruption.allCases)
    func resumedRunEqualsUninterruptedRun(_ variant: Variant, _ interruption: Interruption) throws {
        let (root, input) = try fixture()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let job = try PruneJob(input: input, options: variant.options(root: root))
        try makeDirectory(root + "/whole")
        let whole = try job.run(into: root + "/whole", logger: logger)
        #expect(whole.report.resumedFromBlock == nil)

        try makeDirectory(root + "/resumed")
        try interruptedRun(job, into: root + "/resumed", interruption)
        let resumed = try job.run(into: root + "/resumed", resume: true, logger: logger)
        #expect(resumed.report.resumedFromBlock == interruption.resumedFrom)
        #expect(try Self.reportWithoutTimings(resumed.report) == Self.reportWithoutTimings(whole.report))
        try Self.expectSameOutput(root + "/whole", root + "/resumed")
        if case .sparse = job.options.format {
            let verified = try SparseVerifier.verify(directory: root + "/resumed")
            #expect(verified.shardsChecked == 1)
        }
    }

    /// A MoE checkpoint (qwen2_moe_tied_bf16: dense blocks 0 and 2, sparse blocks 1 and 3 with a shared
    /// expert): every expert pruned with its routed tokens, experts below `expert_min_tokens` by magnitude;
    /// the resumed run's output and report (per-expert token counts, fallbacks) equal the uninterrupted one.
    /// Stopped at the start of block 2: sparse block 1's report comes back from the resume point, sparse
    /// block 3 runs after the resume (the fixture's 4 blocks have no propagation after block 3, where the
    /// other interruption stops).
    @Test func resumedMoERunEqualsUninterruptedRun() throws {
        let interruption = Interruption.atBlockStart
        let root = try TemporaryDirectory("dsnot-resume").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try ModelFamilyPruneTests.writeCalibration(to: root + "/calib.safetensors")
        let options = MoEPruneTests.options(
            .wanda,
            .nOfM(2, 4),
            dsnot: true,
            calibration: root + "/calib.safetensors",
            format: .sparse(level: .fast, bytePlanes: false),
            expertMinTokens: 40
        )
        let job = try PruneJob(input: ModelFamilyPruneTests.models + "/qwen2_moe_tied_bf16", options: options)
        try makeDirectory(root + "/whole")
        let whole = try job.run(into: root + "/whole", logger: logger)
        let experts = whole.report.blocks.compactMap(\.experts).joined()
        #expect(experts.count == 8, "two sparse blocks of 4 experts")
        #expect(experts.contains { $0.fallback } && experts.contains { !$0.fallback }, "both kinds of expert")

        try makeDirectory(root + "/resumed")
        try interruptedRun(job, into: root + "/resumed", interruption)
        let resumed = try job.run(into: root + "/resumed", resume: true, logger: logger)
        #expect(resumed.report.resumedFromBlock == interruption.resumedFrom)
        #expect(try Self.reportWithoutTimings(resumed.report) == Self.reportWithoutTimings(whole.report))
        try Self.expectSameOutput(root + "/whole", root + "/resumed")
    }

    /// A run with resume points but never interrupted leaves no resume file behind and equals a run
    /// without them.
    @Test func resumePointsLeaveNoTraceInTheOutput() throws {
        let (root, input) = try fixture()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let job = try PruneJob(input: input, options: Variant.wandaDSnoTDefault.options(root: root))
        for name in ["plain", "points"] { try makeDirectory(root + "/" + name) }
        _ = try job.run(into: root + "/plain", logger: logger)
        let result = try job.run(into: root + "/points", resume: true, logger: logger)
        #expect(result.report.resumedFromBlock == nil)
        try Self.expectSameOutput(root + "/plain", root + "/points")
        let report = try String(contentsOfFile: root + "/points/dsnot-report.json", encoding: .utf8)
        #expect(!report.contains("resumed_from_block"))
    }

    /// Damage done to an interrupted run's staging directory before it resumes.
    enum Damage: String, CaseIterable, CustomTestStringConvertible {
        case truncatedPoint, garbageHeader, emptyPoint, otherRecipe, checkpointChanged, wrongHiddenShape
        case missingSequence, wrongDType, reportBlocksMissing, pointRenamed, missingJournal, truncatedJournal
        case corruptedJournal, journalEntryRenamed, hiddenDataFlipped, pointIsDirectory

        var testDescription: String { rawValue }
    }

    @Test(arguments: Damage.allCases)
    func damagedResumePointRestartsFromBlockZero(_ damage: Damage) throws {
        let (root, input) = try fixture()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let options = Variant.wandaDSnoTDefault.options(root: root)
        let job = try PruneJob(input: input, options: options)
        try makeDirectory(root + "/whole")
        _ = try job.run(into: root + "/whole", logger: logger)

        let staging = root + "/resumed"
        try makeDirectory(staging)
        var first = job
        if damage == .otherRecipe {
            var other = options
            other.recipe.pattern = .unstructured(0.6)
            first = try PruneJob(input: input, options: other)
        }
        try interruptedRun(first, into: staging, .atBlockStart)
        let pointName = ResumePoint.fileName(nextBlock: 2)
        let point = staging + "/" + pointName
        let journal = staging + "/" + ResumeJournal.fileName
        let manager = FileManager.default
        #expect(manager.fileExists(atPath: point) && manager.fileExists(atPath: journal))
        let size = try #require(try manager.attributesOfItem(atPath: point)[.size] as? Int)

        /// Rewrites the point with `change` applied to its state (the manifest stays self-consistent).
        func rewrite(_ change: (inout PruneResumeState, inout [ResumeJournal.Entry]) -> Void) throws {
            let fingerprint = try job.checkpointFingerprint(try Checkpoint(directory: input))
            var read = try ResumePoint.read(
                path: point,
                nextBlock: 2,
                options: options.stableHash,
                checkpoint: fingerprint
            )
            change(&read.state, &read.journal)
            try manager.removeItem(atPath: point)
            _ = try ResumePoint.write(
                read.state,
                journal: read.journal,
                options: options.stableHash,
                checkpoint: fingerprint,
                directory: staging
            )
        }
        func overwrite(_ path: String, at offset: UInt64, with bytes: [UInt8]) throws {
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            try handle.seek(toOffset: offset)
            try handle.write(contentsOf: Data(bytes))
            try handle.close()
        }

        switch damage {
        case .truncatedPoint:
            try FileHandle(forWritingTo: URL(fileURLWithPath: point)).truncate(atOffset: UInt64(size / 2))
        case .garbageHeader: try overwrite(point, at: 8, with: Array("not json at all".utf8))
        case .emptyPoint: try FileHandle(forWritingTo: URL(fileURLWithPath: point)).truncate(atOffset: 0)
        case .otherRecipe: break
        case .checkpointChanged:
            // Same bytes, new modification time: the fingerprint names another checkpoint.
            try manager.setAttributes(
                [.modificationDate: Date(timeIntervalSinceNow: -3600)],
                ofItemAtPath: input + "/model.safetensors"
            )
        case .wrongHiddenShape:
            try rewrite { state, _ in
                state.hidden[0] = Matrix(rows: state.hidden[0].rows - 1, columns: state.hidden[0].columns)
            }
        case .missingSequence: try rewrite { state, _ in state.hidden.removeLast() }
        case .wrongDType:
            // The same tensors, hidden.0 declared F16 (half the bytes): the manifest's data hash and dtype fail.
            let file = try SafeTensorsFile(path: point)
            var tensors: [(TensorDeclaration, [UInt8])] = []
            for info in file.header.tensors.sorted(by: { $0.name < $1.name }) {
                var bytes = Array(file.rawBytes(of: info))
                var dtype = info.dtype
                if info.name == "hidden.0" {
                    dtype = .f16
                    bytes = Array(bytes.prefix(bytes.count / 2))
                }
                tensors.append((TensorDeclaration(name: info.name, dtype: dtype, shape: info.shape), bytes))
            }
            let metadata = file.header.metadata
            try manager.removeItem(atPath: point)
            try SafeTensorsStreamWriter<AtomicFileSink>.writeFile(path: point, tensors: tensors, metadata: metadata)
        case .reportBlocksMissing: try rewrite { state, _ in state.report.blocks.removeLast() }
        case .pointRenamed:
            try manager.moveItem(atPath: point, toPath: staging + "/" + ResumePoint.fileName(nextBlock: 3))
        case .missingJournal: try manager.removeItem(atPath: journal)
        case .truncatedJournal:
            let journalSize = try #require(try manager.attributesOfItem(atPath: journal)[.size] as? Int)
            try FileHandle(forWritingTo: URL(fileURLWithPath: journal)).truncate(atOffset: UInt64(journalSize - 10))
        case .corruptedJournal: try overwrite(journal, at: 100, with: [0xFF, 0x7F, 0x00, 0x01])
        case .journalEntryRenamed: try rewrite { _, entries in entries[0].name = "model.layers.9.mlp.up_proj.weight" }
        case .hiddenDataFlipped:
            let file = try SafeTensorsFile(path: point)
            let info = try file.info(named: "hidden.1")
            let offset = UInt64(file.header.dataStart + info.dataOffsets.lowerBound + 4)
            try overwrite(point, at: offset, with: [0x12, 0x34])
        case .pointIsDirectory:
            try manager.removeItem(atPath: point)
            try makeDirectory(point)
        }

        let log = WarningLog()
        let resumed = try job.run(into: staging, resume: true, logger: Logger(label: "test") { _ in log })
        #expect(resumed.report.resumedFromBlock == nil, "\(damage) must not resume")
        let warning = log.warnings.first { $0.message == "Cannot resume, starting from block 0" }
        #expect(warning.map { !$0.error.isEmpty } == true, "no reason logged: \(log.warnings)")
        try Self.expectSameOutput(root + "/whole", staging)
    }

    /// Without `resume`, a non-empty directory is refused as before (`dsnotctl prune` never resumes).
    @Test func withoutResumeANonEmptyDirectoryIsRefused() throws {
        let (root, input) = try fixture()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let job = try PruneJob(input: input, options: Variant.wanda.options(root: root))
        try makeDirectory(root + "/out")
        try interruptedRun(job, into: root + "/out", .atBlockStart)
        #expect(throws: PruneJobError.outputNotEmpty(path: root + "/out")) {
            _ = try job.run(into: root + "/out", logger: logger)
        }
    }

    /// The estimate with resume counts the journal and two resume points (with the dense-path states
    /// when the recipe keeps them).
    @Test func estimateCountsTheResumeFiles() throws {
        let (root, input) = try fixture()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let job = try PruneJob(input: input, options: Variant.wanda.options(root: root))
        let plain = try job.estimate()
        let resumable = try job.estimate(resume: true)
        // 5 blocks × (2·32·32 + 2·16·32 + 3·64·32) bf16 weights, and 2 points of 8 × 32 × 32 fp32 states.
        let journal = Self.blocks * (2 * 32 * 32 + 2 * 16 * 32 + 3 * 64 * 32) * 2
        #expect(resumable.outputBytes - plain.outputBytes == journal + 2 * 8 * 32 * 32 * 4)
        // DSnoT's default profile checks against the dense model: each point also holds the 2 held-out
        // sequences' dense-path states (a quarter of 8), and its loss check's 2 windows in two streams.
        let guarded = try PruneJob(input: input, options: Variant.wandaDSnoTDefault.options(root: root))
        let extra = try guarded.estimate(resume: true).outputBytes - guarded.estimate().outputBytes
        #expect(DSnoT.OutputCheck.heldOutSequences(of: 8) == 2)
        #expect(SequentialPruner.lossCheckWindowCount(calibrationSequences: 8) == 2)
        #expect(extra == journal + 2 * (8 + 2 + 2 * 2) * 32 * 32 * 4)
    }
}
