// SPDX-License-Identifier: Apache-2.0
// Opt-in check on real weights (SmolLM2-135M bf16): bit-exact round trip, sizes, byte planes, speed vs the lz4 CLI.

import DSnoTSupport
import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@testable import SparseFormat

/// Enabled by `DSNOT_SMOLLM2_BF16=<dir with model.safetensors>` (the integrator's fixture
/// `.fixtures/smollm2-135m-bf16`). Takes about a minute; prints the figures it measures.
@Suite(.serialized) struct RealModelTests {
    static var modelDirectory: String? { ProcessInfo.processInfo.environment["DSNOT_SMOLLM2_BF16"] }

    /// Magnitude pruning, layer scope: exactly floor(n/2) smallest |w| set to +0, ties broken by
    /// index (ALGORITHM.md D4). For 2-byte floats the sign-cleared bit pattern orders by magnitude,
    /// so a 32768-bucket histogram finds the threshold in O(n).
    static func magnitudePrune(_ bytes: inout [UInt16], structure: SparsityStructure) {
        switch structure {
        case .unstructured:
            var histogram = [Int](repeating: 0, count: 1 << 15)
            for value in bytes { histogram[Int(value & 0x7FFF)] += 1 }
            var remaining = bytes.count / 2
            var threshold = 0
            while remaining >= histogram[threshold] {
                remaining -= histogram[threshold]
                threshold += 1
            }
            for i in bytes.indices {
                let magnitude = Int(bytes[i] & 0x7FFF)
                if magnitude < threshold {
                    bytes[i] = 0
                } else if magnitude == threshold && remaining > 0 {
                    bytes[i] = 0
                    remaining -= 1
                }
            }
        case .twoFour:
            for group in stride(from: 0, to: bytes.count, by: 4) {
                // Two smallest of four, ties by index.
                var order = [0, 1, 2, 3]
                order.sort { (bytes[group + $0] & 0x7FFF, $0) < (bytes[group + $1] & 0x7FFF, $1) }
                bytes[group + order[0]] = 0
                bytes[group + order[1]] = 0
            }
        }
    }

    /// Current `transformers` loads the `unpack --dense` output as a plain checkpoint: no missing
    /// or unexpected keys, no quantization config, the weights are the file's, and a forward pass is finite.
    static func checkTransformersLoads(_ dense: String, python: String, scratch: TemporaryDirectory) throws {
        let script = """
            import sys, torch, transformers
            from safetensors.torch import load_file
            model, info = transformers.AutoModelForCausalLM.from_pretrained(
                sys.argv[1], torch_dtype=torch.bfloat16, output_loading_info=True)
            assert not info["missing_keys"] and not info["unexpected_keys"], info
            assert getattr(model.config, "quantization_config", None) is None
            ref = load_file(sys.argv[1] + "/model.safetensors")
            w = model.state_dict()["model.layers.3.mlp.up_proj.weight"]
            assert torch.equal(w.view(torch.int16), ref["model.layers.3.mlp.up_proj.weight"].view(torch.int16))
            sparsity = (w == 0).float().mean().item()
            logits = model(torch.tensor([[1, 504, 3575, 282, 4649, 314]])).logits
            assert torch.isfinite(logits).all()
            print("transformers", transformers.__version__, "loaded; up_proj sparsity", round(sparsity, 4))
            """
        try Tool.write(scratch.file("load.py"), Array(script.utf8))
        let (status, output) = try ExternalProcess.run(command: [python, scratch.file("load.py"), dense])
        #expect(status == 0, "\(output)")
        #expect(output.contains("loaded; up_proj sparsity 0.5"), "\(output)")
        print("[real-model] \(output.split(separator: "\n").last ?? "")")
    }

