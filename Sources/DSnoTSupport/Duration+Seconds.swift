// SPDX-License-Identifier: Apache-2.0
// Duration in seconds as a Double: what reports and logs record for a timed step.

extension Duration {
    /// The duration in seconds (attoseconds included), e.g. `start.duration(to: clock.now).inSeconds`.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) * 1e-18
    }
}
