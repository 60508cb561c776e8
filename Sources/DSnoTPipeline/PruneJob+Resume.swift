// SPDX-License-Identifier: Apache-2.0
// PruneJob+Resume: resume points in the staging directory (write per block, pick up after a restart).

import DSnoTCore
import DSnoTSupport
import Foundation
import Logging
import SafeTensors

extension PruneJob {
    /// Whether `directory` holds a resume point file (`.dsnot-resume-<block>.safetensors`; whether it is
    /// valid is decided when the job runs).
    public static func hasResumePoint(in directory: String) -> Bool {
        !ResumePoint.candidates(in: directory).isEmpty
    }

    /// What a resumable run needs beyond the output: the journal and the last resume point's block.
    final class ResumeWriter {
        let directory: String
        let journal: ResumeJournal
        let options: String
        let checkpoint: String
        let logger: Logger
        private(set) var lastPoint: Int?

        init(
            directory: String,
            journal: ResumeJournal,
            options: String,
            checkpoint: String,
            lastPoint: Int?,
            logger: Logger
        ) {
            self.directory = directory
            self.journal = journal
            self.options = options
            self.checkpoint = checkpoint
            self.lastPoint = lastPoint
            self.logger = logger
        }

        /// After a finished block: the journal is fsynced, the new point written durably, the previous one
        /// removed (one point at a time; were the removal lost, the newer point is the one read).
        func blockFinished(_ state: PruneResumeState) throws {
            let clock = ContinuousClock()
            let start = clock.now
            try journal.sync()
            let bytes = try ResumePoint.write(
                state,
                journal: journal.entries,
                options: options,
                checkpoint: checkpoint,
                directory: directory
            )
            if let lastPoint { try? FileManager.default.removeItem(atPath: path(of: lastPoint)) }
            lastPoint = state.nextBlock
            let seconds = start.duration(to: clock.now).inSeconds
            logger.debug(
                "Resume point written",
                metadata: [
                    "prune.next_block": "\(state.nextBlock)", "resume.bytes": "\(bytes)",
                    "resume.seconds": "\(seconds)",
                ]
            )
        }

        /// Removes the journal and the point (before the output is finished: they are not part of it).
        func removeFiles() throws {
            if let lastPoint { try FileManager.default.removeItem(atPath: path(of: lastPoint)) }
            try FileManager.default.removeItem(atPath: directory + "/" + ResumeJournal.fileName)
            lastPoint = nil
        }

        private func path(of block: Int) -> String { directory + "/" + ResumePoint.fileName(nextBlock: block) }
    }

    /// The identity of the input a resume point must match: SHA-256 over `config.json` and every shard's
    /// name, size and modification time.
    func checkpointFingerprint(_ checkpoint: Checkpoint) throws -> String {
        var text = "config.json:" + SHA256.hex(Array(try configData())) + "\n"
        for (shard, file) in zip(checkpoint.shards, checkpoint.files) {
            let attributes = try FileManager.default.attributesOfItem(atPath: input + "/" + shard)
            let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            text += "\(shard):\(file.header.fileSize):\(modified.bitPattern)\n"
        }
        return SHA256.hex(Array(text.utf8))
    }

    /// Finds the newest resume point in `directory` and checks it (identity, shapes, journal); on any
    /// problem logs why and returns `nil`. Either way leaves in `directory` only what the run continues
    /// with: the point and its journal, or nothing.
    func loadResumePoint(
        directory: String,
        model: any DecoderModel,
        calibration: CalibrationSet?,
        lossWindows: CalibrationSet?,
        pruner: SequentialPruner,
        checkpointFingerprint: String,
        logger: Logger
    ) -> ResumePoint? {
        var point: ResumePoint?
        if let newest = ResumePoint.candidates(in: directory).first {
            do {
                let candidate = try ResumePoint.read(
                    path: directory + "/" + newest.name,
                    nextBlock: newest.block,
                    options: options.stableHash,
                    checkpoint: checkpointFingerprint
                )
                try pruner.validateResume(
                    candidate.state,
                    model: model,
                    calibration: calibration,
                    lossWindows: lossWindows
                )
                let expected = (0..<candidate.state.nextBlock).flatMap {
                    model.prunableLinearLayers(block: $0).map(\.tensorName)
                }
                guard candidate.journal.map(\.name) == expected else {
                    throw ResumeError(reason: "the journal does not list the finished blocks' weights")
                }
                try ResumeJournal.verify(directory + "/" + ResumeJournal.fileName, entries: candidate.journal)
                point = candidate
            } catch {
                logger.warning(
                    "Cannot resume, starting from block 0",
                    metadata: ["resume.point": "\(newest.name)", "error": "\(error)"]
                )
            }
        }
        let keep: Set<String> =
            point.map { [ResumePoint.fileName(nextBlock: $0.state.nextBlock), ResumeJournal.fileName] } ?? []
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where !keep.contains(name) {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
        if let point {
            logger.info("Resuming", metadata: ["prune.next_block": "\(point.state.nextBlock)"])
        }
        return point
    }
}
