// SPDX-License-Identifier: Apache-2.0
// The metrics endpoint of a built dsnotd, scraped with curl after a real prune and parsed by
// prometheus_client (the Python reference parser of the exposition format).

import DSnoTControlProtocol
import DSnoTTestSupport
import Foundation
import Testing

@Suite(.serialized) struct MetricsEndToEndTests {
    @Test func aPrunedCheckpointShowsInTheScrapedMetrics() throws {
        let directory = try TemporaryDirectory("dsnot-m")
        let socket = directory.path + "/metrics.sock"
        let daemon = try DaemonUnderTest(watches: "metrics_listen = \"\(socket)\"\n" + PipelineEndToEndTests.watch)
        defer { daemon.stop() }
        try daemon.drop(PipelineEndToEndTests.model, into: "in", as: "tiny")
        #expect(daemon.waitForDone(1, timeout: 60), "\(daemon.log)")
        let job = try #require(try daemon.jobs().first)
        let output = try #require(job.outputPath)
        let published = try FileManager.default.contentsOfDirectory(atPath: output).reduce(0) { total, name in
            total + ((try FileManager.default.attributesOfItem(atPath: output + "/" + name)[.size] as? Int) ?? 0)
        }

        let scrape = try ExternalProcess.run(
            "/usr/bin/curl",
            ["-sS", "--max-time", "10", "--unix-socket", socket, "http://localhost/metrics"]
        )
        #expect(scrape.status == 0, "\(scrape.output)")
        let text = scrape.output
        #expect(text.contains("dsnot_jobs{state=\"done\"} 1.0\n"), "\(text)")
        #expect(text.contains("dsnot_blocks_pruned_total \(job.blockCount ?? -1)\n"), "\(text)")
        #expect(text.contains("dsnot_output_written_bytes_total \(published)\n"), "\(text)")
        #expect(text.contains("dsnot_job_starts_total 1\n"), "\(text)")
        #expect(text.contains("dsnot_job_duration_seconds_count{outcome=\"done\"} 1\n"), "\(text)")
        #expect(text.contains("dsnot_job_queue_wait_seconds_count 1\n"), "\(text)")
        #expect(text.contains("dsnot_job_claim_seconds_count 1\n"), "\(text)")

        // The reference parser reads every family, with the types and samples we meant.
        let python = try #require(ExternalProcess.python, "DSNOT_PYTHON (make test sets it)")
        try text.write(toFile: directory.path + "/scrape.txt", atomically: true, encoding: .utf8)
        let script = """
            import sys
            from prometheus_client.parser import text_string_to_metric_families
            families = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
            for name, kind in [("dsnot_jobs", "gauge"), ("dsnot_job_duration_seconds", "histogram"),
                               ("dsnot_job_queue_wait_seconds", "histogram"), ("dsnot_blocks_pruned", "counter"),
                               ("dsnot_output_written_bytes", "counter"), ("dsnot_guard_waits", "counter"),
                               ("dsnot_job_starts", "counter"), ("dsnot_lease_renewals", "counter"),
                               ("dsnot_lease_losses", "counter"), ("dsnot_job_claim_seconds", "histogram")]:
                assert families[name].type == kind, (name, families[name].type)
            jobs = {s.labels["state"]: s.value for s in families["dsnot_jobs"].samples}
            assert jobs == {"queued": 0, "running": 0, "publishing": 0, "done": 1, "failed": 0, "cancelled": 0}, jobs
            done = [s for s in families["dsnot_job_duration_seconds"].samples
                    if s.name.endswith("_count") and s.labels["outcome"] == "done"]
            assert [s.value for s in done] == [1.0], done
            print("parsed", len(families))
            """
        let parsed = try ExternalProcess.run(python, ["-c", script, directory.path + "/scrape.txt"])
        #expect(parsed.status == 0 && parsed.output.hasPrefix("parsed 10"), "\(parsed.output)")
        #expect(daemon.log.contains("Metrics endpoint listening"), "\(daemon.log)")
    }
}
