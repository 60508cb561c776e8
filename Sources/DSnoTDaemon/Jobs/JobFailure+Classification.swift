// SPDX-License-Identifier: Apache-2.0
// The one error classifier: any error a job meets → a readable reason and whether a retry may pass.

import DSnoTCore
import Foundation
import SafeTensors
import SparseFormat
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

extension JobFailure {
    /// Classifies `error` for the retry policy, with a reason a person can read.
    ///
    /// A `JobFailure` is kept as it is; pipeline cancellation is `.cancelled`. Otherwise the error is
    /// retryable when it carries an errno a later attempt may not meet (`isTransient`: a full disk or
    /// quota, a failing device, descriptors or memory exhausted), permanent when not (a bad checkpoint,
    /// an unsupported architecture, a recipe that cannot apply, a failed quality gate). Foundation
    /// errors are described by path and cause, never as an `NSCocoaErrorDomain Code=512 "(null)"` dump.
    ///
    /// ```swift
    /// let failure = JobFailure(classifying: error)   // .retryable("…: No space left on device")
    /// ```
    public init(classifying error: any Error) {
        switch error {
        case let failure as JobFailure:
            self = failure
        case PipelineError.cancelled:
            self = .cancelled
        default:
            let reason = Self.reason(for: error)
            self = Self.errno(of: error).map(Self.isTransient) == true ? .retryable(reason) : .permanent(reason)
        }
    }

    /// Whether the scheduler may run the job again after this failure.
    public var isRetryable: Bool {
        if case .retryable = self { return true }
        return false
    }

    /// Errors a later attempt may not meet: a full disk or quota, a failing device, exhausted
    /// descriptors or memory, a resource briefly unavailable.
    static func isTransient(_ errno: Errno) -> Bool {
        [.noSpace, .diskQuotaExceeded, .ioError, .tooManyOpenFiles, .noMemory, .resourceTemporarilyUnavailable]
            .contains(errno)
    }

    /// The errno an error carries, if any.
    static func errno(of error: any Error) -> Errno? {
        switch error {
        case SafeTensorsError.io(_, _, let errno): return errno
        case SparseFormatError.io(_, _, let errno), SparseFormatError.safeTensors(.io(_, _, let errno)): return errno
        case let errno as Errno: return errno
        case let error as POSIXError: return Errno(rawValue: error.code.rawValue)
        default:
            guard isFoundationError(error) else { return nil }
            let error = error as NSError
            if error.domain == NSCocoaErrorDomain && error.code == CocoaError.fileWriteOutOfSpace.rawValue {
                return .noSpace
            }
            return posixCode(of: error).map { Errno(rawValue: $0) }
        }
    }

    /// One line naming what failed and why.
    static func reason(for error: any Error) -> String {
        guard isFoundationError(error) else { return String(describing: error) }
        let error = error as NSError
        var parts: [String] = []
        if let path = error.userInfo[NSFilePathErrorKey] as? String {
            parts.append(path)
        } else if let url = error.userInfo[NSURLErrorKey] as? URL {
            parts.append(url.path)
        }
        if let code = posixCode(of: error) {
            parts.append(String(cString: strerror(code)))
        } else if error.domain == NSCocoaErrorDomain, let name = cocoaCodeNames[error.code] {
            parts.append(name)
        } else if let description = error.userInfo[NSLocalizedDescriptionKey] as? String {
            parts.append(description)
        } else {
            parts.append("\(error.domain) error \(error.code)")
        }
        return parts.joined(separator: ": ")
    }

    /// `NSError` and the Foundation error structs, whose `description` is the `Error Domain=… Code=…` dump.
    private static func isFoundationError(_ error: any Error) -> Bool {
        error is CocoaError || error is POSIXError || type(of: error) is NSError.Type
    }

    /// The POSIX error code of an `NSError` or of the error under it.
    private static func posixCode(of error: NSError) -> Int32? {
        if error.domain == NSPOSIXErrorDomain { return Int32(truncatingIfNeeded: error.code) }
        if let underlying = error.userInfo[NSUnderlyingErrorKey] as? NSError {
            return posixCode(of: underlying)
        }
        return nil
    }

    /// Words for the Cocoa file error codes Foundation's file APIs raise.
    private static let cocoaCodeNames: [Int: String] = [
        CocoaError.fileNoSuchFile.rawValue: "no such file",
        CocoaError.fileLocking.rawValue: "file is locked",
        CocoaError.fileReadUnknown.rawValue: "read failed",
        CocoaError.fileReadNoPermission.rawValue: "permission denied (read)",
        CocoaError.fileReadInvalidFileName.rawValue: "invalid file name",
        CocoaError.fileReadCorruptFile.rawValue: "file is corrupt",
        CocoaError.fileReadNoSuchFile.rawValue: "no such file",
        CocoaError.fileReadTooLarge.rawValue: "file too large",
        CocoaError.fileWriteUnknown.rawValue: "write failed",
        CocoaError.fileWriteNoPermission.rawValue: "permission denied (write)",
        CocoaError.fileWriteInvalidFileName.rawValue: "invalid file name",
        CocoaError.fileWriteFileExists.rawValue: "file exists",
        CocoaError.fileWriteOutOfSpace.rawValue: "No space left on device",
        CocoaError.fileWriteVolumeReadOnly.rawValue: "read-only file system",
    ]
}
