// SPDX-License-Identifier: Apache-2.0
// SafeTensorsStreamWriter: writes a safetensors file tensor by tensor into a ByteSink.

/// Writes a safetensors file front to back without holding it in memory.
///
/// The header is computed from the declared tensor list and written first (data offsets in
/// declaration order, padded with spaces to a multiple of 8 like the reference). Tensors must then
/// be written in declaration order with exactly the byte size their declaration implies; `finish()`
/// checks that every tensor was written and hands the sink back.
///
/// ```swift
/// let declarations = [TensorDeclaration(name: "w", dtype: .f32, shape: [2, 2])]
/// var writer = try SafeTensorsStreamWriter(declarations: declarations, metadata: ["format": "pt"],
///                                          sink: try AtomicFileSink(path: "out.safetensors"))
/// try writer.write(name: "w", contentsOf: [Float](repeating: 0, count: 4))
/// try writer.finish().commit()
/// ```
public struct SafeTensorsStreamWriter<Sink: ByteSink> {
    /// The header being written (tensors in declaration order).
    public let header: Header
    private var sink: Sink
    private var next = 0
    private var finished = false

    /// Lays out and writes the header.
    /// - Parameters:
    ///   - declarations: the tensors, in the order they will be written.
    ///   - metadata: the `__metadata__` object (omitted when empty).
    ///   - sink: where the bytes go.
    /// - Throws: `SafeTensorsError.invalidDeclaration` (duplicate or reserved name, bad shape, header
    ///   too large), or what the sink throws.
    public init(declarations: [TensorDeclaration], metadata: [String: String] = [:], sink: Sink) throws {
        let (prefix, header) = try Header.encode(
            declarations: declarations,
            metadata: metadata,
            file: sink.destinationName
        )
        self.header = header
        self.sink = sink
        try prefix.withUnsafeBytes { try self.sink.write($0) }
    }

    /// The destination's name, for error messages.
    public var destinationName: String { sink.destinationName }

    /// The declared tensor expected next, or `nil` when all have been written.
    public var nextTensor: TensorInfo? { next < header.tensors.count ? header.tensors[next] : nil }

    /// Writes the next tensor's bytes.
    /// - Parameters:
    ///   - name: must be the next declared tensor.
    ///   - bytes: exactly shape × dtype bytes, little-endian.
    /// - Throws: `SafeTensorsError.unexpectedTensor` (wrong order, unknown or repeated name),
    ///   `.wrongByteCount`, `.writerClosed`, or what the sink throws.
    public mutating func write(name: String, bytes: UnsafeRawBufferPointer) throws {
        guard !finished else { throw SafeTensorsError.writerClosed(file: destinationName) }
        guard let expected = nextTensor, expected.name == name else {
            let what = nextTensor.map { "'\($0.name)' (declaration order)" } ?? "no more tensors"
            throw SafeTensorsError.unexpectedTensor(file: destinationName, tensor: name, expected: what)
        }
        guard bytes.count == expected.byteCount else {
            throw SafeTensorsError.wrongByteCount(
                file: destinationName,
                tensor: name,
                expectedBytes: expected.byteCount,
                actualBytes: bytes.count
            )
        }
        if !bytes.isEmpty { try sink.write(bytes) }
        next += 1
    }

    /// Writes the next tensor from an array of elements (their in-memory, little-endian bytes).
    /// - Throws: as `write(name:bytes:)`.
    public mutating func write<Element: BitwiseCopyable>(name: String, contentsOf values: [Element]) throws {
        try values.withUnsafeBytes { try write(name: name, bytes: $0) }
    }

    /// Checks that every declared tensor was written and returns the sink (to commit, say).
    /// - Throws: `SafeTensorsError.missingTensors` or `.writerClosed`.
    public mutating func finish() throws -> Sink {
        guard !finished else { throw SafeTensorsError.writerClosed(file: destinationName) }
        guard next == header.tensors.count else {
            throw SafeTensorsError.missingTensors(
                file: destinationName,
                tensors: header.tensors[next...].map(\.name)
            )
        }
        finished = true
        return sink
    }
}

extension SafeTensorsStreamWriter where Sink == AtomicFileSink {
    /// Writes a whole file atomically from in-memory tensors (fixtures, small outputs).
    /// - Parameters:
    ///   - path: the final path; must not exist.
    ///   - tensors: declarations with their bytes, in file order.
    ///   - metadata: the `__metadata__` object.
    /// - Throws: `SafeTensorsError`.
    public static func writeFile(
        path: String,
        tensors: [(TensorDeclaration, [UInt8])],
        metadata: [String: String] = [:]
    ) throws {
        let sink = try AtomicFileSink(path: path)
        do {
            var writer = try SafeTensorsStreamWriter(declarations: tensors.map(\.0), metadata: metadata, sink: sink)
            for (declaration, bytes) in tensors { try writer.write(name: declaration.name, contentsOf: bytes) }
            try writer.finish().commit()
        } catch {
            sink.abort()
            throw error
        }
    }
}
