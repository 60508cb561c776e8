// SPDX-License-Identifier: Apache-2.0
// withBaseAddresses: the base pointers of several arrays at once, instead of one nested closure per array.

/// Calls `body` with the base address of each of `arrays`, in order, valid for the duration of the
/// call: the read-only operands of a kernel that works on raw pointers (several layers of
/// `withUnsafeBufferPointer` otherwise).
///
/// ```swift
/// withBaseAddresses([q.storage, k.storage, v.storage]) { p in
///     attend(q: p[0], k: p[1], v: p[2])
/// }
/// ```
func withBaseAddresses<Element, Result>(
    _ arrays: [[Element]],
    _ body: ([UnsafePointer<Element>]) -> Result
) -> Result {
    var pointers: [UnsafePointer<Element>] = []
    pointers.reserveCapacity(arrays.count)
    func nest(_ i: Int) -> Result {
        guard i < arrays.count else { return body(pointers) }
        return arrays[i].withUnsafeBufferPointer { buffer in
            // A Swift array always has storage, so an empty one has a base address too.
            pointers.append(buffer.baseAddress!)
            return nest(i + 1)
        }
    }
    return nest(0)
}
