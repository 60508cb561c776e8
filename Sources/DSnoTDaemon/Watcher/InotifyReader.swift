// SPDX-License-Identifier: Apache-2.0
// inotify on a dedicated thread: watch descriptors → directories, events → an AsyncStream.

import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// What the inotify thread reports.
enum InotifySignal: Sendable, Equatable {
    /// Something changed in `directory` (the watched directory itself), about `name`.
    case activity(directory: String, name: String)
    /// The kernel queue overflowed: events were lost, rescan.
    case overflow
    /// A watched directory was removed or the watch broke.
    case watchLost(directory: String)
}

/// Owns one inotify descriptor and a thread polling it. Not an actor: the thread must not touch the pool.
final class InotifyReader: Sendable {
    private struct State {
        var directories: [Int32: String] = [:]
        var descriptors: [String: Int32] = [:]
        var stopped = false
    }

    private let fd: Int32
    private let state = Mutex(State())
    let signals: AsyncStream<InotifySignal>
    private let continuation: AsyncStream<InotifySignal>.Continuation

    static let mask: UInt32 =
        UInt32(IN_CLOSE_WRITE) | UInt32(IN_MOVED_TO) | UInt32(IN_MOVED_FROM) | UInt32(IN_CREATE) | UInt32(IN_DELETE)
        | UInt32(IN_DELETE_SELF) | UInt32(IN_MODIFY) | UInt32(IN_ATTRIB)

    /// - Throws: `POSIXError` when inotify is unavailable.
    init() throws {
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        (signals, continuation) = AsyncStream.makeStream(
            of: InotifySignal.self,
            bufferingPolicy: .bufferingNewest(4096)
        )
    }

    /// Watches `directory` (idempotent). Returns false when the kernel refuses (ENOSPC, ENOENT, …).
    @discardableResult
    func watch(_ directory: String) -> Bool {
        if state.withLock({ $0.descriptors[directory] != nil }) { return true }
        let wd = inotify_add_watch(fd, directory, Self.mask)
        guard wd >= 0 else { return false }
        state.withLock {
            $0.directories[wd] = directory
            $0.descriptors[directory] = wd
        }
        return true
    }

    /// Stops watching `directory`.
    func unwatch(_ directory: String) {
        guard
            let wd = state.withLock({ s -> Int32? in
                guard let wd = s.descriptors.removeValue(forKey: directory) else { return nil }
                s.directories.removeValue(forKey: wd)
                return wd
            })
        else { return }
        inotify_rm_watch(fd, wd)
    }

    /// Starts the polling thread.
    func start() {
        let thread = Thread { [self] in self.pollLoop() }
        thread.name = "dsnot-inotify"
        thread.start()
    }

    /// Stops the thread (within its 250 ms poll) and ends the stream.
    func stop() {
        state.withLock { $0.stopped = true }
    }

    private func pollLoop() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !state.withLock({ $0.stopped }) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, 250)
            guard ready > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { continue }
            parse(buffer, count: count)
        }
        close(fd)
        continuation.finish()
    }

    private func parse(_ buffer: [UInt8], count: Int) {
        let headerSize = MemoryLayout<inotify_event>.size
        var offset = 0
        while offset + headerSize <= count {
            let (wd, mask, length) = buffer.withUnsafeBytes { raw -> (Int32, UInt32, Int) in
                let event = raw.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                return (event.wd, event.mask, Int(event.len))
            }
            let nameBytes = buffer[(offset + headerSize)..<min(count, offset + headerSize + length)]
            let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
            offset += headerSize + length
            if mask & UInt32(IN_Q_OVERFLOW) != 0 {
                continuation.yield(.overflow)
                continue
            }
            guard let directory = state.withLock({ $0.directories[wd] }) else { continue }
            if mask & (UInt32(IN_IGNORED) | UInt32(IN_DELETE_SELF)) != 0 {
                state.withLock {
                    $0.directories.removeValue(forKey: wd)
                    $0.descriptors.removeValue(forKey: directory)
                }
                continuation.yield(.watchLost(directory: directory))
                continue
            }
            continuation.yield(.activity(directory: directory, name: name))
        }
    }
}
