// SPDX-License-Identifier: Apache-2.0
// DSnoT (Zhang et al., ICLR 2024; ALGORITHM.md D7–D9, B§5); reference zyxxmu/DSnoT lib/prune.py prune_DSnoT.
// Settings, layer skipping and the per-layer record. Shapes: W (out, in), statistics (in).

/// DSnoT: training-free mask refinement. Starting from a base mask, each row swaps a kept weight
/// for a pruned one while its expected output error `e_i = Σ_{j pruned} W_ij · μ̃_j` stays above a
/// threshold, for at most `maxCycles` swaps. Weight values never change (except in the SparseGPT
/// variant D9, where a regrown weight takes back its dense value).
///
/// ```swift
/// var settings = DSnoT.Settings()            // the reference defaults
/// settings.maxCycles = .scaled
/// let refined = try DSnoT.refine(DSnoT.Input(dense: w, baseMask: base, …), settings: settings)
/// ```
public enum DSnoT {
    /// How many swaps a row may make.
    public enum MaxCycles: Sendable, Equatable, Hashable, Codable {
        /// A fixed count `T` (reference default 50).
        case fixed(Int)
        /// `max(1, round(50 · C_in / 4096))` per layer (the reference's 50 were tuned on 4096-wide layers).
        case scaled

        /// `T` for a layer of width `columns`.
        public func cycles(columns: Int) -> Int {
            switch self {
            case .fixed(let t): return t
            case .scaled: return max(1, Int((50.0 * Double(columns) / 4096.0).rounded()))
            }
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let t = try? container.decode(Int.self) {
                self = .fixed(t)
                return
            }
            guard let s = try? container.decode(String.self), s == "scaled" else {
                let got = (try? container.decode(String.self)).map { "\"\($0)\"" } ?? "another type"
                throw PruningError.invalidSetting(
                    name: decoder.codingPath.settingName,
                    expected: "an integer ≥ 0 or \"scaled\"",
                    got: got
                )
            }
            self = .scaled
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .fixed(let t): try container.encode(t)
            case .scaled: try container.encode("scaled")
            }
        }
    }

    /// Whether a row keeps its refined mask.
    public enum Acceptance: String, Sendable, Equatable, Hashable, Codable, CaseIterable {
        /// Always (the reference).
        case none
        /// Only if it lowers the row's true reconstruction error `Δwᵀ H Δw` (needs the layer's Hessian).
        case trueError = "true-error"
    }

    /// All reference flags (D8) plus dsnot's `scaled` cycles and acceptance.
    public struct Settings: Sendable, Equatable, Hashable, Codable {
        /// `T` (`max_cycle_time`).
        public var maxCycles: MaxCycles = .fixed(50)
        /// `ε` (`update_threshold`) in sequence-sum units of `e` (B§5.1).
        public var updateThreshold: Double = 0.1
        /// `γ` (`pow_of_var_regrowing`): regrowth ranks by `D / v^γ`; 0 = no division.
        public var variancePower: Double = 1
        /// Stop a row when a swap would flip the sign of `e` (unstructured; N:M always checks).
        public var sameSign: Bool = false
        /// Layers left at their base mask: matched against the first component of the in-block
        /// name (`mlp`, `self_attn`), the second (`q_proj`) or the whole in-block name (`mlp.up_proj`).
        public var skip: [String] = ["mlp"]
        /// Row acceptance rule.
        public var accept: Acceptance = .none
        /// Block-output check of the pipeline (`none` = the reference: refined masks are always kept).
        public var outputCheck: OutputCheck = .none
        /// Model-level loss check of the pipeline (`false` = the reference): the refined model is
        /// published only when its loss on held-out calibration windows is no higher than that of the
        /// same model with every block's base masks; otherwise the caller publishes the base recipe's
        /// model (`SequentialPruner` measures, `PruneReport.LossCheckSummary.prefersBase` decides).
        public var lossCheck: Bool = false

        public init(
            maxCycles: MaxCycles = .fixed(50),
            updateThreshold: Double = 0.1,
            variancePower: Double = 1,
            sameSign: Bool = false,
            skip: [String] = ["mlp"],
            accept: Acceptance = .none,
            outputCheck: OutputCheck = .none,
            lossCheck: Bool = false
        ) {
            self.maxCycles = maxCycles
            self.updateThreshold = updateThreshold
            self.variancePower = variancePower
            self.sameSign = sameSign
            self.skip = skip
            self.accept = accept
            self.outputCheck = outputCheck
            self.lossCheck = lossCheck
        }

        /// The reference defaults of DSnoT's `main.py` (B§5.4).
        public static let reference = Settings()

        /// The defaults for D9 (SparseGPT, then DSnoT): the reference flags with `accept: .trueError`,
        /// without which D9 undid much of SparseGPT's update on a real model (ALGORITHM.md D9).
        public static let afterSparseGPT = Settings(accept: .trueError)

        enum CodingKeys: String, CodingKey {
            case maxCycles = "max_cycles"
            case updateThreshold = "update_threshold"
            case variancePower = "variance_power"
            case sameSign = "same_sign"
            case skip
            case accept
            case outputCheck = "output_check"
            case lossCheck = "loss_check"
            /// Decoding only: the profile whose values fill in absent keys (`Recipe+Codable.swift`).
            case profile
        }

        /// Checks the ranges of the numeric settings.
        /// - Throws: `PruningError.invalidSetting`.
        public func validate() throws {
            if case .fixed(let t) = maxCycles, t < 0 {
                throw PruningError.invalidSetting(name: "dsnot.max_cycles", expected: "≥ 0 or \"scaled\"", got: "\(t)")
            }
            guard updateThreshold >= 0, updateThreshold.isFinite else {
                throw PruningError.invalidSetting(
                    name: "dsnot.update_threshold",
                    expected: "a finite value ≥ 0",
                    got: "\(updateThreshold)"
                )
            }
            guard variancePower >= 0, variancePower.isFinite else {
                throw PruningError.invalidSetting(
                    name: "dsnot.variance_power",
                    expected: "a finite value ≥ 0",
                    got: "\(variancePower)"
                )
            }
        }

        /// Whether `layer` (a full checkpoint name such as `model.layers.3.mlp.up_proj` or an
        /// in-block name such as `self_attn.q_proj`) is left at its base mask.
        public func skips(layer: String) -> Bool {
            let parts = DSnoT.inBlockComponents(of: layer)
            let inBlock = parts.joined(separator: ".")
            for entry in skip where entry != "no_skip" && !entry.isEmpty {
                if entry == inBlock { return true }
                if let first = parts.first, entry == first { return true }
                if parts.count > 1, entry == parts[1] { return true }
            }
            return false
        }
    }

    /// The components of a layer name after its block index (`model.layers.3.mlp.up_proj` →
    /// `["mlp", "up_proj"]`); the whole name when it has no numeric component.
    static func inBlockComponents(of layer: String) -> [String] {
        let parts = layer.split(separator: ".").map(String.init)
        if let last = parts.lastIndex(where: { !$0.isEmpty && $0.allSatisfy(\.isNumber) }) {
            return Array(parts[(last + 1)...])
        }
        return parts
    }

    /// What DSnoT did to one layer.
    public struct LayerRecord: Sendable, Equatable {
        /// `T` used.
        public var cycles: Int
        /// Swaps made per row (after acceptance: 0 for a row that kept its base mask).
        public var swapsPerRow: [Int32]
        /// `|e_i|` per row with the base mask and with the final mask.
        public var rowErrorBefore: [Float]
        public var rowErrorAfter: [Float]
        /// DSnoT's own error `Σ_i |e_i|` with the base mask.
        public var errorBefore: Double
        /// `Σ_i |e_i|` with the final mask.
        public var errorAfter: Double
        /// Rows whose refinement was rejected by `accept: .trueError`.
        public var rowsRejected: Int
        /// Total swaps.
        public var totalSwaps: Int { swapsPerRow.reduce(0) { $0 + Int($1) } }
    }
}
