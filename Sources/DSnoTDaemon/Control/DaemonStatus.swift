// SPDX-License-Identifier: Apache-2.0
// The daemon-wide facts `status` reports beyond the scheduler's: state, start time, config path.

public import DSnoTControlProtocol
public import Foundation

/// Daemon-wide state shared by the control handler, the reload loop and the notifier.
public actor DaemonStatus {
    public private(set) var state: DaemonState = .running
    public let startedAt: Date
    public private(set) var configPath: String?
    public private(set) var configuration: DaemonConfiguration

    public init(configuration: DaemonConfiguration, configPath: String?, startedAt: Date = Date()) {
        self.configuration = configuration
        self.configPath = configPath
        self.startedAt = startedAt
    }

    public func setState(_ newState: DaemonState) { state = newState }

    public func setConfiguration(_ newConfiguration: DaemonConfiguration) { configuration = newConfiguration }
}
