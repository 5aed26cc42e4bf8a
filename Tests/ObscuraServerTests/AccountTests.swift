import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import ObscuraAPI
@testable import ObscuraClient
@testable import ObscuraServer
import PrivateInference
import Testing
import TFHE

/// Accounts over real HTTP: a server with tokens answers only token holders, each token sees
/// only its own keys, jobs and results, and its quotas are answered with 429.
@Suite(.serialized)
struct AccountTests {
    /// The status and headers of a request with an optional bearer token, whatever the status.
    static func answer(_ url: URL, _ method: String, token: String? = nil) async throws -> HTTPURLResponse {
        var request = URLRequest(url: url)
        request.httpMethod = method
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (_, response) = try await URLSession.shared.data(for: request)
        return try #require(response as? HTTPURLResponse)
    }

    @Test("tokens: no or a bad token gets 401, another token's key, job and result are 404 to it, and a revoked token stops working",
          arguments: StoreKind.allCases)
    func isolation(kind: StoreKind) async throws {
        let testStore = try kind.makeStore()
        defer { testStore.end() }
        let (directory, database) = (testStore.directory, testStore.database)
        let (server, _) = try await Fixtures.startServer(directory: directory, access: .tokens, database: database)
        let store = try await testStore.open()
        let alice = ServiceClient(baseURL: server.url, token: try await store.createToken(name: "alice").token)
        let bob = ServiceClient(baseURL: server.url, token: try await store.createToken(name: "bob").token)
        let anonymous = ServiceClient(baseURL: server.url)
        let forged = ServiceClient(baseURL: server.url, token: "obscura_" + String(repeating: "0", count: 64))

        let plan = Fixtures.tinyPlan
        var client = InferenceClient(plan: plan, secretKey: Fixtures.secretKey)
        let keyBytes = client.makeEvaluationKey().serialized()
        let image = Fixtures.image(31)
        let input = try client.encrypt(image[...]).serialized(parameters: plan.parameters)

        // Without a valid token only the public routes answer.
        for service in [anonymous, forged] {
            #expect(try await service.raw("POST", "/v1/keys", body: keyBytes).0 == 401)
            #expect(try await service.raw("GET", "/v1/inferences/anything").0 == 401)
            #expect(try await service.raw("GET", "/healthz").0 == 200)
            #expect(try await service.raw("GET", "/v1/models").0 == 200)
        }
        let refused = try await Self.answer(server.url.appendingPathComponent("/v1/inferences/x"), "GET")
        #expect(refused.statusCode == 401 && refused.value(forHTTPHeaderField: "WWW-Authenticate")?.hasPrefix("Bearer") == true)

        let key = try await alice.registerKey(keyBytes)
        let job = try await alice.submit(model: "tiny-cnn", keyID: key.id, input: input)
        let result = try await alice.waitForResult(job.id)
        #expect(try client.decryptScores(serialized: result) == plan.referenceScores(image[...]))

        // Bob sees none of it, cannot use Alice's key, and cannot delete anything of hers.
        let before = try await server.storeSnapshot(directory: directory, database: database)
        for (method, path, query, body) in [("GET", "/v1/inferences/\(job.id)", [:], nil), ("GET", "/v1/inferences/\(job.id)/result", [:], nil),
                                            ("DELETE", "/v1/inferences/\(job.id)", [:], nil), ("DELETE", "/v1/keys/\(key.id)", [:], nil),
                                            ("POST", "/v1/models/tiny-cnn/inferences", ["key": key.id], input)] as [(String, String, [String: String], [UInt8]?)] {
            let (status, data) = try await bob.raw(method, path, query: query, body: body)
            #expect(status == 404, "\(method) \(path): \(String(decoding: data.prefix(200), as: UTF8.self))")
        }
        #expect(try await server.storeSnapshot(directory: directory, database: database) == before)

        // The same evaluation key registered by Bob is his own row, under another id.
        let bobsKey = try await bob.registerKey(keyBytes)
        #expect(bobsKey.id != key.id)
        let bobsJob = try await bob.submit(model: "tiny-cnn", keyID: bobsKey.id, input: input)
        #expect(try client.decryptScores(serialized: try await bob.waitForResult(bobsJob.id)) == plan.referenceScores(image[...]))
        try await bob.deleteKey(bobsKey.id)
        #expect(try await alice.job(job.id).status == .done)

        // Revoking Alice's token locks her out at once; Bob is unaffected.
        let aliceID = try #require(try await store.tokens().first { $0.name == "alice" }).id
        #expect(try await store.revokeToken(id: aliceID)?.revokedAt != nil)
        #expect(try await alice.raw("GET", "/v1/inferences/\(job.id)").0 == 401)
        #expect(try await bob.raw("GET", "/v1/inferences/\(bobsJob.id)").0 == 200)
        #expect(try await store.revokeToken(id: "no-such-token") == nil)

        // Purging the revoked token removes its job and key, rows and files; Bob's stay.
        for path in ["keys/\(key.id).bin", "inputs/\(job.id).bin", "results/\(job.id).bin"] {
            #expect(FileManager.default.fileExists(atPath: "\(directory)/blobs/\(path)"), "\(path) before the purge")
        }
        #expect(try await store.purge(owner: Owner(id: aliceID)) == ServiceStore.Purge(jobs: 1, keys: 1, kept: 0))
        for path in ["keys/\(key.id).bin", "inputs/\(job.id).bin", "results/\(job.id).bin"] {
            #expect(!FileManager.default.fileExists(atPath: "\(directory)/blobs/\(path)"), "\(path)")
        }
        #expect(try await store.job(id: job.id, owner: nil) == nil)
        #expect(try await bob.job(bobsJob.id).status == .done)
        await server.stop()
    }

