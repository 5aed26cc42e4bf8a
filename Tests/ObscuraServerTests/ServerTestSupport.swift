import Foundation
import Testing
import NeuralNet
import ObscuraAPI
@testable import ObscuraClient
@testable import ObscuraServer
import PrivateInference
import TFHE

/// Shared fixtures: a tiny sign CNN (40 bootstraps, so a job takes a fraction of a second), the
/// bundled perceptron, keys made once, and a server on loopback in a fresh folder.
enum Fixtures {
    /// A fixed sign CNN on 8×8 images: 2 filters 5×5 → 2×4×4 signs → OR-pool 2×2 → 8 → 3 classes.
    static let tinyPlan: InferencePlan = {
        var random = SplitMix64(seed: 11)
        let shape = BinarizedCNN.Shape(imageSide: 8, kernelSide: 5, stride: 1, filterCount: 2, poolSide: 2, classCount: 3)
        let filters = (0..<(shape.filterCount * shape.kernelArea)).map { _ in Float.random(in: -1...1, using: &random) }
        let dense = (0..<(shape.classCount * shape.filterCount * shape.pooledSide * shape.pooledSide)).map { _ in Int.random(in: -7...7, using: &random) }
        let thresholds = [2, -2]
        let cnn = BinarizedCNN(shape: shape, activation: .sign, pixelMean: 0.5, pixelDeviation: 0.3, filterWeights: filters,
                               thresholds: thresholds.map(Float.init), denseWeights: dense.map(Float.init), denseBias: [0, 0, 0],
                               integer: .init(filterSigns: filters.map { $0 >= 0 ? 1 : -1 }, thresholds: thresholds, alphas: [],
                                              denseWeights: dense, denseBias: [3, -5, 4]))
        return try! InferencePlan(modelName: "tiny-cnn", graph: cnn.graph)
    }()

    static let perceptronModel = try! ModelCatalog.load("paper-perceptron-cancer")

    static let models = ModelRegistry([
        ServedModelEntry(plan: tinyPlan, task: "random 8×8 images, 3 classes (test model)", dataset: "random",
                         inputShape: [1, 8, 8], integerAccuracy: 0),
        try! ServedModelEntry(model: perceptronModel),
    ])

    /// The client's secret key for the 4-bit integer set, and one of the boolean set (a valid key
    /// of the wrong parameter set for these models).
    static let secretKey = SecretKey(parameters: .integer4Bit128)
    static let otherSetKey = SecretKey(parameters: .integer2Bit128).makeEvaluationKey().serialized()

    /// A tiny-cnn job as a submission stores it (queued).
    static func queuedJob(id: String, keyID: String, createdAt: Double = Date().timeIntervalSince1970) -> InferenceJob {
        InferenceJob(id: id, model: "tiny-cnn", keyId: keyID, status: .queued, progress: 0, stage: nil, error: nil,
                     createdAt: createdAt, startedAt: nil, finishedAt: nil, evaluationSeconds: nil, bootstraps: 40, attempts: 0)
    }

    /// The worker that holds the jobs of ``plantRunningJob(_:input:in:owner:quotas:)``: a worker
    /// of another process, as far as the server under test knows.
    static let elsewhere = "worker-elsewhere"

    /// Stores `job` and claims it for ``elsewhere`` under an hour's lease: an unfinished job
    /// that no worker of the server under test takes (its workers look for jobs only when told
    /// of a submission, see ``startServer``), for as long as the test needs.
    @discardableResult
    static func plantRunningJob(_ job: InferenceJob, input: [UInt8], in store: ServiceStore, owner: Owner = .anonymous,
                                quotas: Quotas = .unlimited) async throws -> ServiceStore.Admission {
        let admission = try await store.insert(job, input: try await store.stage(bytes: input), owner: owner, quotas: quotas)
        let claimed = try await store.claimNext(worker: elsewhere, leaseSeconds: 3600)
        precondition(claimed?.id == job.id, "another job was queued")
        return admission
    }

