// SPDX-License-Identifier: Apache-2.0
// Typed wrappers over `ControlClient.send` for each command.

public import DSnoTControlProtocol

extension ControlClient {
    /// `status`.
    public func status() throws -> StatusReport {
        try require(try send(.status).status, "status")
    }

    /// `list`, newest first.
    public func jobs(state: JobState? = nil, watch: String? = nil, limit: Int? = nil) throws -> [JobRecord] {
        try require(try send(.list(state: state, watch: watch, limit: limit)).jobs, "jobs")
    }

    /// `show JOB`.
    public func job(_ id: String) throws -> JobRecord {
        try require(try send(.show(job: id)).job, "job")
    }

    /// `submit PATH`.
    public func submit(path: String, overrides: [String: String] = [:], priority: Int? = nil) throws -> JobRecord {
        try require(try send(.submit(path: path, overrides: overrides, priority: priority)).job, "job")
    }

    /// `show JOB` with the job's state history, oldest first.
    public func jobWithHistory(_ id: String) throws -> (JobRecord, [JobHistoryItem]) {
        let response = try send(.show(job: id))
        return (try require(response.job, "job"), response.history ?? [])
    }

    /// `cancel JOB`.
    public func cancel(_ id: String) throws -> JobRecord {
        try require(try send(.cancel(job: id)).job, "job")
    }

    /// `retry JOB`.
    public func retry(_ id: String) throws -> JobRecord {
        try require(try send(.retry(job: id)).job, "job")
    }

    /// `pause [WATCH]`, `resume [WATCH]`, `reload`: the daemon's message.
    public func perform(_ command: ControlCommand) throws -> String {
        try send(command).message ?? ""
    }

    /// `watch [JOB]`: calls `onEvent` for each event until it returns false or the daemon closes.
    /// `afterSubscribing` runs once the daemon has acknowledged the subscription.
    public func watch(
        job: String? = nil,
        onEvent: (JobEvent) throws -> Bool,
        afterSubscribing: () throws -> Void = {}
    ) throws {
        _ = try send(.watch(job: job))
        try afterSubscribing()
        while true {
            let line = try readResponse()
            guard let event = line.event else { continue }
            if try !onEvent(event) { return }
        }
    }

    private func require<T>(_ value: T?, _ field: String) throws -> T {
        guard let value else { throw ClientError.badResponse(reason: "response has no '\(field)' field") }
        return value
    }
}
