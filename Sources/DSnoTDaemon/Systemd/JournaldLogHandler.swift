// SPDX-License-Identifier: Apache-2.0
// A swift-log handler writing structured records to journald with sd_journal_sendv.

import CSystemd
import Foundation
public import Logging

/// Sends each log record to journald as structured fields: `MESSAGE`, `PRIORITY`, `SYSLOG_IDENTIFIER`,
/// `CODE_FILE`/`CODE_LINE`/`CODE_FUNC`, every metadata key as `DSNOT_<KEY>` (upper case, non-alphanumerics
/// as `_`), and for lifecycle events (metadata `event`) a fixed `MESSAGE_ID`.
///
/// ```swift
/// LoggingSystem.bootstrap { label in JournaldLogHandler.bestAvailable(label: label) }
/// ```
public struct JournaldLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let identifier: String

    public init(label: String, identifier: String = "dsnotd") {
        self.label = label
        self.identifier = identifier
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The journald handler when stderr is connected to the journal (`JOURNAL_STREAM` set), else
    /// swift-log's stderr stream handler.
    public static func bestAvailable(label: String, level: Logger.Level = .info) -> any LogHandler {
        if ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil {
            var handler = JournaldLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let fields = Self.fields(
            level: event.level,
            message: "\(event.message)",
            metadata: merged,
            label: label,
            identifier: identifier,
            file: event.file,
            function: event.function,
            line: event.line
        )
        Self.send(fields)
    }

    /// The journal fields of one record, in order. Pure, for tests.
    public static func fields(
        level: Logger.Level,
        message: String,
        metadata: Logger.Metadata,
        label: String,
        identifier: String,
        file: String,
        function: String,
        line: UInt
    ) -> [String] {
        var fields = [
            "MESSAGE=\(message)",
            "PRIORITY=\(priority(level))",
            "SYSLOG_IDENTIFIER=\(identifier)",
            "CODE_FILE=\(file)",
            "CODE_LINE=\(line)",
            "CODE_FUNC=\(function)",
            "DSNOT_LOGGER=\(label)",
        ]
        if case .string(let name)? = metadata["event"], let id = MessageID.lifecycle[name] {
            fields.append("MESSAGE_ID=\(id)")
        }
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) {
            fields.append("DSNOT_\(fieldName(key))=\(value)")
        }
        return fields
    }

    /// A journal field name: upper case, characters other than A–Z, 0–9 and `_` become `_`.
    public static func fieldName(_ key: String) -> String {
        String(
            key.uppercased().unicodeScalars.map { scalar -> Character in
                let c = Character(scalar)
                return (c.isASCII && (c.isLetter || c.isNumber)) || c == "_" ? c : "_"
            }
        )
    }

    /// Syslog priority of a level (journald `PRIORITY`).
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    /// Sends fields with `sd_journal_sendv` (the variadic `sd_journal_send` cannot be called from Swift).
    /// - Returns: 0 on success, a negative errno otherwise.
    @discardableResult
    static func send(_ fields: [String]) -> Int32 {
        var buffers = fields.map { Array($0.utf8) }
        var vectors: [iovec] = []
        vectors.reserveCapacity(buffers.count)
        return buffers.withUnsafeMutableBufferPointer { all in
            for index in all.indices {
                all[index].withUnsafeMutableBytes { raw in
                    vectors.append(iovec(iov_base: raw.baseAddress, iov_len: raw.count))
                }
            }
            // The pointers stay valid: `all` is not mutated again before sd_journal_sendv returns.
            return sd_journal_sendv(vectors, Int32(vectors.count))
        }
    }
}

/// Fixed `MESSAGE_ID`s of lifecycle events (documented in `dsnotd(8)`), keyed by the metadata `event`.
public enum MessageID {
    public static let lifecycle: [String: String] = [
        "daemon.started": "5a0c5f1e2b7d4c0f9e3a61d8b4c2e701",
        "daemon.stopping": "5a0c5f1e2b7d4c0f9e3a61d8b4c2e702",
        "config.reloaded": "5a0c5f1e2b7d4c0f9e3a61d8b4c2e703",
        "config.rejected": "5a0c5f1e2b7d4c0f9e3a61d8b4c2e704",
        "job.queued": "5a0c5f1e2b7d4c0f9e3a61d8b4c2e710",
        "job.started": "5a0c5f1e2b7d4c0f9e3a61d8b4c2e711",
        "job.finished": "5a0c5f1e2b7d4c0f9e3a61d8b4c2e712",
        "job.failed": "5a0c5f1e2b7d4c0f9e3a61d8b4c2e713",
        "job.cancelled": "5a0c5f1e2b7d4c0f9e3a61d8b4c2e714",
        "job.requeued": "5a0c5f1e2b7d4c0f9e3a61d8b4c2e715",
    ]
}
