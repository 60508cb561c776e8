// SPDX-License-Identifier: Apache-2.0
// TensorSource: the tensors of a checkpoint as the model engine reads them (one file or a sharded set).

public import SafeTensors

/// Where a model's tensors come from: a single memory-mapped safetensors file or a (sharded)
/// `Checkpoint`. The engine needs only names, header entries and zero-copy bytes.
///
/// ```swift
/// let file = try SafeTensorsFile(path: "model.safetensors")
/// let model = try ModelRegistry.load(configPath: "config.json", tensors: file)
/// ```
public protocol TensorSource: Sendable {
    /// A human-readable location (path) for error messages.
    var location: String { get }
    /// Every tensor name.
    var tensorNames: [String] { get }
    /// The header entry of a tensor, or `nil` when absent.
    func tensorInfo(named name: String) -> TensorInfo?
    /// Calls `body` with a zero-copy view of a tensor's bytes (valid only inside `body`).
    /// - Throws: when the tensor is absent, or whatever `body` throws.
    func withTensorBytes<R>(named name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R
    /// Tells a memory-mapped source that a tensor's bytes were consumed (converted to fp32 or
    /// copied), so it may drop their pages from the process's resident set. Default: nothing.
    func releasePages(named name: String)
}

extension TensorSource {
    public func releasePages(named name: String) {}
}

extension SafeTensorsFile: TensorSource {
    public var location: String { path }

    public func tensorInfo(named name: String) -> TensorInfo? { info(ifPresent: name) }

    public func withTensorBytes<R>(named name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try body(rawBytes(of: try info(named: name)))
    }

    public func releasePages(named name: String) {
        if let info = info(ifPresent: name) { releasePages(of: info) }
    }
}

extension Checkpoint: TensorSource {
    public var location: String { indexPath ?? files.first?.path ?? directory }

    public func tensorInfo(named name: String) -> TensorInfo? { try? info(named: name) }

    public func withTensorBytes<R>(named name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try body(rawBytes(named: name))
    }

    // `releasePages(named:)`: Checkpoint's own method satisfies the requirement.
}

/// Reads tensors from a `TensorSource` as fp32 after checking presence, dtype, shape and finiteness.
struct WeightReader: Sendable {
    let source: any TensorSource

    /// The header entry of a float tensor of exactly `shape`.
    /// - Throws: `ModelLoadError.missingTensor`, `.unsupportedDType`, `.shapeMismatch`.
    func checkedInfo(_ name: String, shape: [Int]) throws -> TensorInfo {
        guard let info = source.tensorInfo(named: name) else {
            throw ModelLoadError.missingTensor(name: name, source: source.location)
        }
        guard info.dtype.isFloatingPoint else {
            throw ModelLoadError.unsupportedDType(tensor: name, dtype: info.dtype.rawValue)
        }
        guard info.shape == shape else {
            throw ModelLoadError.shapeMismatch(tensor: name, expected: shape, got: info.shape)
        }
        return info
    }

    /// A tensor converted to fp32, checked finite.
    func floats(_ name: String, shape: [Int]) throws -> [Float] {
        let info = try checkedInfo(name, shape: shape)
        let values = try source.withTensorBytes(named: name) { raw in
            [Float](unsafeUninitializedCapacity: info.elementCount) { buffer, count in
                FloatConversion.convert(raw, dtype: info.dtype, into: buffer)
                count = info.elementCount
            }
        }
        try Self.requireFinite(values, tensor: name, offset: 0)
        // The fp32 copy is what the engine keeps; the mapped pages need not stay resident (D3's
        // one-block-at-a-time memory bound, MemoryEstimate.checkpointPages).
        source.releasePages(named: name)
        return values
    }

    /// A 2-D tensor `(rows, columns)` as a `Matrix`.
    func matrix(_ name: String, rows: Int, columns: Int) throws -> Matrix {
        Matrix(rows: rows, columns: columns, storage: try floats(name, shape: [rows, columns]))
    }

    /// Converts rows `range` of a 2-D tensor `(rows, columns)` into `destination` (row-major), checked finite.
    /// - Precondition: `destination.count == range.count * columns` (the caller sized it).
    func readRows(
        _ name: String,
        info: TensorInfo,
        range: Range<Int>,
        into destination: UnsafeMutableBufferPointer<Float>
    ) throws {
        let columns = info.shape[1]
        precondition(destination.count == range.count * columns, "readRows: destination size")
        let width = info.dtype.byteWidth
        try source.withTensorBytes(named: name) { raw in
            let slice = UnsafeRawBufferPointer(
                rebasing: raw[(range.lowerBound * columns * width)..<(range.upperBound * columns * width)]
            )
            FloatConversion.convert(slice, dtype: info.dtype, into: destination)
        }
        try Self.requireFinite(UnsafeBufferPointer(destination), tensor: name, offset: range.lowerBound * columns)
    }

    /// - Throws: `ModelLoadError.nonFiniteWeight` naming the first bad element.
    static func requireFinite<C: Collection<Float>>(_ values: C, tensor: String, offset: Int) throws
    where C.Index == Int {
        for i in values.indices where !values[i].isFinite {
            throw ModelLoadError.nonFiniteWeight(
                tensor: tensor,
                index: offset + i - values.startIndex,
                value: values[i]
            )
        }
    }
}
