// SPDX-License-Identifier: Apache-2.0
// SequentialPruner+OutputCheck: DSnoT's block-output check (DSnoT.OutputCheck): the block runs on
// held-out sequences with its base and its refined masks; what reproduces the dense output better stays.

import DSnoTSupport

/// The entries where a layer's refined and base sparse weights differ, holding the values of the
/// variant that is not in the block: `toggle` swaps them with the block's, so the block switches
/// between the two variants in place (DSnoT moves at most `2T` entries per row, so this is small).
struct LayerAlternative {
    var name: LinearLayerName
    var indices: [Int]
    var values: [Float]
    /// Whether the block currently holds the refined variant.
    var refinedInBlock = true

    /// The differences between `refined` (in the block) and `base` (stored), compared bit for bit.
    init(name: LinearLayerName, between refined: Matrix, and base: Matrix) {
        self.name = name
        var indices: [Int] = []
        var values: [Float] = []
        for i in refined.storage.indices where refined.storage[i].bitPattern != base.storage[i].bitPattern {
            indices.append(i)
            values.append(base.storage[i])
        }
        self.indices = indices
        self.values = values
    }

    /// Swaps the block's variant of this layer with the stored one.
    mutating func toggle(in block: inout any DecoderBlock) {
        var w = block.weight(of: name)
        w.storage.withUnsafeMutableBufferPointer { w in
            for (k, i) in indices.enumerated() { swap(&w[i], &values[k]) }
        }
        block.setWeight(w, of: name)
        refinedInBlock.toggle()
    }
}

extension SequentialPruner {
    /// Runs `mode`'s check on `block` (every refined layer in the block) and leaves in the block
    /// what it keeps. `alternatives` come back with `refinedInBlock` telling which variant stayed.
    func checkOutputs(
        mode: DSnoT.OutputCheck,
        block: inout any DecoderBlock,
        alternatives: inout [LayerAlternative],
        samples: [(input: Matrix, dense: Matrix)],
        clock: ContinuousClock
    ) -> PruneReport.OutputCheckSummary {
        let start = clock.now
        var forwards = 0
        // The denominator: the distance of the target from the block's input.
        var scale = 0.0
        for s in samples { scale += Self.squaredDistance(s.dense, s.input) }
        scale = max(scale, .leastNormalMagnitude)
        func error() -> Double {
            forwards += samples.count
            var outputs = [Double](repeating: 0, count: samples.count)
            let current = block
            outputs.withUnsafeMutableBufferPointer { o in
                Parallel.forEach(0..<samples.count) { k in
                    o[k] = Self.squaredDistance(current.forward(samples[k].input), samples[k].dense)
                }
            }
            return outputs.reduce(0, +) / scale  // summed in sequence order: independent of the core count
        }
        let refinedError = error()
        for i in alternatives.indices { alternatives[i].toggle(in: &block) }
        let baseError = error()
        var kept = baseError
        switch mode {
        case .none:
            break
        case .block, .model:
            if refinedError < baseError {
                for i in alternatives.indices { alternatives[i].toggle(in: &block) }
                kept = refinedError
            }
        case .layer:
            for i in alternatives.indices {
                alternatives[i].toggle(in: &block)
                let e = error()
                if e < kept { kept = e } else { alternatives[i].toggle(in: &block) }
            }
        }
        return PruneReport.OutputCheckSummary(
            mode: mode.rawValue,
            sequences: samples.count,
            baseError: baseError,
            refinedError: refinedError,
            keptError: kept,
            layersKept: alternatives.filter(\.refinedInBlock).count,
            layersRefined: alternatives.count,
            forwards: forwards,
            seconds: start.duration(to: clock.now).inSeconds
        )
    }

    /// `‖a − b‖²_F` summed in `Double`.
    static func squaredDistance(_ a: Matrix, _ b: Matrix) -> Double {
        var sum = 0.0
        for (x, y) in zip(a.storage, b.storage) {
            let d = Double(x) - Double(y)
            sum += d * d
        }
        return sum
    }
}
