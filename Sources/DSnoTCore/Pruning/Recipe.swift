// SPDX-License-Identifier: Apache-2.0
// Recipe: everything that decides a pruning run's result (method, pattern, DSnoT, calibration), as one value.

/// A complete, hashable description of how a checkpoint is pruned.
///
/// ```swift
/// var recipe = Recipe(method: .wanda, pattern: .unstructured(0.6))
/// recipe.dsnot = .reference
/// try recipe.validate()
/// let id = recipe.stableHash          // sha256 hex of the canonical JSON
/// ```
public struct Recipe: Sendable, Equatable, Hashable, Codable {
    /// The base pruner.
    public enum Method: String, Sendable, Equatable, Hashable, Codable, CaseIterable {
        case magnitude, wanda, sparsegpt
    }

    /// Where the calibration sequences come from (D2).
    public struct Calibration: Sendable, Equatable, Hashable, Codable {
        /// A text file tokenized as one stream, or a safetensors file with `input_ids [N, L]`.
        public enum Source: String, Sendable, Equatable, Hashable, Codable, CaseIterable {
            case text
            case tokens
        }
        public var source: Source
        /// Path of the text or token file (`nil` for magnitude, which needs no data).
        public var path: String?
        /// `N` (default 128).
        public var sequences: Int
        /// `L` (default 2048, capped at the model's context by the caller).
        public var sequenceLength: Int
        /// Seed of the window sampler (default 0).
        public var seed: UInt64

        public init(
            source: Source = .text,
            path: String? = nil,
            sequences: Int = 128,
            sequenceLength: Int = 2048,
            seed: UInt64 = 0
        ) {
            self.source = source
            self.path = path
            self.sequences = sequences
            self.sequenceLength = sequenceLength
            self.seed = seed
        }

        enum CodingKeys: String, CodingKey {
            case source, path, sequences, seed
            case sequenceLength = "sequence_length"
        }
    }

    public var method: Method
    public var pattern: SparsityPattern
    /// Magnitude only, without DSnoT: one ranking per matrix (reference) or per row. DSnoT's
    /// magnitude base is always per row (B§5.6 item 6).
    public var magnitudeScope: Magnitude.Scope
    /// DSnoT refinement, or `nil` = off.
    public var dsnot: DSnoT.Settings?
    /// SparseGPT's block size, dampening and retries.
    public var sparseGPT: SparseGPT.Settings
    public var calibration: Calibration
    /// How the target sparsity is spread over the blocks: the same everywhere, or OWL (`OWL`).
    public var layerSparsity: LayerSparsity
    /// OWL's outlier threshold `M`: a Wanda score above `M ×` its block's mean is an outlier.
    public var owlThreshold: Double
    /// OWL's spread `λ`: block sparsities stay within `target ± λ`.
    public var owlLambda: Double
    /// A routed MoE expert whose layers saw fewer calibration tokens than this is pruned by magnitude
    /// (per row, without DSnoT) instead of with its tokens' statistics (`expert_min_tokens`, ≥ 1).
    public var expertMinTokens: Int
    /// The forward passes' GEMM input format (`compute`): fp32, or bf16 with fp32 accumulation.
    public var compute: ComputeFormat

    /// The default of `expertMinTokens` (a judgement, docs/algorithms.md: far below what a used expert
    /// gets from the default calibration set, enough for stable per-feature means).
    public static let defaultExpertMinTokens = 128

    /// Per-block sparsity allocation.
    public enum LayerSparsity: String, Sendable, Equatable, Hashable, Codable, CaseIterable {
        /// Every block at the target (the reference).
        case uniform
        /// Outlier-weighed layerwise sparsity (Yin et al., ICML 2024), `OWL.allocate`.
        case owl
    }

    public init(
        method: Method,
        pattern: SparsityPattern,
        magnitudeScope: Magnitude.Scope = .layer,
        dsnot: DSnoT.Settings? = nil,
        sparseGPT: SparseGPT.Settings = SparseGPT.Settings(),
        calibration: Calibration = Calibration(),
        layerSparsity: LayerSparsity = .uniform,
        owlThreshold: Double = OWL.defaultThreshold,
        owlLambda: Double = OWL.defaultLambda,
        expertMinTokens: Int = Recipe.defaultExpertMinTokens,
        compute: ComputeFormat = .fp32
    ) {
        self.method = method
        self.pattern = pattern
        self.magnitudeScope = magnitudeScope
        self.dsnot = dsnot
        self.sparseGPT = sparseGPT
        self.calibration = calibration
        self.layerSparsity = layerSparsity
        self.owlThreshold = owlThreshold
        self.owlLambda = owlLambda
        self.expertMinTokens = expertMinTokens
        self.compute = compute
    }

    enum CodingKeys: String, CodingKey {
        case method, pattern, dsnot, calibration
        case magnitudeScope = "magnitude_scope"
        case sparseGPT = "sparsegpt"
        case layerSparsity = "layer_sparsity"
        case owlThreshold = "owl_threshold"
        case owlLambda = "owl_lambda"
        case expertMinTokens = "expert_min_tokens"
        case compute
    }

    /// Whether the layers' statistics must include the Hessian (SparseGPT, or DSnoT acceptance).
    public var needsHessian: Bool { method == .sparsegpt || dsnot?.accept == .trueError }

    /// Whether the run needs calibration data at all (magnitude without DSnoT does not).
    public var needsCalibration: Bool { method != .magnitude || dsnot != nil || layerSparsity == .owl }

    /// Builds a pattern from user-facing strings: `"unstructured"`, `"2:4"` or `"4:8"` plus a ratio.
    /// - Throws: `PruningError.patternRatioMismatch` for N:M with a ratio other than 0.5,
    ///   `.unsupportedPattern` for other N:M, `.invalidSetting` for an unknown type.
    public static func pattern(type: String, ratio: Double) throws -> SparsityPattern {
        switch type {
        case "unstructured":
            let p = SparsityPattern.unstructured(ratio)
            try p.validate()
            return p
        default:
            let parts = type.split(separator: ":")
            guard parts.count == 2, let n = Int(parts[0]), let m = Int(parts[1]) else {
                throw PruningError.invalidSetting(name: "pattern", expected: "unstructured, 2:4 or 4:8", got: type)
            }
            try SparsityPattern.nOfM(n, m).validate()
            guard ratio == 0.5 else { throw PruningError.patternRatioMismatch(n: n, m: m, ratio: ratio) }
            return .nOfM(n, m)
        }
    }
}
