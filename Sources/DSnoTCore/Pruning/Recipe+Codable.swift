// SPDX-License-Identifier: Apache-2.0
// Recipe+Codable: the on-disk form of SparsityPattern (snake_case keys).

extension SparsityPattern: Codable {
    enum CodingKeys: String, CodingKey {
        case type, ratio, n, m
    }

    /// `{"type": "unstructured", "ratio": 0.6}` or `{"type": "n_of_m", "n": 2, "m": 4}` (an optional
    /// `"ratio"` must then be 0.5).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decode(String.self, forKey: .type)
        switch type {
        case "unstructured":
            self = .unstructured(try c.decode(Double.self, forKey: .ratio))
        case "n_of_m":
            let n = try c.decode(Int.self, forKey: .n)
            let m = try c.decode(Int.self, forKey: .m)
            if let ratio = try c.decodeIfPresent(Double.self, forKey: .ratio), ratio != 0.5 {
                throw PruningError.patternRatioMismatch(n: n, m: m, ratio: ratio)
            }
            self = .nOfM(n, m)
        default:
            throw DecodingError.dataCorruptedError(
                forKey: .type,
                in: c,
                debugDescription: "pattern type: expected \"unstructured\" or \"n_of_m\", got \"\(type)\""
            )
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .unstructured(let r):
            try c.encode("unstructured", forKey: .type)
            try c.encode(r, forKey: .ratio)
        case .nOfM(let n, let m):
            try c.encode("n_of_m", forKey: .type)
            try c.encode(n, forKey: .n)
            try c.encode(m, forKey: .m)
        }
    }
}
