// SPDX-License-Identifier: Apache-2.0
// BenchFixtures: the tiny model checkpoints of DSnoTCoreTests, found from this file's path.

import Foundation

enum BenchFixtures {
    /// `Tests/DSnoTCoreTests/Resources/models` (the fixtures are not copied into a second bundle).
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("DSnoTCoreTests/Resources/models").path

    /// The directory of the fixture checkpoint `name`.
    static func model(_ name: String) -> String { "\(models)/\(name)" }
}
