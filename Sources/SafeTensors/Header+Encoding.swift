// SPDX-License-Identifier: Apache-2.0
// Header+Encoding: lays out and serializes a header for the writers, as the reference does.

extension Header {
    /// The header a writer puts in front of `declarations`, with data offsets in declaration order.
    ///
    /// The JSON is `{"__metadata__":{…},"name":{"dtype":…,"shape":[…],"data_offsets":[b,e]},…}` with
    /// tensors in declaration order, padded with spaces so that the data section starts at a
    /// multiple of 8 bytes, like huggingface/safetensors.
    /// - Parameters:
    ///   - declarations: the tensors, in the order their bytes will follow the header.
    ///   - metadata: the `__metadata__` object (omitted when empty).
    ///   - file: the destination's name, for error messages.
    /// - Returns: the complete prefix (8-byte length + JSON) and the validated header it encodes.
    /// Public so that other writers (an LZ4-framed sink, a custom layout) can plan a file exactly as
    /// `SafeTensorsStreamWriter` would.
    /// - Throws: `SafeTensorsError.invalidDeclaration` for a duplicate or reserved name, a
    ///   negative dimension, a size overflow, or a header longer than `Header.maximumLength`.
    public static func encode(
        declarations: [TensorDeclaration],
        metadata: [String: String],
        file: String
    ) throws -> (prefix: [UInt8], header: Header) {
        var seen = Set<String>()
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(declarations.count)
        var offset = 0
        for declaration in declarations {
            let name = declaration.name
            guard name != "__metadata__" else {
                throw SafeTensorsError.invalidDeclaration(file: file, tensor: name, reason: "the name is reserved")
            }
            guard seen.insert(name).inserted else {
                throw SafeTensorsError.invalidDeclaration(file: file, tensor: name, reason: "declared twice")
            }
            guard let bytes = TensorInfo.checkedByteCount(shape: declaration.shape, dtype: declaration.dtype) else {
                throw SafeTensorsError.invalidDeclaration(
                    file: file,
                    tensor: name,
                    reason: "shape \(declaration.shape) has a negative dimension or its size overflows"
                )
            }
            let (end, overflow) = offset.addingReportingOverflow(bytes)
            guard !overflow else {
                throw SafeTensorsError.invalidDeclaration(file: file, tensor: name, reason: "file size overflows")
            }
            tensors.append(
                TensorInfo(name: name, dtype: declaration.dtype, shape: declaration.shape, dataOffsets: offset..<end)
            )
            offset = end
        }

        var json: [UInt8] = Array("{".utf8)
        if !metadata.isEmpty {
            json += Array("\"__metadata__\":{".utf8)
            for (i, key) in metadata.keys.sorted().enumerated() {
                if i > 0 { json.append(UInt8(ascii: ",")) }
                appendJSONString(key, to: &json)
                json.append(UInt8(ascii: ":"))
                appendJSONString(metadata[key] ?? "", to: &json)
            }
            json.append(UInt8(ascii: "}"))
        }
        for (i, tensor) in tensors.enumerated() {
            if i > 0 || !metadata.isEmpty { json.append(UInt8(ascii: ",")) }
            appendJSONString(tensor.name, to: &json)
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            let entry =
                ":{\"dtype\":\"\(tensor.dtype.rawValue)\",\"shape\":[\(shape)],"
                + "\"data_offsets\":[\(tensor.dataOffsets.lowerBound),\(tensor.dataOffsets.upperBound)]}"
            json += Array(entry.utf8)
        }
        json.append(UInt8(ascii: "}"))
        // Pad with spaces so that 8 + length is a multiple of 8 (typed views of the data stay aligned).
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        guard json.count <= Header.maximumLength else {
            throw SafeTensorsError.invalidDeclaration(
                file: file,
                tensor: tensors.last?.name ?? "",
                reason: "header of \(json.count) bytes exceeds the limit of \(Header.maximumLength)"
            )
        }
        var prefix: [UInt8] = []
        prefix.reserveCapacity(8 + json.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { prefix += $0 }
        prefix += json
        return (prefix, Header(tensors: tensors, metadata: metadata, length: json.count))
    }

    /// Appends `string` as a JSON string literal (quotes, backslashes and control characters escaped).
    static func appendJSONString(_ string: String, to json: inout [UInt8]) {
        json.append(UInt8(ascii: "\""))
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "\""): json += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): json += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                json += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: json.append(byte)
            }
        }
        json.append(UInt8(ascii: "\""))
    }
}
