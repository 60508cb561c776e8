// SPDX-License-Identifier: Apache-2.0
// Perplexity: the evaluation protocol of ALGORITHM.md D10 (non-overlapping windows, exp of the mean window loss).

import Foundation

/// Why a perplexity evaluation could not run.
public enum EvaluationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer tokens than one window.
    case tooFewTokens(count: Int, sequenceLength: Int)
    /// `sequenceLength < 2` (no target to predict) or `maxWindows < 1`.
    case invalidParameter(name: String, value: Int, expected: String)

    public var description: String {
        switch self {
        case .tooFewTokens(let count, let length):
            "\(count) tokens are fewer than one evaluation window of \(length)"
        case .invalidParameter(let name, let value, let expected):
            "\(name) = \(value): expected \(expected)"
        }
    }
}

/// Perplexity of a causal LM over a token stream, by the reference protocol (ALGORITHM.md B§6):
/// `nw = floor(T / L)` non-overlapping windows, no BOS per window, each window's mean cross-entropy
/// over its `L − 1` targets, `PPL = exp(mean over windows)`.
///
/// ```swift
/// let result = try Perplexity.evaluate(model: model, tokens: ids, sequenceLength: 512)
/// print(result.perplexity)
/// ```
public enum Perplexity {
    /// The outcome of an evaluation.
    public struct Result: Sendable, Equatable {
        public var perplexity: Double
        /// Mean over windows of the window-mean negative log-likelihood (nats).
        public var meanLoss: Double
        /// Per-window mean loss (nats), in window order.
        public var windowLosses: [Double]
        public var sequenceLength: Int
    }

    /// Evaluates `model` on `tokens`.
    ///
    /// Windows run in passes of `windowsPerPass` (chosen from `activationBudgetBytes` when `nil`):
    /// each pass embeds its windows, loads each block once and runs every window through it, then
    /// applies the LM head window by window. Only one block's fp32 weights are resident.
    /// - Parameters:
    ///   - sequenceLength: `L`, the window length (≥ 2).
    ///   - maxWindows: evaluate only the first this many windows.
    ///   - activationBudgetBytes: bound on the hidden states of one pass (`windows × L × hidden × 4`).
    ///   - compute: the blocks' GEMM input format (`ComputeFormat.effective` resolved by the caller);
    ///     the LM head stays fp32.
    ///   - progress: `(workDone, workTotal)` in units of one window through one block or the LM head.
    /// - Throws: `EvaluationError`, `ModelLoadError`.
    public static func evaluate(
        model: any DecoderModel,
        tokens: [Int],
        sequenceLength: Int,
        maxWindows: Int? = nil,
        activationBudgetBytes: Int = 512 << 20,
        compute: ComputeFormat = .fp32,
        progress: ((Int, Int) -> Void)? = nil
    ) throws -> Result {
        guard sequenceLength >= 2 else {
            throw EvaluationError.invalidParameter(
                name: "sequenceLength",
                value: sequenceLength,
                expected: "at least 2"
            )
        }
        if let maxWindows, maxWindows < 1 {
            throw EvaluationError.invalidParameter(name: "maxWindows", value: maxWindows, expected: "at least 1")
        }
        let available = tokens.count / sequenceLength
        guard available > 0 else {
            throw EvaluationError.tooFewTokens(count: tokens.count, sequenceLength: sequenceLength)
        }
        let windows = min(available, maxWindows ?? available)
        let perWindowBytes = sequenceLength * model.hiddenSize * MemoryLayout<Float>.stride
        let perPass = max(1, min(windows, activationBudgetBytes / max(1, perWindowBytes)))
        let total = windows * (model.blockCount + 1)
        var done = 0
        var losses: [Double] = []
        var start = 0
        while start < windows {
            let passWindows = start..<min(windows, start + perPass)
            var hidden = try passWindows.map { w in
                try model.embed(tokens: Array(tokens[(w * sequenceLength)..<((w + 1) * sequenceLength)]))
            }
            try model.runBlocks(&hidden, compute: compute) { _, _ in
                done += passWindows.count
                progress?(done, total)
            }
            for (i, w) in passWindows.enumerated() {
                let window = Array(tokens[(w * sequenceLength)..<((w + 1) * sequenceLength)])
                losses.append(meanNegativeLogLikelihood(logits: try model.finalLogits(hidden[i]), tokens: window))
                done += 1
                progress?(done, total)
            }
            start = passWindows.upperBound
        }
        let mean = losses.reduce(0, +) / Double(losses.count)
        return Result(
            perplexity: Foundation.exp(mean),
            meanLoss: mean,
            windowLosses: losses,
            sequenceLength: sequenceLength
        )
    }

    /// Mean cross-entropy of predicting `tokens[1...]` from `logits[0..<L-1]`, log-softmax in fp32
    /// (max-subtracted), the sum accumulated in `Double`.
    /// - Parameters:
    ///   - logits: `(L, vocabulary)`.
    ///   - tokens: `L` ids, each `< vocabulary`.
    public static func meanNegativeLogLikelihood(logits: Matrix, tokens: [Int]) -> Double {
        precondition(
            logits.rows == tokens.count && tokens.count >= 2,
            "NLL: one logit row per token, at least 2 tokens"
        )
        let vocabulary = logits.columns
        var total = 0.0
        logits.storage.withUnsafeBufferPointer { p in
            for t in 0..<(tokens.count - 1) {
                let row = UnsafeBufferPointer(rebasing: p[(t * vocabulary)..<((t + 1) * vocabulary)])
                var maximum = -Float.infinity
                for x in row { maximum = max(maximum, x) }
                var sum: Float = 0
                for x in row { sum += Foundation.exp(x - maximum) }
                let logSumExp = maximum + Foundation.log(sum)
                total += Double(logSumExp - row[tokens[t + 1]])
            }
        }
        return total / Double(tokens.count - 1)
    }
}
