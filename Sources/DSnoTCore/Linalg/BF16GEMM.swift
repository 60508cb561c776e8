// SPDX-License-Identifier: Apache-2.0
// BF16GEMM: y = x · Wᵀ with bfloat16 inputs and fp32 accumulation, through oneDNN's matmul primitive.

import CDNNL
import SafeTensors

/// `y = x · Wᵀ` with both operands rounded to bfloat16 (round to nearest even, as the checkpoint
/// writer rounds) and the products summed in fp32: what the reference code's half-precision forward
/// passes do on GPUs, at about twice the fp32 GEMM rate on CPUs with AVX-512 BF16 (`vdpbf16ps`) or
/// AMX. oneDNN picks the kernel at run time; without those instructions it computes the same thing
/// emulated, slower (`isAccelerated` says which). The weights are converted once (`Weights`), the
/// activations at every call. Inputs and outputs are fp32 `Matrix` values, so callers keep their
/// element-wise code.
///
/// `Linear` uses it when a recipe asks for `compute = "bf16"` (`ComputeFormat`);
/// `dsnot-bench bf16-gemm` measures it against `cblas_sgemm` at the pipeline's shapes.
///
/// ```swift
/// let packed = BF16GEMM.Weights(layer.weight)  // (out, in)
/// let y = try BF16GEMM.multiply(x, packed, threads: 1)  // (L, out)
/// ```
public enum BF16GEMM {
    /// A weight matrix `(out, in)` in bfloat16, row-major, ready for `multiply`.
    public struct Weights: Sendable, Equatable {
        public let rows: Int
        public let columns: Int
        /// Little-endian bfloat16 elements (the layout oneDNN reads on x86).
        let bits: [UInt8]

        public init(_ weight: Matrix) {
            rows = weight.rows
            columns = weight.columns
            bits = weight.storage.withUnsafeBufferPointer { FloatConversion.encode($0, as: .bf16) }
        }
    }

