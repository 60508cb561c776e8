// SPDX-License-Identifier: Apache-2.0
// Interop with the reference decompressor: compressed-tensors 0.14.0.1 restores the same dense tensors.

import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@testable import SparseFormat

/// Needs torch, so it runs only where `.venv-ct` exists (`python3 -m venv .venv-ct &&
/// .venv-ct/bin/pip install compressed-tensors==0.14.0.1`): found through `DSNOT_CT_PYTHON`, else
/// `$DSNOT_REPO/.venv-ct/bin/python`.
@Suite struct CompressedTensorsInteropTests {
    static var python: String? {
        let environment = ProcessInfo.processInfo.environment
        let candidates = [
            environment["DSNOT_CT_PYTHON"], environment["DSNOT_REPO"].map { $0 + "/.venv-ct/bin/python" },
        ]
        return candidates.compactMap { $0 }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static let script = """
        import sys, json, glob, torch
        from safetensors.torch import load_file
        from compressed_tensors.compressors import ModelCompressor
        ct, dense = sys.argv[1], sys.argv[2]
        qc = json.load(open(ct + "/config.json"))["quantization_config"]
        comp = ModelCompressor.from_compression_config(qc).sparsity_compressor
        out = dict(comp.decompress(ct, device="cpu"))
        ref = {}
        for f in sorted(glob.glob(dense + "/*.safetensors")): ref.update(load_file(f))
        assert set(out) == set(ref), sorted(set(out) ^ set(ref))
        def bits(t): return t.contiguous().view(torch.uint8)
        bad = [k for k in ref if out[k].dtype != ref[k].dtype or out[k].shape != ref[k].shape
               or not torch.equal(bits(out[k]), bits(ref[k]))]
        assert not bad, bad
        print("identical", len(ref), type(comp).__name__)
        """

    @Test(
        .enabled(if: python != nil, "no .venv-ct with compressed-tensors==0.14.0.1 and torch (DSNOT_CT_PYTHON)"),
        arguments: [DType.bf16, .f16, .f32],
        SparsityStructure.allCases
    )
    func compressedTensorsDecompressesToTheSameDenseWeights(dtype: DType, structure: SparsityStructure) throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        let fixture = try CheckpointFixture(dtype: dtype, structure: structure, in: dir)
        try SparseUnpacker.unpack(
            outputDirectory: fixture.output,
            destination: dir.file("ct"),
            mode: .compressedTensors
        )
        try SparseUnpacker.unpack(outputDirectory: fixture.output, destination: dir.file("dense"), mode: .dense)
        try Tool.write(dir.file("check.py"), Array(Self.script.utf8))
        let (status, output) = try ExternalProcess.run(command: [
            Self.python!, dir.file("check.py"), dir.file("ct"), dir.file("dense"),
        ])
        #expect(status == 0, "\(output)")
        #expect(output.contains("identical \(CheckpointFixture.tensors.count)"), "\(output)")
    }
}
