// SPDX-License-Identifier: Apache-2.0
// PruneProgress and PipelineError: what the sequential pipeline reports while it runs, and how it fails.

/// Where a pruning run is: block `block` of `blockCount`, in `phase`.
public struct PruneProgress: Sendable, Equatable {
    public enum Phase: String, Sendable, Codable, CaseIterable {
        /// Writing the tensors that are copied unchanged.
        case copying
        /// The dense forward pass that collects the block's statistics.
        case statistics
        /// Base pruner and DSnoT on the block's linear layers.
        case pruning
        /// The pruned block's forward pass that produces the next block's inputs.
        case propagation
    }

    /// 0-based index of the current block.
    public var block: Int
    public var blockCount: Int
    public var phase: Phase
    /// Sequences done in this phase (forward passes), and their total.
    public var sequencesDone: Int
    public var sequenceCount: Int

    public init(block: Int, blockCount: Int, phase: Phase, sequencesDone: Int = 0, sequenceCount: Int = 0) {
        self.block = block
        self.blockCount = blockCount
        self.phase = phase
        self.sequencesDone = sequencesDone
        self.sequenceCount = sequenceCount
    }

    /// Fraction of the whole run done, counting each block as statistics + pruning + propagation.
    public var fractionDone: Double {
        guard blockCount > 0 else { return 1 }
        let within: Double
        switch phase {
        case .copying: return 0
        case .statistics: within = 0.45 * Double(sequencesDone) / Double(max(sequenceCount, 1))
        case .pruning: within = 0.45
        case .propagation: within = 0.55 + 0.45 * Double(sequencesDone) / Double(max(sequenceCount, 1))
        }
        return (Double(block) + within) / Double(blockCount)
    }
}

/// Why a pipeline run stopped.
public enum PipelineError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `isCancelled` returned true at a sequence or block boundary.
    case cancelled(block: Int)
    /// The recipe needs calibration data and none was given.
    case calibrationRequired(method: String)
    /// Calibration windows are longer than the model positions.
    case sequenceTooLong(length: Int, maximum: Int)
    /// The checkpoint lacks a tensor the model reported as prunable.
    case missingTensor(name: String)
    /// A resume state does not continue this run (`SequentialPruner.validateResume`).
    case resumeMismatch(reason: String)
    /// DSnoT's loss check got windows it cannot score (`SequentialPruner.run`'s `lossWindows`).
    case invalidLossWindows(reason: String)
    /// The calibration states left a block with NaN or infinite values in `compute` (bf16 has fp32's
    /// range, so this is a model or data problem the fp32 path would likely meet too).
    case nonFiniteActivations(block: Int, compute: String)

    public var description: String {
        switch self {
        case .cancelled(let block): "pruning cancelled at block \(block)"
        case .calibrationRequired(let method): "\(method) needs calibration data (text or token file)"
        case .sequenceTooLong(let length, let maximum):
            "calibration sequence length \(length) exceeds the model's \(maximum) positions"
        case .missingTensor(let name): "checkpoint has no tensor '\(name)'"
        case .resumeMismatch(let reason): "resume point does not match the job: \(reason)"
        case .invalidLossWindows(let reason): "DSnoT loss check: \(reason)"
        case .nonFiniteActivations(let block, let compute):
            "block \(block)'s outputs on the calibration sequences are not finite (NaN or infinity) with "
                + "\(compute) compute"
        }
    }
}
