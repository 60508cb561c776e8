// SPDX-License-Identifier: Apache-2.0
// TestSupport: hand-built safetensors bytes for the SafeTensors tests.

import Foundation
import SafeTensors

/// A safetensors file from a literal header and data bytes: 8-byte LE length, header, data.
func safetensorsBytes(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let json = Array(header.utf8)
    var bytes: [UInt8] = []
    withUnsafeBytes(of: (declaredLength ?? UInt64(json.count)).littleEndian) { bytes += $0 }
    return bytes + json + data
}

/// Little-endian bytes of an array of fixed-width values.
func littleEndianBytes<T: BitwiseCopyable>(_ values: [T]) -> [UInt8] {
    values.withUnsafeBytes { Array($0) }
}