    @Test("quotas: stored key bytes, jobs in flight and jobs an hour are refused with 429 (Retry-After where waiting helps), per token, storing nothing",
          arguments: StoreKind.allCases)
    func quotas(kind: StoreKind) async throws {
        let testStore = try kind.makeStore()
        defer { testStore.end() }
        let (directory, database) = (testStore.directory, testStore.database)
        let plan = Fixtures.tinyPlan
        var client = InferenceClient(plan: plan, secretKey: Fixtures.secretKey)
        let keyBytes = client.makeEvaluationKey().serialized()
        // Room for either of two keys, not both.
        let quotas = Quotas(storedKeyBytes: max(keyBytes.count, Fixtures.otherSetKey.count) + 1000, unfinishedJobs: 2, jobsPerHour: 3)
        let (server, _) = try await Fixtures.startServer(directory: directory, access: .tokens, quotas: quotas, database: database)
        let store = try await testStore.open()
        let aliceToken = try await store.createToken(name: "alice").token
        let alice = ServiceClient(baseURL: server.url, token: aliceToken)
        let bob = ServiceClient(baseURL: server.url, token: try await store.createToken(name: "bob").token)
        let owner = try #require(try await store.owner(forToken: aliceToken))
        let input = try client.encrypt(Fixtures.image(3)[...]).serialized(parameters: plan.parameters)

        // Stored key bytes: a second key does not fit until the first is deleted.
        let key = try await alice.registerKey(keyBytes)
        var before = try await server.storeSnapshot(directory: directory, database: database)
        await #expect { try await alice.registerKey(Fixtures.otherSetKey) } throws: { error in
            guard case ServiceClientError.quotaExceeded(let retryAfter, let body) = error else { return false }
            return retryAfter == nil && body.error == "quota_exceeded"
        }
        #expect(try await server.storeSnapshot(directory: directory, database: database) == before)

        // Jobs in flight: two that a worker elsewhere holds fill Alice's quota.
        for index in 0..<2 {
            let waiting = Fixtures.queuedJob(id: "waiting-\(index)", keyID: key.id)
            #expect(try await Fixtures.plantRunningJob(waiting, input: input, in: store, owner: owner, quotas: quotas) == .admitted)
        }
        before = try await server.storeSnapshot(directory: directory, database: database)
        await #expect { try await alice.submit(model: "tiny-cnn", keyID: key.id, input: input) } throws: { error in
            guard case ServiceClientError.quotaExceeded(let retryAfter, _) = error else { return false }
            return (retryAfter ?? 0) >= 1
        }
        #expect(try await server.storeSnapshot(directory: directory, database: database) == before)
        // Bob's quotas are his own.
        let bobsKey = try await bob.registerKey(keyBytes)
        _ = try await bob.waitForResult(try await bob.submit(model: "tiny-cnn", keyID: bobsKey.id, input: input).id)

        // Jobs an hour: the two stored above count; a third is accepted, a fourth waits about an
        // hour, and deleting jobs does not give submissions back.
        for index in 0..<2 {
            try await Fixtures.failPlantedJob(id: "waiting-\(index)", in: store)
        }
        let third = try await alice.submit(model: "tiny-cnn", keyID: key.id, input: input)
        _ = try await alice.waitForResult(third.id)
        for id in ["waiting-0", "waiting-1", third.id] { try await alice.deleteJob(id) }
        await #expect { try await alice.submit(model: "tiny-cnn", keyID: key.id, input: input) } throws: { error in
            guard case ServiceClientError.quotaExceeded(let retryAfter, _) = error else { return false }
            return (3500...3600).contains(retryAfter ?? 0)
        }
        // Freed key bytes fit the second key.
        try await alice.deleteKey(key.id)
        #expect(try await alice.registerKey(Fixtures.otherSetKey).bytes == Fixtures.otherSetKey.count)
        // The two refused submissions are counted as such; /metrics needs no token.
        let metrics = String(decoding: try await ServiceClient(baseURL: server.url).raw("GET", "/metrics").1, as: UTF8.self)
        #expect(metrics.contains("obscura_jobs_refused_total{reason=\"quota\"} 2\n"), "\(metrics)")
        await server.stop()
    }
}
