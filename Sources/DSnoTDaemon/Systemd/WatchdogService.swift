// SPDX-License-Identifier: Apache-2.0
// Sends WATCHDOG=1 at half the systemd watchdog period, from a task independent of the pruning thread.

public import ServiceLifecycle

/// Pets systemd's watchdog every `WatchdogSec/2`. It runs on the cooperative pool, which the pruning
/// thread never occupies, so a long block does not starve it; a wedged event loop or actor does.
public struct WatchdogService: Service {
    let notifier: SystemdNotifier
    let interval: Duration

    /// A watchdog service, or nil when systemd's watchdog is off.
    public init?(notifier: SystemdNotifier = SystemdNotifier()) {
        guard let period = notifier.watchdogInterval() else { return nil }
        self.notifier = notifier
        self.interval = period / 2
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                notifier.watchdog()
                try await Task.sleep(for: interval)
            }
        }
    }
}
