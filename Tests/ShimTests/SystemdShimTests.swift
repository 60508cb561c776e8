// SPDX-License-Identifier: Apache-2.0
// Smoke test of the CSystemd shim: sd_notify delivers READY=1 to a datagram socket named in NOTIFY_SOCKET.

import CSystemd
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite(.serialized) struct SystemdShimTests {
    @Test func sdNotifyDeliversReadyToNotifySocket() throws {
        let path = "/tmp/dsnot-notify-\(getpid()).sock"
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        #expect(fd >= 0)
        defer {
            close(fd)
            unlink(path)
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, byte) in path.utf8.enumerated() { raw[i] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        #expect(bound == 0)

        setenv("NOTIFY_SOCKET", path, 1)
        defer { unsetenv("NOTIFY_SOCKET") }
        let sent = sd_notify(0, "READY=1\nSTATUS=shim test")
        #expect(sent > 0)  // > 0: a notification socket was found and the message sent

        var buffer = [UInt8](repeating: 0, count: 256)
        let received = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
        #expect(received > 0)
        let message = String(decoding: buffer[0..<max(received, 0)], as: UTF8.self)
        #expect(message == "READY=1\nSTATUS=shim test")
    }

    @Test func sdNotifyIsANoOpWithoutNotifySocket() {
        unsetenv("NOTIFY_SOCKET")
        #expect(sd_notify(0, "READY=1") == 0)
    }
}
