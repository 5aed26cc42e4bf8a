import Foundation
import ModelImport
import NeuralNet
import ObscuraAPI
@testable import ObscuraClient
@testable import ObscuraServer
import SIMDInference
import Testing

/// CryptoNets served on RLWE through real HTTP at 128 bits: one image per job on BFV (exact),
/// a batch per job on CKKS, with the TFHE service's key, job, result and restart rules.
@Suite(.serialized)
struct SIMDServiceTests {
    static let registry = try! ModelRegistry.loading(["cryptonets-mnist", "cryptonets-mnist@throughput-ckks", "cryptonets-fashion@throughput-ckks"])
    static let model = try! ModelCatalog.load("cryptonets-mnist")
    static let form = try! model.polynomialNetwork!.integerForm()
    static let images = try! Dataset.bundledSample(.mnist)

    static func plan(_ name: String) throws -> SIMDPlan {
        guard case .simd(let plan) = registry.entry(named: name)?.backend else { throw ServiceClientError.unexpectedResponse("no RLWE model \(name)") }
        return plan
    }

    @Test("Round trips: BFV latency scores equal the integer reference bit for bit, CKKS batch argmaxes equal it; listed with their backends and batch sizes; a restart keeps keys and results")
    func roundTrips() async throws {
        let directory = Fixtures.temporaryDirectory()
        var (server, service) = try await Fixtures.startServer(directory: directory, models: Self.registry)
        let listed = try await service.models()
        #expect(listed.map(\.backend) == ["rlwe-bfv-latency", "rlwe-ckks-throughput", "rlwe-ckks-throughput"])
        #expect(listed.map(\.batchSize) == [1, 4096, 4096])
        // Two CKKS plans of the same shape still have different parameter-set names (their fingerprints).
        #expect(listed[1].parameterSet != listed[2].parameterSet)
        #expect(listed.allSatisfy { $0.securityBits == 128 && $0.bootstrapsPerInference == 0 })

        let latency = try await PrivateBatchClassifier.connect(to: service, model: "cryptonets-mnist", plan: try Self.plan("cryptonets-mnist"))
        for index in 0..<2 {
            let image = Self.images.sample(index)
            let prediction = try await latency.classify([image])
            #expect(prediction.scores == [Self.form.scores(image)], "image \(index)")
            let job = try await service.job(prediction.jobID)
            #expect(job.status == .done && job.progress == 1 && job.bootstraps == 0)
        }

        let name = "cryptonets-mnist@throughput-ckks"
        let batch = try await PrivateBatchClassifier.connect(to: service, model: name, plan: try Self.plan(name))
        let images = (0..<Self.images.count).map { Self.images.sample($0) }
        let predictions = try await batch.classify(images)
        #expect(predictions.predictedClasses == images.map { BinarizedCNN.argmax(Self.form.scores($0)) })
        let result = try await service.result(predictions.jobID)
        await server.stop()

        // After a restart on the same port: the result is still there, and the stored keys serve a new job.
        (server, service) = try await Fixtures.startServer(directory: directory, models: Self.registry, port: server.port)
        #expect(try await service.result(predictions.jobID) == result)
        let again = try await latency.classify([Self.images.sample(3)])
        #expect(again.scores == [Self.form.scores(Self.images.sample(3))])
        await server.stop()
    }

    @Test("CKKS latency through HTTP: one image per job across the slots, listed as such, each argmax the integer reference's")
    func ckksLatencyServed() async throws {
        let name = "cryptonets-mnist@latency-ckks"
        let registry = try ModelRegistry.loading([name])
        guard case .simd(let plan) = registry.entry(named: name)?.backend else {
            Issue.record("\(name) is not served on RLWE")
            return
        }
        let (server, service) = try await Fixtures.startServer(directory: Fixtures.temporaryDirectory(), models: registry)
        let listed = try await service.models()
        #expect(listed.map(\.backend) == ["rlwe-ckks-latency"] && listed.map(\.batchSize) == [1] && listed[0].securityBits == 128)
        let client = try await PrivateBatchClassifier.connect(to: service, model: name, plan: plan)
        for index in [0, 7] {
            let image = Self.images.sample(index)
            let prediction = try await client.classify([image])
            #expect(prediction.predictedClasses == [BinarizedCNN.argmax(Self.form.scores(image))], "image \(index)")
        }
        await server.stop()
    }

