// SPDX-License-Identifier: Apache-2.0
// DSnoT+RowKernel: one row of DSnoT (B§5.2 unstructured, B§5.3 N:M) with the guarded rules of B§5.7.
// Shapes: every pointer in `Shared` is a row-major (out, in) matrix or an (in) vector; a row has `columns` entries.

extension DSnoT {
    /// The per-row algorithm. Pure and allocation-free per row (all buffers live in `Scratch`).
    ///
    /// Guarded rules (D7): a row stops when the candidate list it needs is exhausted; regrowth
    /// candidates are pruned columns with a non-zero score `G`; kept columns with `D = 0` are not
    /// pruning candidates; N:M stops a row whose regrowth group has no kept weight left. Stopped
    /// rows are never written. With long enough lists this is exactly the reference.
    struct RowKernel: Sendable {
        let columns: Int
        let cycles: Int
        let threshold: Float
        let sameSign: Bool
        let group: (n: Int, m: Int)?
        let divide: Bool

        /// Read-only layer data shared by all rows.
        struct Shared {
            let dense: UnsafePointer<Float>  // W (out, in)
            let current: UnsafePointer<Float>  // Wc (out, in): W, or SparseGPT's Ws for D9
            let wanda: UnsafePointer<Float>  // |Wc|·sqrt(scaler_row) (out, in)
            let base: UnsafePointer<Float>  // base score (out, in), N:M availability
            let mu: UnsafePointer<Float>  // μ̃ = sum_row (in)
            let divisor: UnsafePointer<Float>  // v^γ (in)
            let hessian: UnsafePointer<Float>?  // H (in, in) for accept = true-error
        }

        /// Per-thread buffers, reused for every row of a chunk. Candidate lists hold at most `T`
        /// entries: a row consumes at most one entry per swap from each list.
        final class Scratch {
            let packedA: UnsafeMutablePointer<UInt64>
            let packedB: UnsafeMutablePointer<UInt64>
            let regrowLow: UnsafeMutablePointer<Int32>  // pruned, G < 0, ascending (cursor lo)
            let regrowHigh: UnsafeMutablePointer<Int32>  // pruned, G > 0, descending (cursor hi)
            let pruneNeg: UnsafeMutablePointer<Int32>  // kept, D < 0, ascending Wanda
            let prunePos: UnsafeMutablePointer<Int32>  // kept, D > 0, ascending Wanda
            let dRegrow: UnsafeMutablePointer<Float>  // W_ij μ̃_j
            let dPrune: UnsafeMutablePointer<Float>  // Wc_ij μ̃_j
            let available: UnsafeMutablePointer<Float>
            let baseRow: UnsafeMutablePointer<UInt8>
            let prunedBySwap: UnsafeMutablePointer<Int32>
            let regrownBySwap: UnsafeMutablePointer<Int32>

            init(columns c: Int, cycles: Int) {
                let n = max(1, c)
                let t = max(1, min(cycles, c))
                packedA = .allocate(capacity: n)
                packedB = .allocate(capacity: n)
                regrowLow = .allocate(capacity: t)
                regrowHigh = .allocate(capacity: t)
                pruneNeg = .allocate(capacity: t)
                prunePos = .allocate(capacity: t)
                dRegrow = .allocate(capacity: n)
                dPrune = .allocate(capacity: n)
                available = .allocate(capacity: n)
                baseRow = .allocate(capacity: n)
                prunedBySwap = .allocate(capacity: t)
                regrownBySwap = .allocate(capacity: t)
            }

            deinit {
                packedA.deallocate()
                packedB.deallocate()
                for p in [regrowLow, regrowHigh, pruneNeg, prunePos, prunedBySwap, regrownBySwap] { p.deallocate() }
                for p in [dRegrow, dPrune, available] { p.deallocate() }
                baseRow.deallocate()
            }

            /// Sorts the first `cycles` of `packed[0..<count]` and writes their indices into `out`.
            func sortedList(
                _ packed: UnsafeMutablePointer<UInt64>,
                count: Int,
                cycles: Int,
                descending: Bool,
                into out: UnsafeMutablePointer<Int32>
            ) -> Int {
                let m = StableArgsort.sortedPrefix(packed, count: count, length: cycles)
                for i in 0..<m { out[i] = StableArgsort.index(packed[i], descending: descending) }
                return m
            }
        }

        struct RowResult: Sendable {
            var swaps: Int
            var errorBefore: Double
            var errorAfter: Double
            var rejected: Bool
        }

        @inline(__always)
        static func sign(_ x: Float) -> Int { x > 0 ? 1 : (x < 0 ? -1 : 0) }

