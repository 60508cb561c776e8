// SPDX-License-Identifier: Apache-2.0
// The control handler in-process: every command, permissions, versioning, errors; no socket.

import DSnoTControlProtocol
import DSnoTDaemon
import DSnoTTestSupport
import Foundation
import Testing

@Suite struct ControlHandlerTests {
    static let root = PeerCredentials(pid: 1, uid: 0, gid: 0)
    static let stranger = PeerCredentials(pid: 2, uid: 4242, gid: 4242)

    struct Fixture {
        let directory: TemporaryDirectory
        let store: SQLiteJobStore
        let scheduler: PruneScheduler
        let handler: ControlHandler
        let task: Task<Void, any Error>

        init(reloadResult: Result<String, ControlError> = .success("reloaded")) throws {
            directory = try TemporaryDirectory()
            let configuration = testConfiguration(in: directory)
            store = try SQLiteJobStore(path: directory.sub("jobs.sqlite").path)
            let events = EventHub()
            scheduler = PruneScheduler(
                store: store,
                runner: ScriptedJobRunner(blocks: 2),
                settings: .init(configuration),
                events: events,
                logger: testLogger
            )
            handler = ControlHandler(
                scheduler: scheduler,
                store: store,
                events: events,
                daemon: DaemonStatus(configuration: configuration, configPath: "/etc/dsnot/dsnotd.toml"),
                access: AccessPolicy(daemonUID: 999, adminGroupID: 500, groupsOfUser: { _, gid in [gid] }),
                reload: { reloadResult }
            )
            let scheduler = self.scheduler
            task = Task { try await scheduler.run() }
        }

        func send(_ command: ControlCommand, as peer: PeerCredentials = ControlHandlerTests.root) async
            -> ControlResponse
        {
            await handler.handle(ControlRequest(command, id: 9), peer: peer).response
        }

        func close() {
            task.cancel()
            directory.remove()
        }
    }

    @Test func statusReportsStateCountsAndWatches() async throws {
        let fixture = try Fixture()
        defer { fixture.close() }
        let response = await fixture.send(.status, as: Self.stranger)
        let status = try #require(response.status)
        #expect(response.ok && response.id == 9)
        #expect(status.state == .running && status.configPath == "/etc/dsnot/dsnotd.toml")
        #expect(status.counts == ["queued": 0, "running": 0, "publishing": 0, "done": 0, "failed": 0, "cancelled": 0])
        #expect(status.watches.map(\.name) == ["main"] && status.running.isEmpty)
    }

