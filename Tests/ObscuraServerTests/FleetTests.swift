import Foundation
import NeuralNet
import ObscuraAPI
@testable import ObscuraClient
@testable import ObscuraServer
import PrivateInference
import Testing
import TFHE

/// Scale-out: an API server and `obscura worker` processes sharing a real PostgreSQL server and a
/// blob folder, with a worker killed mid-job.
struct FleetTests {
    @Test("PostgreSQL fleet: one API server, two worker processes; kill -9 of the worker running a job, which the other finishes with exact scores and attempts = 2; nothing lost")
    func workerKilledMidJob() async throws {
        let postgres = try PostgresTestServer.start()
        defer { postgres.stop() }
        let directory = Fixtures.temporaryDirectory()
        let model = try ModelCatalog.load("fast-mnist")
        let entry = try ServedModelEntry(model: model)
        guard case .tfhe(let plan) = entry.backend else { Issue.record("fast-mnist is a TFHE model"); return }
        let lease = 2.0
        let configuration = ServerConfiguration(port: 0, dataDirectory: directory, workers: 0, access: .open, quotas: .unlimited,
                                                database: .postgres(postgres.address), leases: LeaseTiming(seconds: lease, pollInterval: 0.2))
        let server = try await ObscuraServer(configuration: configuration, models: ModelRegistry([entry]), logLevel: .error)
        let running = try await server.start()
        do {
            try await killAndRecover(server: server, running: running, plan: plan, postgres: postgres, directory: directory, lease: lease)
        } catch {
            await running.stop()
            throw error
        }
        await running.stop()
    }

