// SPDX-License-Identifier: Apache-2.0
// sd_notify and the watchdog: READY=1, STATUS=, RELOADING=1, STOPPING=1, WATCHDOG=1.

import CSystemd
import Dispatch
public import Foundation

/// Wraps libsystemd's `sd_notify`. A no-op when `NOTIFY_SOCKET` is unset (not started by systemd).
///
/// ```swift
/// let notifier = SystemdNotifier()
/// notifier.ready(status: "idle")
/// ```
public struct SystemdNotifier: Sendable {
    public init() {}

    /// Sends a raw state string. The corresponding C function is `sd_notify`.
    /// - Returns: true when a notification socket received it.
    @discardableResult
    public func notify(_ state: String) -> Bool {
        sd_notify(0, state) > 0
    }

    /// `READY=1` with a status line.
    public func ready(status: String) { notify("READY=1\nSTATUS=\(Self.oneLine(status))") }

    /// `STATUS=` (one line), sent from a private serial queue: `sd_notify` is a blocking datagram send,
    /// and status updates come from actors that must never block on it.
    public func status(_ text: String) {
        let line = "STATUS=\(Self.oneLine(text))"
        Self.queue.async { sd_notify(0, line) }
    }

    private static let queue = DispatchQueue(label: "dsnot.sd-notify")

    /// `RELOADING=1` with `MONOTONIC_USEC`, as `Type=notify-reload` expects.
    public func reloading() {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let microseconds = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
        notify("RELOADING=1\nMONOTONIC_USEC=\(microseconds)")
    }

    /// `STOPPING=1`.
    public func stopping() { notify("STOPPING=1") }

    /// `WATCHDOG=1`.
    public func watchdog() { notify("WATCHDOG=1") }

    /// The watchdog period systemd expects (`WatchdogSec=`), or nil when the watchdog is off.
    /// The corresponding C function is `sd_watchdog_enabled`.
    public func watchdogInterval() -> Duration? {
        var microseconds: UInt64 = 0
        guard sd_watchdog_enabled(0, &microseconds) > 0, microseconds > 0 else { return nil }
        return .microseconds(Int64(microseconds))
    }

    static func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 }.prefix(200))
    }
}

/// Sockets passed by systemd socket activation.
public enum SocketActivation {
    /// The first listening descriptor passed by systemd, or nil when not socket-activated.
    /// The corresponding C function is `sd_listen_fds`.
    public static func listeningDescriptor() -> Int32? {
        let count = sd_listen_fds(1)
        return count >= 1 ? SD_LISTEN_FDS_START : nil
    }
}
