// SPDX-License-Identifier: Apache-2.0
// Forward golden-block tests: the LLaMA block forward and its tap against the reference pipeline's tensors.

import DSnoTCore
import Foundation
import SafeTensors
import Testing

/// `golden/block` (copied into Resources/models/golden-block): a 2-block LLaMA (hidden 128, 4 heads,
/// 2 KV heads) run through Wanda's `prune_wanda` at 50 %. The reference ran SDPA attention in fp32.
@Suite struct ForwardGoldenBlockTests {
    static let layers = [
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
    ]

    static func load() throws -> (model: any DecoderModel, run: SafeTensorsFile) {
        let model = try ModelRegistry.load(directory: ModelFixtures.path("golden-block"))
        return (model, try SafeTensorsFile(path: ModelFixtures.path("golden-block", "wanda_u50.safetensors")))
    }

    static func maxAbsDifference(_ a: Matrix, _ b: Matrix) -> Float {
        precondition(a.count == b.count, "shapes differ")
        return zip(a.storage, b.storage).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    @Test func embeddingsAreBlockZeroInputs() throws {
        let (model, run) = try Self.load()
        let calib = try SafeTensorsFile(path: ModelFixtures.path("golden-block", "calib.safetensors"))
        let ids = try calib.integers(named: "input_ids")  // [4, 32]
        for n in 0..<4 {
            let embedded = try model.embed(tokens: Array(ids[(n * 32)..<((n + 1) * 32)]))
            #expect(embedded == (try ModelFixtures.matrix(run, "block_input.0", sequence: n)))  // a row copy: exact
        }
    }

    /// The statistics pass: on the dense block, the tap sees what the reference's hooks saw.
    @Test(arguments: [0, 1])
    func tapInputsMatchTheReferenceHooks(_ b: Int) throws {
        let (model, run) = try Self.load()
        let block = try model.loadBlock(b)
        for n in 0..<4 {
            var seen: [LinearLayerName: Matrix] = [:]
            _ = block.forward(try ModelFixtures.matrix(run, "block_input.\(b)", sequence: n)) { seen[$0] = $1 }
            for layer in Self.layers {
                let reference = try ModelFixtures.matrix(run, "input.model.layers.\(b).\(layer)", sequence: n)
                let observed = try #require(seen[LinearLayerName(layer)])
                // README: layer inputs match "within float32 round-off (1e-6 relative to the largest entry)";
                // our attention kernel is not SDPA's, so allow 1e-5 of the largest entry.
                #expect(Self.maxAbsDifference(observed, reference) <= 1e-5 * reference.maxAbs, "block \(b) \(layer)")
            }
        }
    }

    /// The re-run: the checkpoint weights with the run's masks applied reproduce `block_output.<b>`.
    @Test(arguments: [0, 1])
    func prunedBlockReproducesTheReferenceOutputs(_ b: Int) throws {
        let (model, run) = try Self.load()
        var block = try model.loadBlock(b)
        for layer in Self.layers {
            let name = LinearLayerName(layer)
            var weight = block.weight(of: name)
            let mask = try run.integers(named: "mask.model.layers.\(b).\(layer)")
            #expect(mask.count == weight.count)
            for i in 0..<weight.count where mask[i] != 0 { weight.storage[i] = 0 }
            block.setWeight(weight, of: name)
        }
        for n in 0..<4 {
            let output = block.forward(try ModelFixtures.matrix(run, "block_input.\(b)", sequence: n))
            let reference = try ModelFixtures.matrix(run, "block_output.\(b)", sequence: n)
            // fp32 with different summation orders (SDPA vs sgemm): 1e-5 of the largest output.
            #expect(Self.maxAbsDifference(output, reference) <= 1e-5 * reference.maxAbs, "block \(b) sequence \(n)")
        }
    }
}
