// SPDX-License-Identifier: Apache-2.0
// Recipe+Label: the short recipe name in job listings and output directory names.

import DSnoTCore

extension Recipe {
    /// `"wanda-u50-dsnot"`, `"sparsegpt-2of4"`: method, shape (unstructured percent or N of M) and whether
    /// DSnoT refines. Output directories are named `<checkpoint>-<label>`, so the form stays as it is.
    var label: String {
        let shape: String
        switch pattern {
        case .unstructured(let ratio): shape = "u\(Int((ratio * 100).rounded()))"
        case .nOfM(let n, let m): shape = "\(n)of\(m)"
        }
        return "\(method.rawValue)-\(shape)\(dsnot != nil ? "-dsnot" : "")"
    }
}
