// SPDX-License-Identifier: Apache-2.0
// OWL: outlier-weighed layerwise sparsity (Yin et al., ICML 2024; reference luuyin/OWL lib/prune.py,
// prune_wanda_outlier): each block's sparsity from the share of outlier Wanda scores among its weights.

/// Outlier-weighed layerwise sparsity: blocks with more outliers (Wanda scores `|W_ij|·‖x_j‖` far
/// above their block's mean) keep more weights.
///
/// ```swift
/// let ratio = OWL.outlierRatio(layers: [(w, scalerRow), …], threshold: 5)       // per block
/// let sparsities = try OWL.allocate(target: 0.6, lambda: 0.08, ratios: ratios, weights: counts)
/// ```
public enum OWL {
    /// The paper's `M` (`Hyper_m`).
    public static let defaultThreshold = 5.0
    /// The paper's `λ` (`Lamda`).
    public static let defaultLambda = 0.08

    /// The share (0…1) of a block's Wanda scores `|W_ij|·sqrt(scalerRow_j)` above `threshold ×` their
    /// mean over every prunable weight of the block, as the reference's `check_outlier_mean` computes
    /// it on the concatenated scores of the block's layers (that scores are scaled by `1/N` does not
    /// matter: the test is relative to the mean).
    public static func outlierRatio(layers: [(weights: Matrix, scalerRow: [Float])], threshold: Double) -> Double {
        // Two passes over freshly computed scores (mean, then count) so only one layer's scores are
        // held at a time.
        var sum = 0.0
        var count = 0
        for layer in layers {
            for v in Wanda.scores(weights: layer.weights, scalerRow: layer.scalerRow).storage { sum += Double(v) }
            count += layer.weights.storage.count
        }
        guard count > 0 else { return 0 }
        let cut = Float(sum / Double(count) * threshold)
        var outliers = 0
        for layer in layers {
            for v in Wanda.scores(weights: layer.weights, scalerRow: layer.scalerRow).storage where v > cut {
                outliers += 1
            }
        }
        return Double(outliers) / Double(count)
    }

    /// Per-block sparsities: linear in the outlier ratio (more outliers, lower sparsity), within
    /// `target ± lambda`, with the mean weighted by `weights` (the blocks' prunable parameter counts)
    /// exactly `target`:
    ///
    /// `s_b = target − α·(r_b − r̄)`, `r̄ = Σ w_b r_b / Σ w_b`, `α = lambda / max_b |r_b − r̄|`
    ///
    /// so the block farthest from the mean ratio sits at exactly `target ± lambda`. Equal ratios give
    /// the target everywhere. The reference stretches `[min r, max r]` onto `[0, 2λ]` and centres the
    /// unweighted mean; with equal block sizes and ratios symmetric around their mean the two agree,
    /// otherwise ours keeps every block inside `±λ` and the parameter-weighted sparsity exact.
    /// - Throws: `PruningError.invalidSetting` for a target outside (0, 1), `lambda` outside
    ///   `[0, min(target, 1 − target))`, a length mismatch, non-finite ratios or non-positive weights.
    public static func allocate(target: Double, lambda: Double, ratios: [Double], weights: [Double]) throws
        -> [Double]
    {
        try validate(target: target, threshold: defaultThreshold, lambda: lambda)
        guard ratios.count == weights.count, !ratios.isEmpty else {
            throw PruningError.invalidSetting(
                name: "owl ratios",
                expected: "one outlier ratio per block weight (\(weights.count))",
                got: "\(ratios.count)"
            )
        }
        guard ratios.allSatisfy(\.isFinite), weights.allSatisfy({ $0 > 0 && $0.isFinite }) else {
            throw PruningError.invalidSetting(
                name: "owl ratios",
                expected: "finite ratios and positive block sizes",
                got: "\(ratios) / \(weights)"
            )
        }
        let total = weights.reduce(0, +)
        let mean = zip(ratios, weights).reduce(0) { $0 + $1.0 * $1.1 } / total
        let spread = ratios.map { abs($0 - mean) }.max() ?? 0
        // Equal ratios (whose weighted mean may round off them) give the target everywhere.
        guard ratios.min() != ratios.max(), spread > 0, lambda > 0 else {
            return Array(repeating: target, count: ratios.count)
        }
        let alpha = lambda / spread
        return ratios.map { target - alpha * ($0 - mean) }
    }

    /// Checks OWL's parameters against the target sparsity.
    /// - Throws: `PruningError.invalidSetting` naming `owl_threshold` or `owl_lambda`.
    public static func validate(target: Double, threshold: Double, lambda: Double) throws {
        guard threshold > 0, threshold.isFinite else {
            throw PruningError.invalidSetting(
                name: "owl_threshold",
                expected: "a finite value > 0",
                got: "\(threshold)"
            )
        }
        let bound = min(target, 1 - target)
        guard lambda >= 0, lambda < bound, lambda.isFinite else {
            throw PruningError.invalidSetting(
                name: "owl_lambda",
                expected: "a value in [0, \(bound)) (min(sparsity, 1 − sparsity) for sparsity \(target))",
                got: "\(lambda)"
            )
        }
    }
}
