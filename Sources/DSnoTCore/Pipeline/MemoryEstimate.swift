// SPDX-License-Identifier: Apache-2.0
// MemoryEstimate: the pipeline's peak memory, computed up front so a caller can refuse a job that cannot fit.

import DSnoTSupport
import SafeTensors

/// An upper estimate of `SequentialPruner`'s peak resident memory, from the model's shapes, the
/// calibration size and the recipe, before anything is loaded.
///
/// Terms (bytes): one block's linear weights in fp32 and the same block's checkpoint pages that
/// were mapped to read them; the calibration hidden states `N × L × hidden` fp32 (updated in place);
/// the intermediates of each sequence in flight (one per core: every linear output of a block, the
/// attention's scratch tile);
/// the statistics of the block's distinct layer inputs (vectors in fp64, Gram/Hessian matrices
/// `C_in²` fp32); the pruner's working set for the largest layer; one block's pruned weights in the
/// checkpoint dtype, handed to the writer thread (`BlockWriter`); with `compute = "bf16"`, the block's
/// bfloat16 weight copies and each sequence in flight's bfloat16 GEMM input and attention operands; a fixed runtime baseline
/// (Swift runtime, OpenBLAS buffers). DSnoT's loss check adds its windows' two streams of states and one
/// window's logits (`L × vocabulary` fp32, at the end) to `activations`.
public struct MemoryEstimate: Sendable, Equatable, Codable {
    public var blockWeights: Int
    public var checkpointPages: Int
    public var activations: Int
    public var sequenceScratch: Int
    public var statistics: Int
    public var prunerWorkspace: Int
    /// The block being written while the pipeline goes on (`BlockWriter`): its pruned weights in the
    /// checkpoint dtype.
    public var writerBlock: Int
    /// `compute = "bf16"`: the block's weights in bfloat16 (`Linear`'s copies) and, per sequence in
    /// flight, the widest GEMM input in bfloat16 (`BF16GEMM.multiply`) and the attention's bfloat16
    /// operands (`CausalAttention+BF16`); 0 in fp32.
    public var bf16Copies: Int
    public var runtimeBaseline: Int

    /// The sum of all terms.
    public var total: Int {
        blockWeights + checkpointPages + activations + sequenceScratch + statistics + prunerWorkspace
            + writerBlock + bf16Copies + runtimeBaseline
    }

    /// Bytes the Swift runtime, Foundation and OpenBLAS's per-thread buffers take before any work.
    /// Measured (`dsnot-bench prune`, 2 OpenBLAS threads, pages released after conversion): peak RSS
    /// minus the other terms was ≈ 90 MiB both for SmolLM2-135M Wanda + DSnoT (N = 32, L = 512:
    /// 199 MiB peak) and for magnitude without calibration (135 MiB peak); 112 MiB keeps a margin.
    public static let baselineBytes = 112 << 20

