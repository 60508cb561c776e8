// SPDX-License-Identifier: Apache-2.0
// The control protocol's version and size limits, shared by dsnotd and its clients.

/// The version of the control protocol spoken on dsnotd's Unix socket (see `docs/protocol.md`).
///
/// Every request carries `"version"`; dsnotd answers a different version with the error code
/// `version-mismatch` and keeps the connection open, so a newer client can tell the user what happened.
public enum ProtocolVersion {
    /// The version this build speaks.
    public static let current = 1

    /// The largest request line, in bytes, not counting the newline. Longer lines are answered with
    /// `request-too-large` and the connection is closed.
    public static let maximumRequestBytes = 64 * 1024
}
