// SPDX-License-Identifier: Apache-2.0
// Recipe+Validation: every unsupported value or combination becomes a clear PruningError before any work starts.

extension Recipe {
    /// Checks the recipe on its own (per-layer checks such as N:M widths happen in `LayerPruner`).
    /// - Throws: `PruningError` naming the setting, what was expected and what was found.
    public func validate() throws {
        try validatePruning()
        try validateCalibration()
    }

    /// Checks the pruning settings only (pattern, DSnoT, SparseGPT): what `SequentialPruner` needs
    /// when the caller hands it calibration windows directly.
    /// - Throws: `PruningError`.
    public func validatePruning() throws {
        try pattern.validate()
        if let d = dsnot { try d.validate() }
        if layerSparsity == .owl {
            guard case .unstructured(let target) = pattern else {
                throw PruningError.unsupportedCombination(
                    reason:
                        "layer_sparsity = owl needs an unstructured sparsity; an N:M pattern is the same in every block"
                )
            }
            try OWL.validate(target: target, threshold: owlThreshold, lambda: owlLambda)
        }
        guard expertMinTokens >= 1 else {
            throw PruningError.invalidSetting(
                name: "expert_min_tokens",
                expected: "an integer ≥ 1 (an expert with no calibration token has no statistics)",
                got: "\(expertMinTokens)"
            )
        }
        guard sparseGPT.blockSize > 0 else {
            throw PruningError.invalidSetting(
                name: "sparsegpt.block_size",
                expected: "> 0",
                got: "\(sparseGPT.blockSize)"
            )
        }
        guard sparseGPT.dampening > 0, sparseGPT.dampening.isFinite else {
            throw PruningError.invalidSetting(
                name: "sparsegpt.dampening",
                expected: "a finite value > 0",
                got: "\(sparseGPT.dampening)"
            )
        }
        guard (0...6).contains(sparseGPT.maxRetries) else {
            throw PruningError.invalidSetting(
                name: "sparsegpt.max_retries",
                expected: "0 … 6",
                got: "\(sparseGPT.maxRetries)"
            )
        }
    }

    /// Checks the calibration source: a path when the method needs calibration, positive N and L.
    /// - Throws: `PruningError.invalidSetting`.
    public func validateCalibration() throws {
        if needsCalibration {
            guard let path = calibration.path, !path.isEmpty else {
                throw PruningError.invalidSetting(
                    name: "calibration.path",
                    expected: "a \(calibration.source.rawValue) file for method \(method.rawValue)",
                    got: "none"
                )
            }
            guard calibration.sequences > 0 else {
                throw PruningError.invalidSetting(
                    name: "calibration.sequences",
                    expected: "> 0",
                    got: "\(calibration.sequences)"
                )
            }
            guard calibration.sequenceLength > 1 else {
                throw PruningError.invalidSetting(
                    name: "calibration.sequence_length",
                    expected: "> 1",
                    got: "\(calibration.sequenceLength)"
                )
            }
        }
        if method == .magnitude, dsnot?.accept == .trueError {
            throw PruningError.unsupportedCombination(
                reason:
                    "dsnot accept=true-error needs calibration Hessians; use method wanda or sparsegpt, or accept=none"
            )
        }
    }

    /// Checks the recipe against one layer.
    /// - Throws: `PruningError.columnsNotMultipleOfGroup` for N:M on a width that is not a multiple of M.
    public func validate(layer: String, columns: Int) throws {
        try pattern.validate(columns: columns, layer: layer)
    }
}