    /// Estimates the peak for pruning `model` with `recipe` on `sequences × length` calibration tokens.
    public static func estimate(
        model: any DecoderModel,
        recipe: Recipe,
        sequences: Int,
        length: Int,
        errorSequences: Int,
        lossWindows: (count: Int, length: Int)? = nil
    ) -> MemoryEstimate {
        // The largest block (a MoE model's dense layers are smaller than its sparse ones): its weights
        // include every expert, since the whole block is loaded at once.
        func weightCount(_ layers: [LinearLayerInfo]) -> Int {
            layers.reduce(0) { $0 + $1.outFeatures * $1.inFeatures }
        }
        let layers =
            (0..<model.blockCount).map { model.prunableLinearLayers(block: $0) }
            .max { weightCount($0) < weightCount($1) } ?? []
        let f = MemoryLayout<Float>.stride
        let weights = layers.reduce(0) { $0 + $1.outFeatures * $1.inFeatures }
        let pages = layers.reduce(0) { $0 + $1.outFeatures * $1.inFeatures * $1.dtype.byteWidth }
        let calibrated = recipe.needsCalibration || errorSequences > 0
        // DSnoT's output check keeps the dense block outputs of its held-out sequences.
        let checked =
            (recipe.dsnot?.outputCheck ?? .none) != .none ? StatisticsPlan.checkSequences(of: sequences).count : 0
        var activations = calibrated ? (sequences + checked) * length * model.hiddenSize * f : 0
        if let loss = lossWindows, calibrated {
            let streams = recipe.dsnot == nil ? 1 : 2
            activations += streams * loss.count * loss.length * model.hiddenSize * f
            activations += loss.length * model.vocabularySize * f
        }
        // Per sequence: every linear output, the block input/output copies, and the attention's
        // scratch (a tile of the stacked query heads of one key/value head: scores, queries, contexts).
        // A routed expert's outputs cover only its tokens: k of every E tokens on average.
        let routing = model.expertRouting
        let outputs = layers.reduce(0) { total, layer in
            guard layer.expert != nil, let routing else { return total + layer.outFeatures }
            return total + (layer.outFeatures * routing.perToken + routing.experts - 1) / routing.experts
        }
        let tile = model.attentionHeads / max(1, model.keyValueHeads) * min(length, CausalAttention.tileRows)
        let attention = tile * (length + 2 * model.headDim)
        // One sequence in flight per core (`Parallel.forEach`), each with its own intermediates.
        let inFlight = min(Parallel.workers, max(1, sequences))
        let scratch = calibrated ? inFlight * (length * (outputs + 4 * model.hiddenSize) + attention) * f : 0
        // Distinct inputs: layers reading the same activations share their statistics.
        var inputs: [Int] = []
        var seen = Set<String>()
        for layer in layers where seen.insert(Self.inputGroup(of: layer.name.rawValue)).inserted {
            inputs.append(layer.inFeatures)
        }
        let gram = recipe.needsHessian || errorSequences > 0
        let statistics =
            calibrated
            ? inputs.reduce(0) { $0 + 5 * $1 * MemoryLayout<Double>.stride + (gram ? $1 * $1 * f : 0) } : 0
        let largest = layers.map { $0.outFeatures * $0.inFeatures }.max() ?? 0
        let widest = layers.map(\.inFeatures).max() ?? 0
        // Dense copy, scores, sparse result, candidate lists (Int32), mask bytes; SparseGPT's Hinv and copy.
        var workspace = 5 * largest * f + largest
        if recipe.method == .sparsegpt { workspace += 2 * widest * widest * f }
        // bf16: the widest GEMM input, and the attention's bfloat16 keys and values of one key/value head
        // plus a tile's queries and probabilities (`CausalAttention+BF16`), 2 bytes each.
        let bf16Scratch = 2 * (length * widest + 2 * length * model.headDim + tile * (model.headDim + length))
        return MemoryEstimate(
            blockWeights: weights * f,
            checkpointPages: pages,
            activations: activations,
            sequenceScratch: scratch,
            statistics: statistics,
            prunerWorkspace: workspace,
            writerBlock: pages,
            bf16Copies: recipe.compute == .bf16 ? weights * 2 + (calibrated ? inFlight * bf16Scratch : 0) : 0,
            runtimeBaseline: baselineBytes
        )
    }

    /// Layers whose inputs are the same activations: q/k/v (and OPT's) read the normed hidden states,
    /// the gate and up projections of one MLP (dense, a routed expert — Mixtral's `w1`/`w3` — or a shared
    /// expert) read the same states. Anything else is its own group.
    static func inputGroup(of name: String) -> String {
        switch name {
        case "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj": return "attention-input"
        default:
            for suffix in ["gate_proj", "up_proj", "w1", "w3"] where name.hasSuffix("." + suffix) {
                return String(name.dropLast(suffix.count)) + "(mlp-input)"
            }
            return name
        }
    }
}