    /// CPU seconds (user + system, this process and its finished children) spent in `body`: the
    /// machine is shared, so wall time says little; CPU time compares our code with the lz4 CLI.
    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        func cpu() -> Double {
            var total = 0.0
            for who in [RUSAGE_SELF, RUSAGE_CHILDREN] {
                var usage = rusage()
                getrusage(__rusage_who_t(who.rawValue), &usage)
                total += Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
                total += Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
            }
            return total
        }
        let start = cpu()
        try body()
        return cpu() - start
    }

    @Test(
        .enabled(if: modelDirectory != nil, "DSNOT_SMOLLM2_BF16 is not set: no real model to measure"),
        arguments: SparsityStructure.allCases,
        [false, true]
    )
    func smolLM2RoundTripsBitExactly(structure: SparsityStructure, bytePlanes: Bool) throws {
        let input = try #require(Self.modelDirectory) + "/model.safetensors"
        let model = try SafeTensorsFile(path: input)
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let publisher = try AtomicPublisher(target: dir.file("out"), id: "real")
        let plan = OutputPlan(shards: [.init(fileName: "model.safetensors", tensors: model.tensorNames)])
        let writer = try SparseCheckpointWriter(
            directory: publisher.stagingPath,
            plan: plan,
            structure: structure,
            bytePlanes: bytePlanes
        )
        var expected: [String: SHA256.Digest] = [:]
        var writeSeconds = 0.0
        for info in model.header.tensors {
            let prune = info.shape.count == 2 && info.name.hasSuffix("proj.weight") && info.dtype == .bf16
            var values = [UInt16](repeating: 0, count: info.elementCount)
            _ = values.withUnsafeMutableBytes { model.rawBytes(of: info).copyBytes(to: $0) }
            if prune { Self.magnitudePrune(&values, structure: structure) }
            try values.withUnsafeBytes { raw in
                expected[info.name] = {
                    var h = SHA256(); h.update(raw); return h.finalize()
                }()
                writeSeconds += try Self.seconds {
                    try writer.write(name: info.name, dtype: info.dtype, shape: info.shape, bytes: raw, pruned: prune)
                }
            }
        }
        let modelDir = try #require(Self.modelDirectory)
        let copied = ["tokenizer.json", "generation_config.json"].filter { FileIO.exists(modelDir + "/" + $0) }
        let manifest = try writer.finish(
            inputConfig: try Tool.read(modelDir + "/config.json"),
            copying: copied.map { .init(source: modelDir + "/" + $0, name: $0) }
        )
        try publisher.publish()
        let frame = dir.file("out/" + manifest.shards[0].name)
        #expect(try ExternalProcess.run(command: ["lz4", "-t", "-q", frame]).status == 0)

        let unpackSeconds = try Self.seconds {
            try SparseUnpacker.unpack(outputDirectory: dir.file("out"), destination: dir.file("dense"), mode: .dense)
        }
        let dense = try SafeTensorsFile(path: dir.file("dense/model.safetensors"))
        #expect(dense.header.tensors.count == model.header.tensors.count)
        for info in dense.header.tensors {
            var hash = SHA256()
            hash.update(dense.rawBytes(of: info))
            #expect(hash.finalize() == expected[info.name], "\(info.name) differs after unpack --dense")
        }
        var status: Int32 = 0
        let cliCompress = try Self.seconds {
            status = try ExternalProcess.run(command: [
                "lz4", "-1", "-q", "-f", "-B7", "-BI", input, dir.file("cli.lz4"),
            ]).status
        }
        #expect(status == 0)
        let cliDecompress = try Self.seconds {
            status = try ExternalProcess.run(command: [
                "lz4", "-d", "-q", "-f", dir.file("cli.lz4"), dir.file("cli.out"),
            ]).status
        }
        #expect(status == 0)
        if structure == .unstructured && !bytePlanes, let python = CompressedTensorsInteropTests.python {
            try Self.checkTransformersLoads(dir.file("dense"), python: python, scratch: dir)
        }
        let c = manifest.compression
        print(
            """
            [real-model] \(structure.rawValue) planes=\(bytePlanes): dense \(c.denseBytes) B, sparse safetensors \
            \(c.sparseBytes) B, lz4 \(c.lz4Bytes) B (ratio \(String(format: "%.3f", c.ratio))), global sparsity \
            \(String(format: "%.4f", c.globalSparsity)); write (pack+compress) \(String(format: "%.2f", writeSeconds)) CPU s \
            vs lz4 -1 CLI on the dense file \(String(format: "%.2f", cliCompress)) s (relative throughput \
            \(String(format: "%.2f", cliCompress / writeSeconds))); unpack --dense \(String(format: "%.2f", unpackSeconds)) s \
            vs lz4 -d \(String(format: "%.2f", cliDecompress)) s (relative \(String(format: "%.2f", cliDecompress / unpackSeconds)))
            """
        )
    }
}
