// SPDX-License-Identifier: Apache-2.0
// dsnotd: parse flags, load the configuration, run the daemon's ServiceGroup.

import ArgumentParser
import DSnoTDaemon
import Foundation
import Logging
import ServiceLifecycle
import UnixSignals

@main
struct Dsnotd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dsnotd",
        abstract: "Prune LLM checkpoints dropped into watched inboxes (Wanda/SparseGPT/magnitude + DSnoT).",
        discussion: """
            Without --config, dsnotd reads /etc/dsnot/dsnotd.toml, or, if that does not exist, runs with the
            unprivileged default: state in .dsnot/state, socket .dsnot/dsnotd.sock, inbox/ → outbox/ in the
            current directory. A configuration file that does not set them uses state_dir /var/lib/dsnot and
            socket /run/dsnotd.sock. SIGHUP reloads the configuration; SIGTERM stops the running job at
            its next block boundary, re-queues it and exits. See dsnotd.toml(5) and docs/protocol.md.
            """
    )

    @Option(name: .long, help: ArgumentHelp("Configuration file.", valueName: "path"))
    var config: String?

    @Flag(name: .long, help: "Validate the configuration and exit (0 valid, 1 invalid).")
    var checkConfig = false

    func run() async throws {
        let configuration: DaemonConfiguration
        let path: String?
        do {
            (configuration, path) = try ConfigurationLoader.resolve(explicitPath: config)
        } catch {
            FileHandle.standardError.write(Data("dsnotd: \(error)\n".utf8))
            throw ExitCode.failure
        }
        if checkConfig {
            // A fleet node's configuration is only valid if its database answers: reachable, the
            // password accepted, the schema not newer than this binary (the store migrates an older one).
            if configuration.jobStore == .postgresql {
                do {
                    _ = try DaemonRuntime.openStore(configuration, logger: Logger(label: "dsnot.check-config"))
                } catch {
                    FileHandle.standardError.write(Data("dsnotd: \(path ?? "default configuration"): \(error)\n".utf8))
                    throw ExitCode.failure
                }
            }
            let store = configuration.jobStore == .postgresql ? ", job store reachable" : ""
            print("\(path ?? "default configuration"): ok, \(configuration.watches.count) watch(es)\(store)")
            return
        }
        let level = configuration.logLevel
        LoggingSystem.bootstrap { JournaldLogHandler.bestAvailable(label: $0, level: level) }
        let logger = Logger(label: "dsnot.daemon")
        let runtime: DaemonRuntime
        do {
            runtime = try DaemonRuntime(configuration: configuration, configPath: path, logger: logger)
            try await runtime.prepare()
        } catch {
            logger.critical("Cannot start", metadata: ["error": "\(error)"])
            throw ExitCode.failure
        }
        var groupConfiguration = ServiceGroupConfiguration(
            services: runtime.services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        // SIGTERM must end the process in bounded time even if a block takes long (systemd then kills).
        groupConfiguration.maximumGracefulShutdownDuration = .seconds(120)
        groupConfiguration.maximumCancellationDuration = .seconds(10)
        try await ServiceGroup(configuration: groupConfiguration).run()
    }
}
