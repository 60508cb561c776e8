// SPDX-License-Identifier: Apache-2.0
// Who may change the daemon's state: root, the daemon's own uid, members of the admin group.

#if canImport(Glibc)
    import Glibc
#endif

/// The peer of a control connection, from `SO_PEERCRED`.
public struct PeerCredentials: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}

/// Decides read versus write access. Read commands are open to anyone who can connect (the socket's
/// file mode decides that); mutating commands need root, the daemon's uid, or membership (primary or
/// supplementary) of the admin group.
///
/// ```swift
/// let policy = AccessPolicy(daemonUID: getuid(), adminGroup: "dsnot")
/// policy.mayWrite(peer)
/// ```
public struct AccessPolicy: Sendable {
    public var daemonUID: UInt32
    public var adminGroupID: UInt32?
    /// The groups of a user (supplementary included); injected in tests.
    public var groupsOfUser: @Sendable (UInt32, UInt32) -> [UInt32]

    /// A policy with an explicit admin group id and group lookup.
    public init(
        daemonUID: UInt32,
        adminGroupID: UInt32?,
        groupsOfUser: @escaping @Sendable (UInt32, UInt32) -> [UInt32] = AccessPolicy.systemGroups
    ) {
        self.daemonUID = daemonUID
        self.adminGroupID = adminGroupID
        self.groupsOfUser = groupsOfUser
    }

    /// A policy resolving the admin group's name through the group database (an unknown name means no
    /// admin group, with only root and the daemon's uid allowed to write).
    public init(daemonUID: UInt32, adminGroup: String?) {
        self.init(daemonUID: daemonUID, adminGroupID: adminGroup.flatMap(Self.groupID(named:)))
    }

    /// Whether `peer` may run mutating commands.
    public func mayWrite(_ peer: PeerCredentials) -> Bool {
        if peer.uid == 0 || peer.uid == daemonUID { return true }
        guard let adminGroupID else { return false }
        if peer.gid == adminGroupID { return true }
        return groupsOfUser(peer.uid, peer.gid).contains(adminGroupID)
    }

    /// A one-line statement of who may write, for `permission-denied` messages.
    public var writersDescription: String {
        // Root is uid 0: a daemon running as root is named once.
        var writers = ["root"]
        if daemonUID != 0 { writers.append("uid \(daemonUID)") }
        if let adminGroupID {
            writers.append("members of group \(Self.groupName(adminGroupID) ?? String(adminGroupID))")
        }
        return writers.count == 1
            ? writers[0] : writers.dropLast().joined(separator: ", ") + " or " + writers[writers.count - 1]
    }

    /// The group id of `name`. The corresponding C function is `getgrnam_r`.
    public static func groupID(named name: String) -> UInt32? {
        var group = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        guard getgrnam_r(name, &group, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return group.gr_gid
    }

    static func groupName(_ gid: UInt32) -> String? {
        var group = group()
        var result: UnsafeMutablePointer<group>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        guard getgrgid_r(gid, &group, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return String(cString: group.gr_name)
    }

    /// The groups of `uid` from the user and group databases. The corresponding C function is `getgrouplist`.
    public static func systemGroups(uid: UInt32, gid: UInt32) -> [UInt32] {
        var passwd = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16 * 1024)
        guard getpwuid_r(uid, &passwd, &buffer, buffer.count, &result) == 0, result != nil else { return [gid] }
        var count: Int32 = 64
        var groups = [gid_t](repeating: 0, count: Int(count))
        if getgrouplist(passwd.pw_name, gid, &groups, &count) < 0 {
            groups = [gid_t](repeating: 0, count: Int(count))
            guard getgrouplist(passwd.pw_name, gid, &groups, &count) >= 0 else { return [gid] }
        }
        return Array(groups.prefix(Int(count)))
    }
}