    private func killAndRecover(server: ObscuraServer, running: RunningServer, plan: InferencePlan, postgres: PostgresTestServer,
                                directory: String, lease: Double) async throws {
        var workers = try (0..<2).map { _ in
            try WorkerProcess(arguments: ["worker", "--data-dir", directory, "--database", postgres.url, "--model", "fast-mnist",
                                          "--lease-seconds", "\(lease)"])
        }
        defer { for worker in workers { worker.kill() } }

        var client = InferenceClient(plan: plan, secretKey: SecretKey(parameters: plan.parameters))
        let service = ServiceClient(baseURL: running.url)
        let key = try await service.registerKey(client.makeEvaluationKey().serialized())
        let images = (0..<2).map { seed in Fixtures.image(UInt64(seed), pixels: plan.inputCount) }
        var jobs: [InferenceJob] = []
        for image in images {
            jobs.append(try await service.submit(model: "fast-mnist", keyID: key.id, input: try client.encrypt(image[...]).serialized(parameters: plan.parameters)))
        }

        // The first job, once its worker has renewed its lease with some progress: kill that worker.
        var holder: String?
        for _ in 0..<600 where holder == nil {
            if let job = try await server.store.job(id: jobs[0].id, owner: nil), job.status == .running, job.progress > 0 {
                holder = try await server.store.leaseHolder(of: jobs[0].id)
            } else {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let victim = try #require(workers.first { holder?.contains("/\($0.pid)/") == true }, "no worker holds job 1 (\(holder ?? "none"))")
        victim.kill()
        workers.removeAll { $0.pid == victim.pid }

        for (job, image) in zip(jobs, images) {
            // A job that nobody finishes fails the test instead of hanging it.
            let result = try await withTimeout(seconds: 300) { try await service.waitForResult(job.id) }
            #expect(try client.decryptScores(serialized: result) == plan.referenceScores(image[...]), "job \(job.id)")
        }
        let finished = try await jobs.asyncMap { try await service.job($0.id) }
        #expect(finished.map(\.status) == [.done, .done])
        #expect(finished[0].attempts == 2)
        #expect(finished[1].attempts == 1)
        // The API server's retention (a day) dates the expiry of what the workers finished.
        #expect(finished.allSatisfy { job in job.expiresAt.map { abs($0 - (job.finishedAt ?? 0) - 86_400) < 1 } == true })
        #expect(workers[0].isRunning)
    }
}

/// An `obscura` child process (the binary built beside the tests), its output discarded.
struct WorkerProcess {
    let process: Process
    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    init(arguments: [String]) throws {
        process = Process()
        process.executableURL = try Self.executable()
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// SIGKILL: the process gets no chance to clean up.
    func kill() {
        if process.isRunning { Foundation.kill(pid, SIGKILL) }
        process.waitUntilExit()
    }

    /// `obscura` in the build folder the tests run from.
    static func executable() throws -> URL {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        for folder in [testBinary.deletingLastPathComponent(), testBinary.deletingLastPathComponent().deletingLastPathComponent(),
                       testBinary.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()] {
            let candidate = folder.appendingPathComponent("obscura")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw PostgresTestServer.Failure("no obscura executable beside \(testBinary.path): build with `swift build --build-tests`")
    }
}

/// `body`'s value, or an error once `seconds` have passed (`body` is then cancelled).
func withTimeout<T: Sendable>(seconds: Double, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            throw PostgresTestServer.Failure("no answer after \(seconds) s")
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        for element in self { results.append(try await transform(element)) }
        return results
    }
}

/// The store's guarantees under concurrency, which a fleet relies on, on both stores.
struct StoreConcurrencyTests {
    @Test("concurrent claims: 12 claimers over 30 jobs take each exactly once, and only of their models; concurrent submissions never overshoot the queue's capacity",
          arguments: StoreKind.allCases)
    func claimsAndAdmissions(kind: StoreKind) async throws {
        let testStore = try kind.makeStore()
        defer { testStore.end() }
        let store = try await testStore.open()
        let capacity = 30
        let admissions = try await withThrowingTaskGroup(of: ServiceStore.Admission.self) { group in
            for index in 0..<40 {
                group.addTask {
                    let job = Fixtures.queuedJob(id: "job-\(index)", keyID: "unused", createdAt: Double(index))
                    var withoutKey = job
                    withoutKey.keyId = nil
                    return try await store.insert(withoutKey, input: try await store.stage(bytes: [UInt8(index)]), capacity: capacity)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(admissions.filter { $0 == .admitted }.count == capacity)
        #expect(admissions.filter { $0 == .queueFull(capacity: capacity) }.count == 10)

        // A worker claims only jobs of the models it serves.
        #expect(try await store.claimNext(worker: "other-models", models: ["some-other-model"], leaseSeconds: 60) == nil)

        let claims = try await withThrowingTaskGroup(of: [String].self) { group in
            for claimer in 0..<12 {
                group.addTask {
                    var claimed: [String] = []
                    while let job = try await store.claimNext(worker: "claimer-\(claimer)", models: ["tiny-cnn"], leaseSeconds: 60) {
                        #expect(job.attempts == 1 && job.status == .running)
                        claimed.append(job.id)
                    }
                    return claimed
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(claims.count == capacity)
        #expect(Set(claims).count == capacity)
    }
}

/// Ids from clients reach the store as text: any bytes name nothing, on either store.
struct HostileIDTests {
    @Test("ids with a NUL byte, non-ASCII, a slash or 10,000 characters are unknown (nil, not found), never a database error",
          arguments: StoreKind.allCases)
    func hostileIDs(kind: StoreKind) async throws {
        let testStore = try kind.makeStore()
        defer { testStore.end() }
        let store = try await testStore.open()
        for id in ["a\u{0}b", "\u{0}", "é", "../keys/x", String(repeating: "a", count: 10_000), ""] {
            #expect(try await store.job(id: id, owner: nil) == nil)
            #expect(try await store.key(id: id, owner: .anonymous) == nil)
            #expect(try await store.deleteJob(id: id, owner: .anonymous) == .notFound)
            #expect(try await store.deleteKey(id: id, owner: .anonymous) == .notFound)
        }
    }
}

/// A database that cannot be used is named, with the server's reason, at once.
struct DatabaseUnreachableTests {
    @Test("an unknown database, a wrong user or a closed port: a DatabaseUnreachable error naming the server's reason (the pool alone retried for a minute and named none)")
    func unreachable() async throws {
        let postgres = try PostgresTestServer.start()
        defer { postgres.stop() }
        let base = postgres.address
        var noDatabase = base, noUser = base, closedPort = base
        noDatabase.database = "no_such_database"
        noUser.user = "no_such_user"
        closedPort.port = base.port == 65535 ? 1 : base.port + 1
        // (How fast is the CLI's to show, not a test's: under the full suite, CPU-bound tests on
        // the cooperative threads can delay this one's continuations by minutes.)
        for (address, reason) in [(noDatabase, "does not exist"), (noUser, "no_such_user"), (closedPort, "refused")] {
            await #expect {
                _ = try await ServiceStore(directory: Fixtures.temporaryDirectory(), database: .postgres(address))
            } throws: { error in
                (error as? DatabaseUnreachable)?.description.contains(reason) == true
            }
        }
    }
}

/// `--database` URLs: what is accepted, and errors that never show the password.
struct DatabaseURLTests {
    @Test("a postgres:// URL gives host, port, user, password, database and TLS; no URL is SQLite; a bad one is an error naming the reason without the password")
    func parsing() throws {
        let address = try PostgresAddress(url: "postgres://app:s3cret@db.internal:6543/obscura?sslmode=require")
        #expect(address == (try PostgresAddress(url: "postgresql://app:s3cret@db.internal:6543/obscura?sslmode=require")))
        #expect((address.host, address.port, address.user, address.password, address.database, address.requiresTLS)
                == ("db.internal", 6543, "app", "s3cret", "obscura", true))
        #expect(address.description == "postgres://app@db.internal:6543/obscura")
        #expect(try PostgresAddress(url: "postgres://app@localhost/obscura").port == 5432)
        #expect(try DatabaseLocation(nil) == .sqlite && DatabaseLocation("") == .sqlite)
        for (url, reason) in [("mysql://app:pa:ss@db/obscura", "scheme"), ("postgres://app:pa:ss@db", "no database name"),
                              ("postgres://db/obscura", "no user"), ("postgres://app:pa:ss@db/obscura?sslmode=verify", "unknown option"),
                              ("postgres://app:pa ss@db/x/y", "no database name")] {
            #expect {
                try PostgresAddress(url: url)
            } throws: { error in
                let text = String(describing: error)
                return text.contains(reason) && !text.contains("pa:ss") && !text.contains("pa ss")
            }
        }
    }
}

/// A lone server takes every stored job: one of a model it no longer serves fails with a reason
/// instead of waiting forever (holding its owner's quota and its key).
struct UnservedModelTests {
    @Test("a lone server restarted without a model fails that model's queued jobs, saying why")
    func unservedModelFails() async throws {
        let directory = Fixtures.temporaryDirectory()
        let store = try ServiceStore(directory: directory)
        var job = Fixtures.queuedJob(id: "retired-job", keyID: "unused")
        job.model = "retired-model"
        job.keyId = nil
        try await store.insert(job, input: try await store.stage(bytes: [1, 2, 3]))
        let (server, service) = try await Fixtures.startServer(directory: directory)
        let failed = try await withTimeout(seconds: 60) {
            while true {
                let current = try await service.job("retired-job")
                if current.status.isFinal { return current }
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        #expect(failed.status == .failed && failed.error?.contains("no longer served") == true, "\(failed)")
        await server.stop()
    }
}