    /// A oneDNN call that did not succeed (out of memory, or a shape oneDNN refuses).
    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var call: String
        public var status: Int
        public var description: String { "oneDNN \(call) failed with status \(status)" }
    }

    /// Whether this CPU runs bf16 GEMMs natively: oneDNN's effective ISA includes AVX-512 BF16 (the ISA
    /// values are bit sets; AMX's includes it).
    public static var isAccelerated: Bool {
        let bf16 = dnnl_cpu_isa_avx512_core_bf16.rawValue
        return dnnl_get_effective_cpu_isa().rawValue & bf16 == bf16
    }

    /// Whether oneDNN can build and run its bf16 kernel in this process: one tiny product, tried once.
    /// It fails where the process may not map memory executable after writing it (oneDNN generates
    /// its kernels at run time): systemd's `MemoryDenyWriteExecute=yes`, for one.
    public static let probe: Result<Void, Failure> = Result { () throws(Failure) in
        let one = Matrix(rows: 1, columns: 1, storage: [1])
        do {
            _ = try multiply(one, Weights(one), threads: 1)
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(call: "multiply", status: -1)
        }
    }

    /// Whether `probe` succeeded: bf16 products run here (natively or emulated).
    public static var isAvailable: Bool { (try? probe.get()) != nil }

    /// The CPU engine, created once and shared (oneDNN engines are thread-safe).
    private static let engine: Result<UncheckedEngine, Failure> = Result { () throws(Failure) -> UncheckedEngine in
        var engine: dnnl_engine_t?
        try check("dnnl_engine_create", dnnl_engine_create(&engine, dnnl_cpu, 0))
        guard let engine else { throw Failure(call: "dnnl_engine_create", status: -1) }
        return UncheckedEngine(handle: engine)
    }

    /// `x · Wᵀ`.
    /// - Parameters:
    ///   - x: `(L, in)` fp32, rounded to bfloat16 for the product.
    ///   - weights: `(out, in)`.
    ///   - threads: OpenMP threads for this call (set on the calling thread, then restored); nil keeps
    ///     the thread's current setting.
    /// - Returns: `(L, out)` fp32.
    /// - Precondition: `x.columns == weights.columns` (a programming error, not data).
    public static func multiply(_ x: Matrix, _ weights: Weights, threads: Int? = nil) throws -> Matrix {
        precondition(
            x.columns == weights.columns,
            "BF16GEMM: input has \(x.columns) features, weights \(weights.columns)"
        )
        let (m, k, n) = (x.rows, x.columns, weights.rows)
        var y = Matrix(rows: m, columns: n)
        guard m > 0, n > 0 else { return y }
        let input = x.storage.withUnsafeBufferPointer { FloatConversion.encode($0, as: .bf16) }
        try input.withUnsafeBytes { a in
            try weights.bits.withUnsafeBytes { b in
                try y.storage.withUnsafeMutableBufferPointer { c in
                    try product(
                        m: m,
                        n: n,
                        k: k,
                        a: a.baseAddress!,
                        b: b.baseAddress!,
                        transposeB: true,
                        c: c.baseAddress!,
                        ldc: n,
                        threads: threads
                    )
                }
            }
        }
        return y
    }

    /// `C = A · op(B)` on operands already in bfloat16 (little-endian bits, row-major, contiguous), summed
    /// in fp32 into `c`. What `multiply` runs, and the attention's products (`CausalAttention`).
    /// - Parameters:
    ///   - a: `(m, k)`.
    ///   - b: `(k, n)`, or `(n, k)` when `transposeB`.
    ///   - c: `(m, n)` fp32 with leading dimension `ldc`; every element in it is written.
    ///   - threads: OpenMP threads for this call (set on the calling thread, then restored); nil keeps
    ///     the thread's current setting.
    public static func product(
        m: Int,
        n: Int,
        k: Int,
        a: UnsafeRawPointer,
        b: UnsafeRawPointer,
        transposeB: Bool,
        c: UnsafeMutablePointer<Float>,
        ldc: Int,
        threads: Int? = nil
    ) throws(Failure) {
        guard m > 0, n > 0, k > 0 else {
            for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) }
            return
        }
        let saved = omp_get_max_threads()
        if let threads { omp_set_num_threads(Int32(max(1, threads))) }
        defer { if threads != nil { omp_set_num_threads(saved) } }
        let engine = try engine.get().handle

        var source = dnnl_memory_desc_t()
        var other = dnnl_memory_desc_t()
        var destination = dnnl_memory_desc_t()
        try check(
            "dnnl_memory_desc_init_by_tag",
            dnnl_memory_desc_init_by_tag(&source, 2, [Int64(m), Int64(k)], dnnl_bf16, dnnl_ab)
        )
        // B stored (n, k) row-major is, as the (k, n) operand, column-major: tag `ba`.
        try check(
            "dnnl_memory_desc_init_by_tag",
            dnnl_memory_desc_init_by_tag(&other, 2, [Int64(k), Int64(n)], dnnl_bf16, transposeB ? dnnl_ba : dnnl_ab)
        )
        try check(
            "dnnl_memory_desc_init_by_strides",
            dnnl_memory_desc_init_by_strides(&destination, 2, [Int64(m), Int64(n)], dnnl_f32, [Int64(ldc), 1])
        )
        var operation = dnnl_matmul_desc_t()
        try check("dnnl_matmul_desc_init", dnnl_matmul_desc_init(&operation, &source, &other, nil, &destination))
        var descriptor: dnnl_primitive_desc_t?
        try check("dnnl_primitive_desc_create", dnnl_primitive_desc_create(&descriptor, &operation, nil, engine, nil))
        defer { dnnl_primitive_desc_destroy(descriptor) }
        // oneDNN's primitive cache makes this a lookup after the first call with a shape.
        var primitive: dnnl_primitive_t?
        try check("dnnl_primitive_create", dnnl_primitive_create(&primitive, descriptor))
        defer { dnnl_primitive_destroy(primitive) }
        var stream: dnnl_stream_t?
        try check("dnnl_stream_create", dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue))
        defer { dnnl_stream_destroy(stream) }

        var memories: [dnnl_memory_t?] = [nil, nil, nil]
        defer { for memory in memories where memory != nil { dnnl_memory_destroy(memory) } }
        // oneDNN only reads the inputs; its API takes one mutable handle type for every buffer.
        let buffers = [
            UnsafeMutableRawPointer(mutating: a), UnsafeMutableRawPointer(mutating: b), UnsafeMutableRawPointer(c),
        ]
        for (i, described) in [source, other, destination].enumerated() {
            var descriptor = described  // oneDNN copies it
            try check("dnnl_memory_create", dnnl_memory_create(&memories[i], &descriptor, engine, buffers[i]))
        }
        let arguments = [
            dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: memories[0]),
            dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: memories[1]),
            dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: memories[2]),
        ]
        try check("dnnl_primitive_execute", dnnl_primitive_execute(primitive, stream, 3, arguments))
        try check("dnnl_stream_wait", dnnl_stream_wait(stream))
    }

    private static func check(_ call: String, _ status: dnnl_status_t) throws(Failure) {
        guard status == dnnl_success else { throw Failure(call: call, status: Int(status.rawValue)) }
    }

    /// The engine handle, shared by every thread (oneDNN documents engines as thread-safe).
    private struct UncheckedEngine: @unchecked Sendable {
        let handle: dnnl_engine_t
    }
}
