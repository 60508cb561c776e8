// SPDX-License-Identifier: Apache-2.0
// Where the Prometheus endpoint listens (`metrics_listen`): a loopback TCP port or a Unix socket.

/// The address of the metrics endpoint.
///
/// The endpoint has no authentication, so TCP is limited to loopback addresses; a scraper on another
/// machine reaches it through a proxy or an SSH tunnel, or scrapes a Unix socket (file permissions).
///
/// ```swift
/// MetricsEndpoint(parsing: "127.0.0.1:9464")   // .tcp(host: "127.0.0.1", port: 9464)
/// MetricsEndpoint(parsing: "[::1]:9464")       // .tcp(host: "::1", port: 9464)
/// MetricsEndpoint(parsing: "/run/dsnot/metrics.sock")  // .unix(path: …)
/// ```
public enum MetricsEndpoint: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: Int)
    case unix(path: String)

    /// What a valid `metrics_listen` looks like (for error messages).
    public static let expectation =
        "\"127.0.0.1:PORT\", \"[::1]:PORT\", \"localhost:PORT\" (loopback only: the endpoint has no "
        + "authentication) or an absolute Unix socket path of at most 107 bytes"

    /// Parses `metrics_listen`; nil when it is not one of the accepted forms.
    /// Port 0 asks the kernel for a free port (logged at start; for tests).
    public init?(parsing text: String) {
        if text.hasPrefix("/") {
            guard text.utf8.count <= 107, !text.utf8.contains(0) else { return nil }
            self = .unix(path: text)
            return
        }
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = String(text[..<colon])
        let portText = text[text.index(after: colon)...]
        guard !portText.isEmpty, portText.allSatisfy(\.isASCII), portText.allSatisfy(\.isNumber),
            portText.count <= 5, let port = Int(portText), port <= 65535
        else { return nil }
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            return nil  // an IPv6 address must be bracketed
        }
        guard Self.isLoopback(host) else { return nil }
        self = .tcp(host: host == "localhost" ? "127.0.0.1" : host, port: port)
    }

    /// `127.0.0.0/8` written as four decimal octets, `::1`, or `localhost`.
    static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" || host == "::1" { return true }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4, octets[0] == "127" else { return false }
        return octets.allSatisfy { octet in
            !octet.isEmpty && octet.count <= 3 && octet.allSatisfy { $0.isASCII && $0.isNumber }
                && (Int(octet) ?? 256) <= 255
        }
    }

    public var description: String {
        switch self {
        case .tcp(let host, let port): return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): return path
        }
    }
}
