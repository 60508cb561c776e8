// SPDX-License-Identifier: Apache-2.0
// The one error classifier: readable reasons (never an NSError dump) and the retryable/permanent split.

import DSnoTCore
import DSnoTDaemon
import DSnoTTestSupport
import Foundation
import SafeTensors
import SparseFormat
import SystemPackage
import Testing

@Suite struct JobFailureClassificationTests {
    /// A real Foundation failure: creating a directory below a regular file.
    @Test func foundationErrorsReadAsPathAndCauseNotAsADump() throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let file = directory.sub("plain").path
        try Data("x".utf8).write(to: URL(fileURLWithPath: file))
        var thrown: (any Error)?
        do {
            try FileManager.default.createDirectory(atPath: file + "/sub", withIntermediateDirectories: true)
        } catch {
            thrown = error
        }
        let failure = JobFailure(classifying: try #require(thrown))
        #expect(!failure.description.contains("Domain="), "\(failure)")
        #expect(!failure.description.contains("(null)"), "\(failure)")
        #expect(failure.description.contains(directory.path), "\(failure)")
        #expect(!failure.isRetryable)
    }

    @Test func cocoaWriteErrorWithAnUnderlyingENOSPCIsRetryableAndReadable() {
        let error = NSError(
            domain: NSCocoaErrorDomain,
            code: CocoaError.fileWriteUnknown.rawValue,
            userInfo: [
                NSFilePathErrorKey: "/out/.dsnot-tmp-j-1/tokenizer.json",
                NSUnderlyingErrorKey: NSError(domain: NSPOSIXErrorDomain, code: Int(ENOSPC)),
            ]
        )
        #expect("\(error)".contains("Code=512"))  // what the old classifier stored as the reason
        let failure = JobFailure(classifying: error)
        #expect(failure == .retryable("/out/.dsnot-tmp-j-1/tokenizer.json: No space left on device"))
        // A bare 512 with nothing under it still reads as words.
        #expect(JobFailure(classifying: CocoaError(.fileWriteUnknown)) == .permanent("write failed"))
        #expect(JobFailure(classifying: CocoaError(.fileWriteOutOfSpace)).isRetryable)
    }

    @Test func errnoCarryingErrorsOfEveryLayerAreClassifiedByTheirErrno() {
        let full = SparseFormatError.io(path: "/out/x.lz4", operation: "write", errno: .noSpace)
        #expect(JobFailure(classifying: full) == .retryable(full.description))
        let nested = SparseFormatError.safeTensors(.io(path: "/o/m", operation: "pwrite", errno: .ioError))
        #expect(JobFailure(classifying: nested).isRetryable)
        let quota = SafeTensorsError.io(path: "/o/m", operation: "write", errno: .diskQuotaExceeded)
        #expect(JobFailure(classifying: quota).isRetryable)
        #expect(JobFailure(classifying: POSIXError(.EAGAIN)).isRetryable)
        let denied = SafeTensorsError.io(path: "/in/m", operation: "open", errno: .permissionDenied)
        #expect(JobFailure(classifying: denied) == .permanent(denied.description))
        #expect(!JobFailure(classifying: POSIXError(.EACCES)).description.contains("Domain="))
    }

    @Test func jobFailuresAndCancellationPassThrough() {
        #expect(JobFailure(classifying: JobFailure.retryable("r")) == .retryable("r"))
        #expect(JobFailure(classifying: JobFailure.permanent("p")) == .permanent("p"))
        #expect(JobFailure(classifying: PipelineError.cancelled(block: 3)) == .cancelled)
        let gate = PruningError.sparsityOutOfRange(ratio: 1.5)
        #expect(JobFailure(classifying: gate) == .permanent(gate.description))
    }
}
