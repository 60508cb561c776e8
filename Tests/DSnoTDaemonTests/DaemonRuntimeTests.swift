// SPDX-License-Identifier: Apache-2.0
// The assembled daemon in-process: its ServiceGroup serves the socket, runs a job, and on graceful
// shutdown stops the job at a block boundary, re-queues it and removes the socket.

import DSnoTClient
import DSnoTControlProtocol
import DSnoTDaemon
import DSnoTTestSupport
import Foundation
import Logging
import ServiceLifecycle
import ServiceLifecycleTestKit
import Testing

@Suite struct DaemonRuntimeTests {
    @Test func gracefulShutdownRequeuesTheRunningJobAndRemovesTheSocket() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let configuration = testConfiguration(in: directory)
        let runtime = try DaemonRuntime(
            configuration: configuration,
            configPath: nil,
            runner: ScriptedJobRunner(blocks: 10_000, blockDelay: 0.005),
            logger: testLogger
        )
        try await runtime.prepare()
        let checkpoint = try CheckpointFixture.write(to: directory.sub("in/model"))
        let socket = configuration.socketPath
        try await testGracefulShutdown { trigger in
            let group = ServiceGroup(services: runtime.services, logger: testLogger)
            let task = Task { try await group.run() }
            #expect(try await eventually { FileManager.default.fileExists(atPath: socket) })
            // The watcher queues the inbox checkpoint and the scheduler starts it.
            #expect(
                try await eventually {
                    try runtime.store.jobs(state: .running, watch: "main", limit: nil).first?.block ?? 0 >= 2
                }
            )
            let status = try await offPool { try ControlClient(socketPath: socket).status() }
            #expect(status.running.first?.job.inputPath == checkpoint.path)
            let stopAsked = Date()
            trigger.triggerGracefulShutdown()
            try await task.value
            // 5 ms blocks: stopping at the next boundary is immediate next to the job's 50 s.
            #expect(Date().timeIntervalSince(stopAsked) < 5)
        }
        let job = try #require(try runtime.store.jobs(state: nil, watch: nil, limit: nil).first)
        #expect(job.state == .queued && job.waitingReason == "interrupted: daemon stopping")
        #expect(try runtime.store.history(jobID: job.id).map(\.to) == [.queued, .running, .queued])
        #expect(!FileManager.default.fileExists(atPath: socket))
        #expect(!FileManager.default.fileExists(atPath: directory.sub("out/.dsnot-tmp-\(job.id)").path))
    }
}
