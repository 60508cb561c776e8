// SPDX-License-Identifier: Apache-2.0
// Journal field encoding (pure) and a live record through sd_journal_sendv when a journal is running.

import DSnoTDaemon
import Foundation
import Logging
import Testing

@Suite struct JournaldLogHandlerTests {
    @Test func recordBecomesStructuredFields() {
        let fields = JournaldLogHandler.fields(
            level: .notice,
            message: "Job started",
            metadata: ["job.id": "j-1", "model.path": "/in/m", "event": "job.started"],
            label: "dsnot.daemon",
            identifier: "dsnotd",
            file: "DSnoTDaemon/Scheduler.swift",
            function: "start(_:)",
            line: 42
        )
        #expect(
            fields == [
                "MESSAGE=Job started",
                "PRIORITY=5",
                "SYSLOG_IDENTIFIER=dsnotd",
                "CODE_FILE=DSnoTDaemon/Scheduler.swift",
                "CODE_LINE=42",
                "CODE_FUNC=start(_:)",
                "DSNOT_LOGGER=dsnot.daemon",
                "MESSAGE_ID=5a0c5f1e2b7d4c0f9e3a61d8b4c2e711",
                "DSNOT_EVENT=job.started",
                "DSNOT_JOB_ID=j-1",
                "DSNOT_MODEL_PATH=/in/m",
            ]
        )
    }

    @Test(arguments: [
        (Logger.Level.trace, 7), (.debug, 7), (.info, 6), (.notice, 5), (.warning, 4), (.error, 3), (.critical, 2),
    ])
    func levelsMapToSyslogPriorities(_ level: Logger.Level, _ priority: Int) {
        #expect(JournaldLogHandler.priority(level) == priority)
    }

    @Test(arguments: [("job.id", "JOB_ID"), ("duration.seconds", "DURATION_SECONDS"), ("a-b c", "A_B_C"), ("é", "_")])
    func metadataKeysBecomeValidFieldNames(_ key: String, _ field: String) {
        #expect(JournaldLogHandler.fieldName(key) == field)
    }

    @Test func everyLifecycleEventHasADistinctMessageID() {
        let ids = Array(MessageID.lifecycle.values)
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.count == 32 && $0.allSatisfy(\.isHexDigit) })
    }

    @Test func withoutJournalStreamTheHandlerFallsBackToStderr() {
        // The test runner's stderr is not the journal (JOURNAL_STREAM unset outside systemd units).
        let handler = JournaldLogHandler.bestAvailable(label: "t")
        let underJournal = ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil
        #expect((handler is JournaldLogHandler) == underJournal)
    }
}