    /// Ends a job of ``plantRunningJob(_:input:in:owner:quotas:)`` as failed.
    static func failPlantedJob(id: String, in store: ServiceStore) async throws {
        var job = try #require(try await store.job(id: id, owner: nil))
        job.status = .failed
        job.finishedAt = Date().timeIntervalSince1970
        #expect(try await store.complete(job, result: nil, worker: elsewhere))
    }

    /// A random 8×8 image (or one of `pixels` pixels).
    static func image(_ seed: UInt64, pixels: Int = 64) -> [Float] {
        var random = SplitMix64(seed: seed)
        return (0..<pixels).map { _ in Float.random(in: 0...1, using: &random) }
    }

    /// A fresh temporary data directory.
    static func temporaryDirectory() -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("obscura-test-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    /// A server on a loopback port (a free one by default) in `directory`: open (no tokens, no
    /// quotas) unless the test says otherwise, and a client without a token.
    static func startServer(directory: String, queueCapacity: Int = 16, maxInputBytes: Int = 4 << 20,
                            models: ModelRegistry = models, port: Int = 0, resultRetention: Double? = 86_400,
                            access: ServerConfiguration.Access = .open, quotas: Quotas = .unlimited,
                            uploadSeconds: Double = 300, idleSeconds: Double = 60, maxUploads: Int = 4,
                            maxUploadsPerOwner: Int = 4, database: DatabaseLocation = .sqlite) async throws -> (RunningServer, ServiceClient) {
        let configuration = ServerConfiguration(port: port, dataDirectory: directory, queueCapacity: queueCapacity,
                                                maxInputBytes: maxInputBytes, resultRetention: resultRetention,
                                                access: access, quotas: quotas, uploadSeconds: uploadSeconds, idleSeconds: idleSeconds,
                                                maxUploads: maxUploads, maxUploadsPerOwner: maxUploadsPerOwner, database: database,
                                                // Workers look only when told of a submission (or at start), never on a timer.
                                                leases: LeaseTiming(pollInterval: 3600))
        let server = try await ObscuraServer(configuration: configuration, models: models, logLevel: .error)
        let running = try await server.start()
        return (running, ServiceClient(baseURL: running.url))
    }
}

extension ServiceClient {
    /// A raw request, answering the status and body whatever the status.
    func raw(_ method: String, _ path: String, query: [String: String] = [:], body: [UInt8]? = nil) async throws -> (Int, Data) {
        do {
            let (data, response) = try await send(method, path, query: query, body: body)
            return (response.statusCode, data)
        } catch ServiceClientError.refused(let status, let error) {
            return (status, try JSONEncoder().encode(error))
        } catch ServiceClientError.queueFull(_, let error) {
            return (503, try JSONEncoder().encode(error))
        } catch ServiceClientError.quotaExceeded(_, let error) {
            return (429, try JSONEncoder().encode(error))
        }
    }
}

/// The two stores a test of the service's rules runs on: SQLite in the data folder, and a
/// PostgreSQL server of the test's own (``PostgresTestServer``).
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite, postgres

    var testDescription: String { rawValue }

    /// A fresh store of this kind: its data folder, where its rows are, and a way to end it.
    func makeStore() throws -> TestStore {
        switch self {
        case .sqlite:
            return TestStore(directory: Fixtures.temporaryDirectory(), database: .sqlite, postgres: nil)
        case .postgres:
            let postgres = try PostgresTestServer.start()
            return TestStore(directory: Fixtures.temporaryDirectory(), database: .postgres(postgres.address), postgres: postgres)
        }
    }
}

struct TestStore: Sendable {
    let directory: String
    let database: DatabaseLocation
    let postgres: PostgresTestServer?

    func open() async throws -> ServiceStore { try await ServiceStore(directory: directory, database: database) }

    /// Stops its PostgreSQL server, if it has one.
    func end() { postgres?.stop() }
}
