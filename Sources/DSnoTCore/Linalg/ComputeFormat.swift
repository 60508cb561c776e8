// SPDX-License-Identifier: Apache-2.0
// ComputeFormat: the number format of the forward passes' GEMM inputs (`compute` in a recipe).

/// What the linear layers' GEMMs take as inputs during the forward passes (statistics, propagation,
/// DSnoT's checks, OWL's pass, perplexity): fp32 (`cblas_sgemm`), or bfloat16 with fp32 accumulation
/// (`BF16GEMM`, oneDNN). Everything else stays fp32 either way: norms, RoPE, attention scores and
/// softmax, activations, the statistics (sums, Gram/Hessian), the base pruners, DSnoT, the LM head.
public enum ComputeFormat: String, Sendable, Equatable, Hashable, CaseIterable, RecipeChoice {
    case fp32
    case bf16

    /// What runs here when `self` is asked for, and a notice when that differs: bf16 runs only where
    /// oneDNN finds AVX-512 BF16 (or AMX) and can build its kernels in this process (`BF16GEMM.probe`);
    /// elsewhere the passes run in fp32 (oneDNN's emulated bf16 would be slower than fp32).
    public var effective: (format: ComputeFormat, notice: String?) {
        guard self == .bf16 else { return (self, nil) }
        guard BF16GEMM.isAccelerated else {
            return (
                .fp32,
                "compute = \"bf16\" was asked for, but this CPU has no AVX-512 BF16 instructions: "
                    + "the forward passes run in fp32"
            )
        }
        if case .failure(let failure) = BF16GEMM.probe {
            return (
                .fp32,
                "compute = \"bf16\" was asked for, but oneDNN cannot build its kernels in this process "
                    + "(\(failure); under systemd, MemoryDenyWriteExecute=yes forbids run-time code): "
                    + "the forward passes run in fp32"
            )
        }
        return (.bf16, nil)
    }
}
