// SPDX-License-Identifier: Apache-2.0
// LinearSlots: a block's linear layers as a fixed, named list: weight lookup and replacement for every architecture.

/// A decoder block whose linear layers sit in `linears`, in the order of `linearLayerNames`. Gives every
/// architecture the same `weight(of:)` / `setWeight(_:of:)` of `DecoderBlock`.
protocol LinearSlots {
    var linearLayerNames: [LinearLayerName] { get }
    var linears: [Linear] { get set }
}

extension LinearSlots {
    public func weight(of name: LinearLayerName) -> Matrix { linears[slot(name)].weight }

    public mutating func setWeight(_ weight: Matrix, of name: LinearLayerName) {
        let i = slot(name)
        precondition(
            weight.rows == linears[i].weight.rows && weight.columns == linears[i].weight.columns,
            "setWeight: \(name) must keep its shape (\(linears[i].weight.rows), \(linears[i].weight.columns))"
        )
        linears[i].weight = weight
    }

    public mutating func setCompute(_ format: ComputeFormat) {
        for i in linears.indices { linears[i].setCompute(format) }
    }

    func slot(_ name: LinearLayerName) -> Int {
        guard let i = linearLayerNames.firstIndex(of: name) else {
            preconditionFailure("\(Self.self) has no linear layer \(name)")
        }
        return i
    }
}
