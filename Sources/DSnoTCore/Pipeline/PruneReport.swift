// SPDX-License-Identifier: Apache-2.0
// PruneReport: what a pruning run did, per layer and in total; written as dsnot-report.json.

/// The record of one pruning run, written into the output as `dsnot-report.json` (snake_case keys).
///
/// Per linear layer: achieved sparsity, DSnoT's swaps and its own error `Σ_i |e_i|` before and
/// after refinement, and the true relative output reconstruction error
/// `‖(W − Ŵ)X‖²_F / ‖WX‖²_F` of the base and final masks, measured with the Gram matrix `XᵀX` of
/// that layer's calibration inputs (`errorSequences` says how many sequences, `errorRowsSampled`
/// how many output rows).
public struct PruneReport: Codable, Sendable, Equatable {
    /// Bumped when a field changes meaning.
    public var formatVersion = 1
    /// The recipe that ran: as requested (also when the loss check published the base recipe's model,
    /// `lossCheck.published`), with `calibration.sequences` and `calibration.sequence_length` the
    /// N and L of the windows actually used (a token file's shape; L capped at the model's context; 0 and 0
    /// when the run used no calibration data).
    public var recipe: Recipe
    /// `Recipe.stableHash` of the recipe as requested (its identity, independent of the checkpoint).
    public var recipeHash: String
    public var modelType: String
    public var blockCount: Int
    public var calibration: CalibrationSummary?
    public var layers: [LayerReport] = []
    /// Per block: its target sparsity (OWL's allocation or the recipe's) and DSnoT's output check.
    public var blocks: [BlockReport] = []
    public var totals = Totals()
    public var timings = Timings()
    /// `MemoryEstimate.total` computed before the run.
    public var memoryEstimateBytes: Int
    /// Filled in by callers that evaluate (`dsnotctl prune --eval-text`, the daemon's quality gate).
    public var perplexity: PerplexitySummary?
    /// The daemon job that produced the output (absent for `dsnotctl prune`): start-up recovery finds
    /// an output published just before a crash by this id, and finishes the job instead of re-running it.
    public var job: String?
    /// The block a resumed run continued at (the blocks before it were pruned by an interrupted run
    /// and restored from its resume point); absent when the run started at block 0.
    public var resumedFromBlock: Int?
    /// The GEMM input format the forward passes ran in: the recipe's `compute`, or fp32 where the CPU
    /// lacks bf16 instructions (`ComputeFormat.effective`); absent in reports of earlier versions.
    public var compute: ComputeFormat?
    /// DSnoT's model-level loss check (`dsnot.loss_check`): what it measured and which model was
    /// published; absent when no loss check ran.
    public var lossCheck: LossCheckSummary?

    public struct CalibrationSummary: Codable, Sendable, Equatable {
        public var sequences: Int
        public var sequenceLength: Int
        /// SHA-256 of the token ids (int32 little-endian, window after window).
        public var fingerprint: String
        /// Sequences whose inputs fed the reconstruction-error Gram matrices.
        public var errorSequences: Int
    }

    public struct LayerReport: Codable, Sendable, Equatable {
        public var name: String
        public var block: Int
        public var shape: [Int]
        public var dtype: String
        public var sparsity: Double
        public var baseSparsity: Double
        public var prunedPerRowMin: Int
        public var prunedPerRowMax: Int
        public var dsnot: DSnoTSummary?
        /// DSnoT was configured but its `skip` list excluded this layer.
        public var dsnotSkipped: Bool
        public var baseRelativeError: Double?
        public var finalRelativeError: Double?
        public var errorRowsSampled: Int
        public var dampening: Float?
        public var secondsBase: Double
        public var secondsDsnot: Double

        /// The layer as published when the output check kept its base mask: the base figures, and
        /// DSnoT's record marked as not kept.
        mutating func revertToBase() {
            sparsity = baseSparsity
            finalRelativeError = baseRelativeError
            dsnot?.kept = false
        }
    }

    public struct BlockReport: Codable, Sendable, Equatable {
        public init(index: Int, sparsity: Double, outlierRatio: Double? = nil, outputCheck: OutputCheckSummary? = nil) {
            self.index = index
            self.sparsity = sparsity
            self.outlierRatio = outlierRatio
            self.outputCheck = outputCheck
        }

