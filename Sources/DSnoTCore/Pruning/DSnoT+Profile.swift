// SPDX-License-Identifier: Apache-2.0
// DSnoT+Profile: named presets of DSnoT.Settings (the reference flags, dsnot's guarded default) and the
// block-output check the guarded profile relies on (docs/algorithms.md "DSnoT profiles").

extension DSnoT {
    /// A named set of DSnoT settings. A profile only fills in the settings a recipe does not name:
    /// `{"profile": "reference", "max_cycles": 10}` is the reference with 10 cycles.
    public enum Profile: String, Sendable, Equatable, Hashable, Codable, CaseIterable {
        /// The reference flags of DSnoT's `main.py` (B§5.4), bit for bit: `DSnoT.Settings.reference`.
        case reference
        /// dsnot's default: width-scaled cycles, every linear layer refined, each block's refined
        /// masks kept only when they bring the pruned model's hidden state after the block closer to
        /// the dense model's on held-out calibration sequences (`OutputCheck.model`), and the refined
        /// model published only when its loss on separate held-out windows is no higher than the
        /// base-masked model's (`lossCheck`).
        case guarded

        /// The profile used when a recipe names none (`dsnotctl prune --dsnot`, the daemon's recipes).
        public static let `default` = Profile.guarded

        /// The profile's settings (row acceptance `none`).
        public var settings: Settings {
            switch self {
            case .reference: return .reference
            case .guarded: return Settings(maxCycles: .scaled, skip: [], outputCheck: .model, lossCheck: true)
            }
        }

        /// The profile's settings after `method`: after SparseGPT, rows are accepted by their true
        /// error (D9; `Settings.afterSparseGPT` for the reference profile).
        public func settings(after method: Recipe.Method) -> Settings {
            var s = settings
            if method == .sparsegpt { s.accept = .trueError }
            return s
        }

        /// Whether a recipe that turns DSnoT on without settings (`dsnot = true`, or no `dsnot` key)
        /// runs it after `method`. `guarded` leaves SparseGPT's masks as they are: on SmolLM2-135M every
        /// refined SparseGPT model its loss check let through was worse than SparseGPT on held-out text
        /// (docs/results.md, "The loss check"), because the check's held-out windows come from the
        /// calibration text that SparseGPT's weight update was fitted to. A `dsnot` table (any DSnoT
        /// setting or `profile` named) still runs DSnoT after SparseGPT.
        public func refinesByDefault(after method: Recipe.Method) -> Bool {
            switch self {
            case .reference: return true
            case .guarded: return method != .sparsegpt
            }
        }

        /// What `dsnot = true` means after `method`: the settings, or `nil` when the profile does not
        /// refine that method's masks by default (`refinesByDefault(after:)`).
        public func defaultSettings(after method: Recipe.Method) -> Settings? {
            refinesByDefault(after: method) ? settings(after: method) : nil
        }
    }

    /// Whether the pipeline checks DSnoT's refined masks against the dense block's output.
    ///
    /// With a check, the last `OutputCheck.heldOutSequences(of:)` calibration sequences are held out
    /// of DSnoT's statistics (the base pruner still sees every sequence); after the block's layers
    /// are pruned, the block runs on the held-out sequences with the base masks and with the refined
    /// masks, and what reproduces the dense block's output better (squared error summed over those
    /// sequences) is kept. The cost is two block forwards per held-out sequence (the dense output
    /// comes from the statistics pass, which then runs the whole block on those sequences), or one
    /// more per refined layer for `layer`.
    public enum OutputCheck: String, Sendable, Equatable, Hashable, Codable, CaseIterable {
        /// The reference: refined masks are always kept.
        case none
        /// The whole block keeps its refined masks or its base masks.
        case block
        /// Greedy per layer, in block order: a layer keeps its refined mask if that lowers the block's
        /// output error given the choices before it.
        case layer
        /// As `block`, but the target is the dense model's own hidden state after this block (the
        /// held-out sequences also run through the dense blocks), so the choice sees the error
        /// accumulated by earlier blocks, not only this block's.
        case model

        /// Held-out sequences for a run of `count` calibration sequences: a quarter, at most 8, and
        /// none when fewer than 2 (then the check runs on the calibration sequences themselves).
        public static func heldOutSequences(of count: Int) -> Int {
            count < 2 ? 0 : max(1, min(8, count / 4))
        }
    }
}