    @Test func submitListShowRunAJobToDone() async throws {
        let fixture = try Fixture()
        defer { fixture.close() }
        let checkpoint = try CheckpointFixture.write(to: fixture.directory.sub("elsewhere/model"))
        let submitted = await fixture.send(.submit(path: checkpoint.path, overrides: ["pattern": "0.6"], priority: 1))
        let job = try #require(submitted.job, "\(String(describing: submitted.error))")
        #expect(job.watch == "submit" && job.recipe == "wanda-u60-dsnot" && job.priority == 1)
        // Submitting the same checkpoint with the same recipe again returns the same job.
        #expect(
            await fixture.send(.submit(path: checkpoint.path, overrides: ["pattern": "0.6"], priority: 1)).job?.id
                == job.id
        )
        #expect(try await eventually { await fixture.send(.show(job: job.id)).job?.state == .done })
        let shown = await fixture.send(.show(job: job.id), as: Self.stranger)
        #expect(shown.history?.map(\.to) == [.queued, .running, .publishing, .done])
        #expect(shown.history?.last?.detail == "2 blocks")
        let listed = await fixture.send(.list(state: .done, watch: nil, limit: nil), as: Self.stranger)
        #expect(listed.jobs?.map(\.id) == [job.id])
        #expect(await fixture.send(.list(state: .failed, watch: nil, limit: nil)).jobs == [])
    }

    @Test(arguments: [
        ControlCommand.submit(path: "/x", overrides: [:], priority: nil), .cancel(job: "j-1"), .retry(job: "j-1"),
        .pause(watch: nil), .resume(watch: nil), .reload,
    ])
    func mutatingCommandsAreRefusedToStrangers(_ command: ControlCommand) async throws {
        let fixture = try Fixture()
        defer { fixture.close() }
        let response = await fixture.send(command, as: Self.stranger)
        #expect(!response.ok && response.error?.code == .permissionDenied)
        #expect(response.error?.message.contains("uid 4242") == true)
    }

    @Test(arguments: [
        (PeerCredentials(pid: 3, uid: 999, gid: 999), true),  // the daemon's own user
        (PeerCredentials(pid: 3, uid: 1000, gid: 500), true),  // primary group = admin group
        (PeerCredentials(pid: 3, uid: 1001, gid: 1001), true),  // supplementary member (injected below)
        (PeerCredentials(pid: 3, uid: 1002, gid: 1002), false),
        (PeerCredentials(pid: 3, uid: 0, gid: 0), true),  // root
    ])
    func accessPolicyAdmitsRootDaemonUserAndAdminGroup(_ peer: PeerCredentials, _ allowed: Bool) {
        let policy = AccessPolicy(daemonUID: 999, adminGroupID: 500) { uid, gid in uid == 1001 ? [gid, 500] : [gid] }
        #expect(policy.mayWrite(peer) == allowed)
    }

    @Test func withoutAdminGroupOnlyRootAndDaemonUserWrite() {
        let policy = AccessPolicy(daemonUID: 999, adminGroupID: nil) { _, _ in [500] }
        #expect(!policy.mayWrite(PeerCredentials(pid: 1, uid: 1000, gid: 500)))
        #expect(policy.mayWrite(PeerCredentials(pid: 1, uid: 999, gid: 999)))
    }

    @Test func writersAreNamedOnceEach() {
        // A daemon running as root: root is uid 0, so it is named once.
        #expect(AccessPolicy(daemonUID: 0, adminGroupID: nil).writersDescription == "root")
        #expect(AccessPolicy(daemonUID: 999, adminGroupID: nil).writersDescription == "root or uid 999")
        #expect(
            AccessPolicy(daemonUID: 0, adminGroupID: 4_000_000_123).writersDescription
                == "root or members of group 4000000123"
        )
        #expect(
            AccessPolicy(daemonUID: 999, adminGroupID: 4_000_000_123).writersDescription
                == "root, uid 999 or members of group 4000000123"
        )
    }

    // What Foundation's decoder would accept but docs/threat-model.md promises to refuse, and the
    // fragment the error message must name.
    @Test(arguments: [
        (#"{"version":1,"command":"status","command":"reload"}"#, "duplicate key 'command'"),
        (#"{"version":1,"command":"list","state":"done","state":"failed"}"#, "duplicate key 'state'"),
        (#"{"version":1,"command":"submit","path":"/m","overrides":{"a":"1","a":"2"}}"#, "duplicate key 'a'"),
        (#"{"version":1,"command":"status",}"#, "trailing comma"),
        (#"{"version":1,"command":"submit","path":"/m","overrides":{"a":"1",}}"#, "trailing comma"),
        (#"{"version":1.0,"command":"status"}"#, "field 'version' must be an integer, got 1.0"),
        (#"{"version":1e0,"command":"status"}"#, "field 'version' must be an integer"),
        (#"{"version":1,"id":2.5,"command":"status"}"#, "field 'id' must be an integer, got 2.5"),
        (#"{"version":1,"command":"list","limit":10.0}"#, "field 'limit' must be an integer"),
        (#"{"version":1,"command":"list","limit":-1}"#, "field 'limit' must be at least 1, got -1"),
        (#"{"version":1,"command":"list","limit":0}"#, "field 'limit' must be at least 1, got 0"),
        (#"{"version":1,"command":"submit","path":"/m","priority":"high"}"#, "field 'priority' must be an integer"),
        (#"{"version":1,"command":"status"} {"#, "unexpected data after the JSON value"),
        (#"[{"version":1,"command":"status"}]"#, "request is an array"),
    ])
    func nonStrictRequestsAreMalformed(_ line: String, _ named: String) async throws {
        let fixture = try Fixture()
        defer { fixture.close() }
        let response = await fixture.handler.handle(line: Data(line.utf8), peer: Self.root).response
        #expect(!response.ok)
        #expect(response.error?.code == .malformedRequest, "\(line) → \(String(describing: response.error))")
        #expect(response.error?.message.contains(named) == true, "\(line) → \(String(describing: response.error))")
    }

    @Test func strictRequestsStillDecode() async throws {
        let fixture = try Fixture()
        defer { fixture.close() }
        for line in [
            #"{"version":1,"command":"status"}"#,
            #" { "version" : 1 , "id" : -3 , "command" : "list" , "limit" : 5 } "#,
            #"{"version":1,"command":"list","limit":null,"state":null}"#,
        ] {
            let response = await fixture.handler.handle(line: Data(line.utf8), peer: Self.root).response
            #expect(response.ok, "\(line) → \(String(describing: response.error))")
        }
    }

    @Test func errorsCarryStableCodes() async throws {
        let fixture = try Fixture()
        defer { fixture.close() }
        #expect(await fixture.send(.show(job: "j-nope")).error?.code == .notFound)
        #expect(await fixture.send(.retry(job: "j-nope")).error?.code == .notFound)
        #expect(
            await fixture.send(.submit(path: "relative", overrides: [:], priority: nil)).error?.code == .invalidArgument
        )
        #expect(
            await fixture.send(.submit(path: "/nonexistent", overrides: [:], priority: nil)).error?.code
                == .invalidArgument
        )
        let checkpoint = try CheckpointFixture.write(to: fixture.directory.sub("x/m"))
        let bad = await fixture.send(.submit(path: checkpoint.path, overrides: ["pattern": "2"], priority: nil))
        #expect(bad.error?.code == .invalidArgument && bad.error?.message.contains("pattern") == true)
        #expect(await fixture.send(.pause(watch: "nope")).error?.code == .notFound)
        let version = await fixture.handler.handle(ControlRequest(.status, id: 3, version: 99), peer: Self.root)
            .response
        #expect(version.error?.code == .versionMismatch && version.id == 3)
        let line = await fixture.handler.handle(
            line: Data(#"{"version":1,"id":4,"command":"fly"}"#.utf8),
            peer: Self.root
        )
        #expect(line.response.error?.code == .unknownCommand && line.response.id == 4)
    }

    @Test func pauseResumeAndReloadAnswerWithMessages() async throws {
        let fixture = try Fixture()
        defer { fixture.close() }
        #expect(await fixture.send(.pause(watch: "main")).message == "watch 'main' paused")
        #expect(await fixture.send(.status).status?.watches.first?.paused == true)
        #expect(await fixture.send(.resume(watch: "main")).message == "watch 'main' resumed")
        #expect(await fixture.send(.pause(watch: nil)).message == "queue paused")
        #expect(await fixture.send(.status).status?.state == .paused)
        #expect(await fixture.send(.reload).message == "reloaded")
    }

    @Test func rejectedReloadIsReportedAsReloadFailed() async throws {
        let fixture = try Fixture(reloadResult: .failure(ControlError(code: .reloadFailed, message: "bad key")))
        defer { fixture.close() }
        #expect(await fixture.send(.reload).error == ControlError(code: .reloadFailed, message: "bad key"))
    }

    @Test func watchStreamsEventsOfTheJob() async throws {
        let fixture = try Fixture()
        defer { fixture.close() }
        _ = await fixture.send(.pause(watch: nil))
        let checkpoint = try CheckpointFixture.write(to: fixture.directory.sub("w/m"))
        let job = try #require(await fixture.send(.submit(path: checkpoint.path, overrides: [:], priority: nil)).job)
        let reply = await fixture.handler.handle(ControlRequest(.watch(job: job.id)), peer: Self.stranger)
        guard case .stream(let first, let events) = reply else {
            Issue.record("watch did not stream")
            return
        }
        #expect(first.ok)
        _ = await fixture.send(.resume(watch: nil))
        var states: [JobState] = []
        for await event in events {
            #expect(event.job.id == job.id)
            if states.last != event.job.state { states.append(event.job.state) }
            if event.job.state == .done { break }
        }
        #expect(states == [.running, .publishing, .done])
    }
}