        public var index: Int
        /// The block's target sparsity: OWL's allocation, or the recipe's ratio.
        public var sparsity: Double
        /// OWL's outlier ratio of the dense block (share of Wanda scores above `M ×` their mean).
        public var outlierRatio: Double?
        public var outputCheck: OutputCheckSummary?
        /// A sparse MoE block's routed experts, in index order (absent for every other block).
        public var experts: [ExpertReport]?
    }

    /// One routed expert of a MoE block: how many calibration tokens the dense router sent it and how its
    /// layers (gate, up, down) were pruned.
    public struct ExpertReport: Codable, Sendable, Equatable {
        public var expert: Int
        /// Calibration tokens routed to the expert (over all sequences); `nil` when the run used no
        /// calibration data (magnitude without DSnoT).
        public var tokens: Int?
        /// Pruned share of the expert's weights.
        public var sparsity: Double
        /// DSnoT swaps kept in its layers.
        public var dsnotSwaps: Int
        /// `true` when it had fewer than `expert_min_tokens` tokens and its layers were pruned by
        /// magnitude (per row, without DSnoT) instead of with its tokens' statistics.
        public var fallback: Bool
    }

    /// What DSnoT's block-output check (`DSnoT.OutputCheck`) measured and kept in one block.
    public struct OutputCheckSummary: Codable, Sendable, Equatable {
        /// `block` or `layer`.
        public var mode: String
        /// Held-out sequences the block ran on (with the dense, base and refined weights).
        public var sequences: Int
        /// `Σ‖Y − Y_dense‖² / Σ‖Y_dense − X‖²` over those sequences (X the block input, so the
        /// denominator is what the dense block adds to its input) with the base masks, with every
        /// refined mask, and with what was kept.
        public var baseError: Double
        public var refinedError: Double
        public var keptError: Double
        /// Refined layers kept / refined layers that differed from their base.
        public var layersKept: Int
        public var layersRefined: Int
        /// Block forwards the check ran (beyond the statistics and propagation passes).
        public var forwards: Int
        public var seconds: Double
    }

    /// DSnoT's model-level loss check: the mean next-token loss (nats per token) on held-out windows of
    /// the refined model as published by the block checks and of the same run's base-masked model
    /// (every block with its base pruner's masks, on the same pruned inputs), and the decision.
    ///
    /// The refined model is published only when it is better by more than one standard error of the
    /// paired per-window difference: with a few windows a smaller difference is noise, and the base
    /// pruner's model is the one without the extra step. The same model on both sides (no block kept a
    /// refined mask: every difference 0) publishes the run as it is.
    public struct LossCheckSummary: Codable, Sendable, Equatable {
        /// Windows scored and their length in tokens.
        public var windows: Int
        public var sequenceLength: Int
        /// `true` when the windows are the last calibration sequences (the block check's held-out ones;
        /// a token file has no further windows to draw), `false` for windows drawn from the calibration
        /// text after the calibration windows (then no pruning decision has seen them).
        public var calibrationWindows: Bool
        /// Loss of the model this run pruned (with DSnoT's refined masks where kept).
        public var refinedLoss: Double
        /// Loss of the same run's model with every block's base masks.
        public var baseLoss: Double
        /// Standard error of `refinedLoss − baseLoss` from the windows' paired differences (0 for one window).
        public var standardError: Double
        /// `"refined"` when `refinedLoss + standardError < baseLoss` (or both are the same model), else
        /// `"base"`: the caller then publishes the base recipe's own run (`PruneReport.publishingBase(_:)`).
        public var published: String
        /// Loss of the published base recipe's model on the same windows (a fallback only).
        public var publishedLoss: Double?
        /// Seconds of the check itself (the extra block forwards and the LM head), and of the refined
        /// run that was discarded (a fallback only; `seconds…` like the layers' timings).
        public var seconds: Double
        public var secondsDiscardedRun: Double?

        public static let refined = "refined"
        public static let base = "base"

        /// Whether the base-masked model did better: then the base recipe's model is published.
        public var prefersBase: Bool { published == Self.base }

        public init(
            windows: Int,
            sequenceLength: Int,
            calibrationWindows: Bool,
            refinedLoss: Double,
            baseLoss: Double,
            standardError: Double,
            seconds: Double
        ) {
            self.windows = windows
            self.sequenceLength = sequenceLength
            self.calibrationWindows = calibrationWindows
            self.refinedLoss = refinedLoss
            self.baseLoss = baseLoss
            self.standardError = standardError
            let difference = refinedLoss - baseLoss
            let same = difference == 0 && standardError == 0
            self.published = same || difference + standardError < 0 ? Self.refined : Self.base
            self.seconds = seconds
        }