    @Test("A network trained outside Obscura (PyTorch, exported to ONNX) imported and served on BFV through the HTTP API: decrypted scores equal the imported model's integer reference")
    func importedONNXServed() async throws {
        let onnx = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../examples/user-cryptonets.onnx").standardized.path
        let imported = try ModelImporter.importONNX(path: onnx, name: "user-cryptonets", datasetKind: .mnist, calibration: Self.images,
                                                    evaluation: Self.images)
        let model = imported.model
        let registry = ModelRegistry(try ModelRegistry.variants(of: model).map { try ModelRegistry.entry(for: $0, model: model) })
        guard case .simd(let plan) = registry.entry(named: "user-cryptonets@latency-bfv")?.backend else {
            Issue.record("the imported network is not served on RLWE")
            return
        }
        let form = try #require(model.polynomialNetwork).integerForm()
        let (server, service) = try await Fixtures.startServer(directory: Fixtures.temporaryDirectory(), models: registry)
        let client = try await PrivateBatchClassifier.connect(to: service, model: "user-cryptonets@latency-bfv", plan: plan)
        for index in [0, 5] {
            let image = Self.images.sample(index)
            #expect(try await client.classify([image]).scores == [form.scores(image)], "image \(index)")
        }
        await server.stop()
    }

    @Test("Bad RLWE uploads: a clear 4xx each (keys without a model, for the wrong model or a TFHE model; another plan's, truncated or TFHE inputs), and the client keeps secret keys")
    func badUploads() async throws {
        let (server, service) = try await Fixtures.startServer(directory: Fixtures.temporaryDirectory(),
                                                               models: ModelRegistry(Fixtures.models.entries + Self.registry.entries))
        let latencyPlan = try Self.plan("cryptonets-mnist"), batchPlan = try Self.plan("cryptonets-mnist@throughput-ckks")
        let latencyClient = try SIMDClient(plan: latencyPlan), batchClient = try SIMDClient(plan: batchPlan)
        let batchKeys = batchClient.evaluationKeyBytes()
        let batchKey = try await service.registerKey(batchKeys, forModel: "cryptonets-mnist@throughput-ckks")
        let latencyInput = try latencyClient.encryptForUpload([Self.images.sample(0)])
        let cases: [(String, [String: String], [UInt8], Int, String)] = [
            ("/v1/keys", [:], batchKeys, 400, "missing_model"),
            ("/v1/keys", ["model": "cryptonets-mnist"], batchKeys, 400, "invalid_key"),
            ("/v1/keys", ["model": "tiny-cnn"], batchKeys, 409, "key_model_mismatch"),
            ("/v1/keys", ["model": "cryptonets-mnist@throughput-ckks"], Array(batchKeys.dropLast(9)), 400, "invalid_key"),
            ("/v1/models/cryptonets-mnist/inferences", ["key": batchKey.id], latencyInput, 409, "key_model_mismatch"),
            ("/v1/models/cryptonets-mnist@throughput-ckks/inferences", ["key": batchKey.id], latencyInput, 400, "invalid_input"),
            ("/v1/models/cryptonets-mnist@throughput-ckks/inferences", ["key": batchKey.id],
             Array(try batchClient.encryptForUpload([Self.images.sample(0)]).dropLast(5)), 400, "invalid_input"),
            ("/v1/models/cryptonets-mnist@throughput-ckks/inferences", [:], latencyInput, 400, "missing_key"),
            // Keys of another model whose plan has the same shape: refused before anything is stored.
            ("/v1/models/cryptonets-fashion@throughput-ckks/inferences", ["key": batchKey.id],
             try batchClient.encryptForUpload([Self.images.sample(0)]), 409, "key_model_mismatch"),
            // More than the named model's exact key size is not read.
            ("/v1/keys", ["model": "cryptonets-mnist@throughput-ckks"], batchKeys + [0], 413, "body_too_large"),
        ]
        for (path, query, body, status, code) in cases {
            let (got, data) = try await service.raw("POST", path, query: query, body: body)
            let error = try? JSONDecoder().decode(APIErrorBody.self, from: data)
            #expect(got == status && error?.error == code, "\(path) \(query): \(got) \(error?.error ?? "")")
        }
        // Wrong objects never leave the client.
        #expect(throws: ServiceClientError.self) { try ServiceClient.checkUpload(latencyInput, is: .evaluationKey) }
        #expect(throws: ServiceClientError.self) { try ServiceClient.checkUpload(batchKeys, is: .encryptedInput) }
        // Cut short, RLWE keys and inputs stay on the device too; whole, they pass.
        #expect(throws: ServiceClientError.self) { try ServiceClient.checkUpload(Array(batchKeys.dropLast(9)), is: .evaluationKey) }
        #expect(throws: ServiceClientError.self) { try ServiceClient.checkUpload(Array(latencyInput.dropLast(5)), is: .encryptedInput) }
        try ServiceClient.checkUpload(batchKeys, is: .evaluationKey)
        try ServiceClient.checkUpload(latencyInput, is: .encryptedInput)
        #expect(throws: ServiceClientError.self) { try ServiceClient.checkUpload(Array("ORSK".utf8) + [UInt8](repeating: 0, count: 64), is: .evaluationKey) }
        let (status, _) = try await service.raw("POST", "/v1/keys", query: ["model": "cryptonets-mnist"], body: Array("ORSK".utf8) + [UInt8](repeating: 0, count: 64))
        #expect(status == 400)
        await server.stop()
    }
}
