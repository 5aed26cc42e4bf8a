import Foundation
import ObscuraAPI
@testable import ObscuraClient
@testable import ObscuraServer
import Testing

/// The server's limits on how requests arrive, over raw TCP (URLSession cannot send a body that
/// trickles or stops): a body still arriving at the upload deadline gets 408 and one declared
/// over the limit 413, each closing the connection; a connection that falls silent is closed;
/// none leaves a staged upload behind.
@Suite(.serialized)
struct ConnectionLimitTests {
    /// A blocking TCP connection to the server on loopback.
    final class RawConnection {
        let descriptor: Int32

        init(port: Int) throws {
            descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(descriptor >= 0 && connected == 0, "connect to port \(port)")
        }

        deinit { close(descriptor) }

        /// Sends text; false once the server has closed the connection.
        @discardableResult
        func send(_ text: String) -> Bool {
            Array(text.utf8).withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } > 0
        }

        /// Everything the server sends until it closes the connection or `seconds` pass; and
        /// whether it closed it. It waits by sleeping, never in `poll`: a blocked thread is one
        /// of the two cooperative threads the in-process server's handlers need.
        func receive(for seconds: Double) async throws -> (text: String, closed: Bool) {
            var received: [UInt8] = []
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                var request = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                guard poll(&request, 1, 0) > 0 else {
                    try await Task.sleep(for: .milliseconds(20))
                    continue
                }
                var buffer = [UInt8](repeating: 0, count: 4096)
                let count = recv(descriptor, &buffer, buffer.count, 0)
                if count <= 0 { return (String(decoding: received, as: UTF8.self), true) }
                received += buffer.prefix(count)
            }
            return (String(decoding: received, as: UTF8.self), false)
        }
    }

    /// Polls `condition` every 50 ms for up to 60 s. The bounds here are generous on purpose:
    /// the server's handlers share Swift's cooperative threads with every other test of the
    /// run, some of which keep both cores busy for seconds; the tests check what happens, not
    /// how fast.
    static func waitUntil(_ condition: () throws -> Bool) async throws {
        for _ in 0..<1200 {
            if try condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("condition not met within 60 s")
    }

    static func staged(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory + "/blobs/staging")
    }

    @Test("a body still arriving at the upload deadline is answered 408 upload_too_slow, and nothing stays staged")
    func slowUpload() async throws {
        let directory = Fixtures.temporaryDirectory()
        let (server, _) = try await Fixtures.startServer(directory: directory, uploadSeconds: 1, idleSeconds: 10)
        let connection = try RawConnection(port: server.port)
        connection.send("POST /v1/keys HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n")
        // 20 bytes every 200 ms: never idle, but far too slow.
        for _ in 0..<10 where connection.send(String(repeating: "x", count: 20)) {
            try await Task.sleep(for: .milliseconds(200))
        }
        let (text, closed) = try await connection.receive(for: 60)
        #expect(text.hasPrefix("HTTP/1.1 408") && text.contains("upload_too_slow"), "\(text)")
        // The rest of the body is not read: the connection is closed after the answer.
        #expect(closed)
        try await Self.waitUntil { try Self.staged(directory).isEmpty }
        await server.stop()
    }

    @Test("a declared body over the route's limit is answered 413 at once and the connection closed, with nothing received")
    func oversizedDeclaredBody() async throws {
        let directory = Fixtures.temporaryDirectory()
        let (server, _) = try await Fixtures.startServer(directory: directory)
        let connection = try RawConnection(port: server.port)
        connection.send("POST /v1/keys HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000000000\r\n\r\n" + String(repeating: "x", count: 1000))
        let (text, closed) = try await connection.receive(for: 60)
        #expect(text.hasPrefix("HTTP/1.1 413") && text.contains("body_too_large") && closed, "\(text)")
        #expect(try Self.staged(directory).isEmpty)
        await server.stop()
    }

    @Test("a connection silent mid-body is closed after the idle time, and its partial upload is removed")
    func silentConnection() async throws {
        let directory = Fixtures.temporaryDirectory()
        let (server, _) = try await Fixtures.startServer(directory: directory, uploadSeconds: 60, idleSeconds: 1)
        let connection = try RawConnection(port: server.port)
        connection.send("POST /v1/keys HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n" + String(repeating: "x", count: 500))
        let start = Date()
        let (_, closed) = try await connection.receive(for: 60)
        // Closed by the idle timer (after about a second; the bound leaves room for a loaded
        // machine), not by the 60 s upload limit.
        #expect(closed && Date().timeIntervalSince(start) < 30)
        try await Self.waitUntil { try Self.staged(directory).isEmpty }
        await server.stop()
    }

    @Test("uploads in flight are capped: with every slot taken by a body still arriving, a key registration is refused with 503 and Retry-After, and works once the slot is free")
    func uploadSlots() async throws {
        let directory = Fixtures.temporaryDirectory()
        let (server, service) = try await Fixtures.startServer(directory: directory, maxUploads: 1)
        let keyBytes = Fixtures.otherSetKey
        var connection: RawConnection? = try RawConnection(port: server.port)
        connection?.send("POST /v1/keys HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n" + String(repeating: "x", count: 100))
        // The slot is taken once the upload is being staged (however busy the machine is).
        try await Self.waitUntil { try !Self.staged(directory).isEmpty }
        await #expect { try await service.registerKey(keyBytes) } throws: { error in
            guard case ServiceClientError.queueFull(let retryAfter, let body) = error else { return false }
            return retryAfter >= 1 && body.error == "uploads_busy"
        }
        connection = nil   // closing it cuts the upload and frees the slot
        try await Self.waitUntil { try Self.staged(directory).isEmpty }
        var registered: RegisteredKey?
        for _ in 0..<600 where registered == nil {
            registered = try? await service.registerKey(keyBytes)
            if registered == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(registered?.bytes == keyBytes.count)
        await server.stop()
    }

    @Test("one token cannot take every upload slot: with its one slot held, its next upload gets 503 while another token's goes through")
    func uploadSlotsPerToken() async throws {
        let directory = Fixtures.temporaryDirectory()
        let (server, _) = try await Fixtures.startServer(directory: directory, access: .tokens, maxUploads: 4, maxUploadsPerOwner: 1)
        let store = try ServiceStore(directory: directory)
        let aliceToken = try await store.createToken(name: "alice").token
        let alice = ServiceClient(baseURL: server.url, token: aliceToken)
        let bob = ServiceClient(baseURL: server.url, token: try await store.createToken(name: "bob").token)
        var connection: RawConnection? = try RawConnection(port: server.port)
        connection?.send("POST /v1/keys HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(aliceToken)\r\nContent-Length: 100000\r\n\r\n" + String(repeating: "x", count: 100))
        try await Self.waitUntil { try !Self.staged(directory).isEmpty }
        await #expect { try await alice.registerKey(Fixtures.otherSetKey) } throws: { error in
            guard case ServiceClientError.queueFull(_, let body) = error else { return false }
            return body.error == "uploads_busy"
        }
        #expect(try await bob.registerKey(Fixtures.otherSetKey).bytes == Fixtures.otherSetKey.count)
        connection = nil   // a server stopping waits for requests in flight
        await server.stop()
    }
}