        /// The mean loss, and the standard error of the mean of `refined − base`, of per-window losses.
        public static func compare(refined: [Double], base: [Double]) -> (
            refined: Double, base: Double, standardError: Double
        ) {
            let n = Double(max(1, refined.count))
            let differences = zip(refined, base).map { $0 - $1 }
            let mean = differences.reduce(0, +) / n
            let variance =
                differences.count > 1
                ? differences.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(differences.count - 1) : 0
            return (refined.reduce(0, +) / n, base.reduce(0, +) / n, (variance / n).squareRoot())
        }
    }

    public struct DSnoTSummary: Codable, Sendable, Equatable {
        public var swaps: Int
        public var cycles: Int
        public var errorBefore: Double
        public var errorAfter: Double
        public var rowsRejected: Int
        /// Whether the refined mask was kept by the output check (`nil`: no check ran).
        public var kept: Bool?
    }

    public struct Totals: Codable, Sendable, Equatable {
        public var prunableWeights = 0
        public var prunedWeights = 0
        public var dsnotSwaps = 0
        /// `prunedWeights / prunableWeights`.
        public var sparsity: Double { prunableWeights == 0 ? 0 : Double(prunedWeights) / Double(prunableWeights) }

        enum CodingKeys: String, CodingKey { case prunableWeights, prunedWeights, dsnotSwaps, sparsity }

        public init() {}
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            prunableWeights = try c.decode(Int.self, forKey: .prunableWeights)
            prunedWeights = try c.decode(Int.self, forKey: .prunedWeights)
            dsnotSwaps = try c.decode(Int.self, forKey: .dsnotSwaps)
        }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(prunableWeights, forKey: .prunableWeights)
            try c.encode(prunedWeights, forKey: .prunedWeights)
            try c.encode(dsnotSwaps, forKey: .dsnotSwaps)
            try c.encode(sparsity, forKey: .sparsity)
        }
    }

    /// Wall-clock seconds per phase. `base` and `dsnot` are the pruners' own time (mask search,
    /// SparseGPT's update, DSnoT's refinement); `statistics` and `propagation` are the two forward passes.
    public struct Timings: Codable, Sendable, Equatable {
        public var copy = 0.0
        public var embedding = 0.0
        public var statistics = 0.0
        public var base = 0.0
        public var dsnot = 0.0
        /// Encoding the pruned weights (pipeline thread) and the sink's writes (the writer thread,
        /// overlapped with the next block: `BlockWriter`).
        public var writing = 0.0
        /// What the pipeline waited for the writer (a block still being written when the next one was
        /// done, before a resume point, at the end); nil in reports of versions without the writer thread.
        public var writingWait: Double?
        public var propagation = 0.0
        /// OWL's dense pass over the whole model (statistics and outlier ratios).
        public var owl = 0.0
        /// DSnoT's block-output check (extra block forwards).
        public var outputCheck = 0.0
        /// DSnoT's loss check (the held-out windows' block forwards, both variants, and the LM head).
        public var lossCheck = 0.0
        public var total = 0.0
    }

    public struct PerplexitySummary: Codable, Sendable, Equatable {
        public var text: String
        public var sequenceLength: Int
        public var windows: Int
        public var dense: Double
        public var pruned: Double
        /// `100 · (pruned / dense − 1)`.
        public var increasePercent: Double { 100 * (pruned / dense - 1) }

        public init(text: String, sequenceLength: Int, windows: Int, dense: Double, pruned: Double) {
            self.text = text
            self.sequenceLength = sequenceLength
            self.windows = windows
            self.dense = dense
            self.pruned = pruned
        }

        enum CodingKeys: String, CodingKey { case text, sequenceLength, windows, dense, pruned, increasePercent }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            text = try c.decode(String.self, forKey: .text)
            sequenceLength = try c.decode(Int.self, forKey: .sequenceLength)
            windows = try c.decode(Int.self, forKey: .windows)
            dense = try c.decode(Double.self, forKey: .dense)
            pruned = try c.decode(Double.self, forKey: .pruned)
        }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(text, forKey: .text)
            try c.encode(sequenceLength, forKey: .sequenceLength)
            try c.encode(windows, forKey: .windows)
            try c.encode(dense, forKey: .dense)
            try c.encode(pruned, forKey: .pruned)
            try c.encode(increasePercent, forKey: .increasePercent)
        }
    }
}
