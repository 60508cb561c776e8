// SPDX-License-Identifier: Apache-2.0
// config.json through prune and unpack --dense: Python's json reads back the same values of the same types.

import DSnoTTestSupport
import Foundation
import SafeTensors
import Testing

@testable import SparseFormat

@Suite struct ConfigSpellingTests {
    /// Whole-number floats (Gemma 2's `final_logit_softcapping: 30.0`), exponents, integers beyond
    /// 2^53, nesting, arrays, unicode and escapes.
    static let config = #"""
        {"model_type": "gemma2", "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0,
         "rms_norm_eps": 1e-06, "initializer_range": 0.02, "dropout": 0.5, "rope_theta": 10000.0,
         "hidden_size": 8, "vocab_size": 256000, "big": 9007199254740993, "negative": -3, "tiny": 5e-324,
         "huge": 1.7976931348623157e+308, "third": 0.3333333333333333, "zero_float": 0.0, "minus_zero": -0.0,
         "rope_scaling": {"type": "linear", "factor": 2.0, "nested": {"list": [1, 2.0, "x", null, true, false]}},
         "empty_object": {}, "empty_array": [], "name": "Grüße ✓ 𝄞 \"quoted\" \\ \n tab\t \u0001",
         "architectures": ["Gemma2ForCausalLM"], "tie_word_embeddings": true, "pad_token_id": null}
        """#

    /// Compares the two files value by value with each value's Python type (`30 == 30.0` in Python,
    /// so equality alone would not see a float turned into an integer) and key order.
    static let script = """
        import sys, json
        def typed(v):
            if isinstance(v, dict): return [(k, typed(x)) for k, x in v.items()]
            if isinstance(v, list): return [typed(x) for x in v]
            return (type(v).__name__, repr(v))
        source, written, expect_qc = json.load(open(sys.argv[1], encoding="utf-8")), \\
            json.load(open(sys.argv[2], encoding="utf-8")), sys.argv[3] == "sparse"
        qc = written.pop("quantization_config", None)
        assert (qc is not None) == expect_qc, qc
        if qc is not None:
            assert qc["quant_method"] == "compressed-tensors", qc
            assert isinstance(qc["sparsity_config"]["global_sparsity"], float), qc
        assert typed(source) == typed(written), (typed(source), typed(written))
        assert written["final_logit_softcapping"] == 30.0 and type(written["final_logit_softcapping"]) is float
        print("same", len(source))
        """

    @Test(
        .enabled(if: ExternalProcess.python != nil, "DSNOT_PYTHON is not set: the Python json peer is unavailable"),
        arguments: SparsityStructure.allCases
    )
    func pythonReadsBackEveryValueWithItsType(structure: SparsityStructure) throws {
        let dir = try TemporaryDirectory("sparseformat-test")
        defer { dir.remove() }
        try Tool.write(dir.file("input.json"), Array(Self.config.utf8))
        let fixture = try CheckpointFixture(dtype: .bf16, structure: structure, in: dir, config: Self.config)
        try SparseUnpacker.unpack(outputDirectory: fixture.output, destination: dir.file("dense"), mode: .dense)
        try Tool.write(dir.file("check.py"), Array(Self.script.utf8))
        let keys = 23
        for (written, mode) in [(fixture.output, "sparse"), (dir.file("dense"), "dense")] {
            let (status, output) = try ExternalProcess.run(command: [
                ExternalProcess.python!, dir.file("check.py"), dir.file("input.json"), written + "/config.json", mode,
            ])
            #expect(status == 0, "\(mode): \(output)")
            #expect(output == "same \(keys)\n", "\(mode): \(output)")
        }
        let text = String(decoding: try Tool.read(fixture.output + "/config.json"), as: UTF8.self)
        #expect(text.contains(#""final_logit_softcapping": 30.0,"#))
        #expect(text.contains(#""rms_norm_eps": 1e-06,"#))
        #expect(text.contains(#""big": 9007199254740993,"#))
    }

    @Test func aConfigThatIsNotAJSONObjectIsRejectedByName() throws {
        for (text, reason) in [("[1, 2]", "an array, expected a JSON object"), ("{\"a\": 1,}", "trailing comma")] {
            let error = #expect(throws: SparseFormatError.self) {
                try StrictJSON.object(Array(text.utf8), what: "config.json")
            }
            guard case .invalidOutput(let path, let message) = error else {
                Issue.record("expected invalidOutput, got \(String(describing: error))")
                continue
            }
            #expect(path == "config.json")
            #expect(message.contains(reason), "\(message)")
        }
    }
}