        /// Refines `mask[0..<columns]` (row `r` of the layer) in place.
        func run(row r: Int, shared: Shared, mask: UnsafeMutablePointer<UInt8>, scratch s: Scratch) -> RowResult {
            let c = columns
            let off = r * c
            // 1. D for both directions and the starting error e = Σ_j (W − W_sparse)_j μ̃_j.
            var e0 = 0.0
            for j in 0..<c {
                let dr = shared.dense[off + j] * shared.mu[j]
                let dp = shared.current[off + j] * shared.mu[j]
                s.dRegrow[j] = dr
                s.dPrune[j] = dp
                s.baseRow[j] = mask[j]
                e0 += mask[j] != 0 ? Double(dr) : Double(dr) - Double(dp)
            }
            var e = Float(e0)
            let eStart = e
            let s0 = Self.sign(e)
            // 2. Regrowth lists from the pruned columns with G = D / v^γ ≠ 0: the stable ascending order
            //    walked from its start (G < 0, cursor lo) and from its end (G > 0, cursor hi).
            var nNegG = 0
            var nPosG = 0
            for j in 0..<c where mask[j] != 0 {
                let g = divide ? s.dRegrow[j] / shared.divisor[j] : s.dRegrow[j]
                if g < 0 {
                    s.packedA[nNegG] = StableArgsort.pack(g, j)
                    nNegG += 1
                } else if g > 0 {
                    s.packedB[nPosG] = StableArgsort.packDescending(g, j)
                    nPosG += 1
                }
            }
            let nLow = s.sortedList(s.packedA, count: nNegG, cycles: cycles, descending: false, into: s.regrowLow)
            let nHigh = s.sortedList(s.packedB, count: nPosG, cycles: cycles, descending: true, into: s.regrowHigh)
            // 3. Pruning candidates: unstructured → kept columns by ascending Wanda score, split by the
            //    sign of D (D = 0 is no candidate); N:M → availability A = base score, ∞ when pruned.
            var nNeg = 0
            var nPos = 0
            if group != nil {
                for j in 0..<c { s.available[j] = mask[j] != 0 ? .infinity : shared.base[off + j] }
            } else {
                var kn = 0
                var kp = 0
                for j in 0..<c where mask[j] == 0 {
                    let d = s.dPrune[j]
                    if d < 0 {
                        s.packedA[kn] = StableArgsort.pack(shared.wanda[off + j], j)
                        kn += 1
                    } else if d > 0 {
                        s.packedB[kp] = StableArgsort.pack(shared.wanda[off + j], j)
                        kp += 1
                    }
                }
                nNeg = s.sortedList(s.packedA, count: kn, cycles: cycles, descending: false, into: s.pruneNeg)
                nPos = s.sortedList(s.packedB, count: kp, cycles: cycles, descending: false, into: s.prunePos)
            }
            // 4. The swap loop.
            var lo = 0
            var hi = 0
            var pn = 0
            var pp = 0
            var swaps = 0
            for _ in 0..<cycles {
                if group == nil && !(abs(e) > threshold) { break }
                let g: Int
                if e > 0 {
                    guard hi < nHigh else { break }
                    g = Int(s.regrowHigh[hi])
                    hi += 1
                } else {
                    guard lo < nLow else { break }
                    g = Int(s.regrowLow[lo])
                    lo += 1
                }
                let p: Int
                if let grp = group {
                    let start = g - g % grp.m
                    var best = start
                    for k in (start + 1)..<(start + grp.m) where s.available[k] < s.available[best] { best = k }
                    guard s.available[best] < .infinity else { break }
                    s.available[best] = .infinity
                    p = best
                } else if e < 0 {
                    guard pp < nPos else { break }
                    p = Int(s.prunePos[pp])
                    pp += 1
                } else {
                    guard pn < nNeg else { break }
                    p = Int(s.pruneNeg[pn])
                    pn += 1
                }
                let eAfter = (e + s.dPrune[p]) - s.dRegrow[g]
                if group != nil {
                    if !(abs(e) > threshold && Self.sign(eAfter) == s0) { break }
                } else if sameSign && Self.sign(eAfter) != s0 {
                    break
                }
                mask[p] = 1
                mask[g] = 0
                s.prunedBySwap[swaps] = Int32(p)
                s.regrownBySwap[swaps] = Int32(g)
                swaps += 1
                e = eAfter
            }
            var result = RowResult(
                swaps: swaps,
                errorBefore: Double(abs(eStart)),
                errorAfter: Double(abs(e)),
                rejected: false
            )
            // 5. Optional acceptance on the true error Δwᵀ H Δw.
            if swaps > 0, let h = shared.hessian,
                !lowersTrueError(row: r, shared: shared, hessian: h, swaps: swaps, scratch: s)
            {
                for j in 0..<c { mask[j] = s.baseRow[j] }
                result = RowResult(
                    swaps: 0,
                    errorBefore: result.errorBefore,
                    errorAfter: result.errorBefore,
                    rejected: true
                )
            }
            return result
        }

        /// Whether the swaps lower `Δwᵀ H Δw`. With `δ` = change of `Δw` (non-zero only on the swapped
        /// columns), the change is `2 δᵀ H Δw_base + δᵀ H δ`: O(swaps · C_in) instead of O(C_in²).
        func lowersTrueError(
            row r: Int,
            shared: Shared,
            hessian h: UnsafePointer<Float>,
            swaps: Int,
            scratch s: Scratch
        ) -> Bool {
            let c = columns
            let off = r * c
            var change = 0.0
            var support: [(Int, Double)] = []
            support.reserveCapacity(2 * swaps)
            for k in 0..<swaps {
                let p = Int(s.prunedBySwap[k])
                let g = Int(s.regrownBySwap[k])
                support.append((p, Double(shared.current[off + p])))  // Δ_p: W_p − Wc_p → W_p
                support.append((g, -Double(shared.dense[off + g])))  // Δ_g: W_g → 0
            }
            for (j, dj) in support {
                // (H Δw_base)_j with Δw_base = W − W_sparse(base).
                var hd = 0.0
                let hRow = h + j * c
                for k in 0..<c {
                    let delta =
                        s.baseRow[k] != 0 ? shared.dense[off + k] : shared.dense[off + k] - shared.current[off + k]
                    if delta != 0 { hd += Double(hRow[k]) * Double(delta) }
                }
                change += 2 * dj * hd
                for (k, dk) in support { change += dj * dk * Double(hRow[k]) }
            }
            return change < 0
        }
    }
}
