import Foundation
import ModelImport
import NeuralNet
import ObscuraAPI
@testable import ObscuraClient
@testable import ObscuraServer
import PrivateInference
import Testing
import TFHE

/// The service on loopback, through real HTTP, with the 128-bit parameter set.
@Suite(.serialized)
struct ServiceTests {
    @Test("round trip through HTTP: decrypted scores equal the integer reference (tiny CNN with bootstraps, bundled perceptron)")
    func roundTrip() async throws {
        let (server, service) = try await Fixtures.startServer(directory: Fixtures.temporaryDirectory())
        let health = try await service.health()
        #expect(health.status == "ok" && health.models == 2)
        var classifier = try await PrivateClassifier.connect(to: service, plan: Fixtures.tinyPlan, secretKey: Fixtures.secretKey)
        #expect(classifier.keyID != nil)
        for seed in [1, 2, 3] as [UInt64] {
            let image = Fixtures.image(seed)
            let prediction = try await classifier.classify(image[...])
            #expect(prediction.scores == Fixtures.tinyPlan.referenceScores(image[...]), "image \(seed)")
            let job = try await service.job(prediction.jobID)
            #expect(job.status == .done && job.progress == 1 && job.bootstraps == 40 && job.attempts == 1)
        }
        let perceptronPlan = try InferencePlan(model: Fixtures.perceptronModel)
        var perceptron = try await PrivateClassifier.connect(to: service, plan: perceptronPlan, secretKey: Fixtures.secretKey)
        #expect(perceptron.keyID == nil)
        let records = try Dataset.bundledSample(.breastCancer)
        for index in 0..<3 {
            let prediction = try await perceptron.classify(records.sample(index))
            #expect(prediction.scores == perceptronPlan.referenceScores(records.sample(index)))
        }
        let listed = try await service.models()
        let tiny = try #require(listed.first { $0.name == "tiny-cnn" })
        #expect(tiny.observedLatencySeconds != nil && tiny.expectedLatencySeconds == tiny.observedLatencySeconds)
        let (status, metrics) = try await service.raw("GET", "/metrics")
        let text = String(decoding: metrics, as: UTF8.self)
        #expect(status == 200)
        for line in ["obscura_jobs_finished_total{outcome=\"done\"} 6", "obscura_bootstraps_total 120",
                     "obscura_evaluation_seconds_count{model=\"tiny-cnn\"} 3", "obscura_evaluation_seconds_count{model=\"paper-perceptron-cancer\"} 3",
                     "obscura_http_requests_total{route=\"/v1/models/{name}/inferences\",method=\"POST\",status=\"202\"} 6",
                     "obscura_jobs_stored{status=\"done\"} 6", "obscura_queue_capacity 16"] {
            #expect(text.contains(line), "\(line) in:\n\(text)")
        }
        await server.stop()
    }

    @Test("an imported quantization-aware network (examples/user-qat-cnn.onnx: quantized ReLU and max pooling) served on pbs through HTTP: decrypted scores equal the imported integer reference")
    func importedQuantizationAwareServed() async throws {
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        let onnx = here.appendingPathComponent("../../examples/user-qat-cnn.onnx").standardized.path
        let mnist = try Dataset.mnist(folder: here.appendingPathComponent("../../../shared/data/mnist").standardized.path)
        let sample = mnist.subset(0..<200)
        let model = try ModelImporter.importONNX(path: onnx, name: "user-qat-cnn", datasetKind: .mnist, calibration: sample,
                                                 evaluation: sample).model
        let registry = ModelRegistry([try ModelRegistry.entry(for: model.name, model: model)])
        let (server, service) = try await Fixtures.startServer(directory: Fixtures.temporaryDirectory(), models: registry)
        let plan = try InferencePlan(model: model)
        var classifier = try await PrivateClassifier.connect(to: service, plan: plan, secretKey: SecretKey(parameters: plan.parameters))
        let image = mnist.sample(3)
        let prediction = try await classifier.classify(image)
        #expect(prediction.scores == plan.referenceScores(image))
        #expect(prediction.predictedClass == mnist.labels[3])
        await server.stop()
    }

    @Test("a model served as NAME@scores answers with its scores' digits only: exact scores through HTTP, the listing says so; a client expecting partial sums is refused")
    func scoresOnlyServed() async throws {
        let tiny = Fixtures.tinyPlan
        let scoresPlan = try InferencePlan(modelName: tiny.modelName, graph: tiny.graph, answer: .scores)
        let registry = ModelRegistry([ServedModelEntry(plan: scoresPlan, task: "random 8×8 images, 3 classes (test model)", dataset: "random",
                                                       inputShape: [1, 8, 8], integerAccuracy: 0)])
        let (server, service) = try await Fixtures.startServer(directory: Fixtures.temporaryDirectory(), models: registry)
        let listed = try #require(try await service.models().first)
        #expect(listed.name == "tiny-cnn@scores" && listed.answer == "scores" && listed.outputCiphertexts == scoresPlan.outputCount)
        #expect(listed.bootstrapsPerInference > tiny.bootstrapsPerInference)
        var classifier = try await PrivateClassifier.connect(to: service, plan: scoresPlan, secretKey: Fixtures.secretKey)
        for seed in [4, 5] as [UInt64] {
            let image = Fixtures.image(seed)
            let prediction = try await classifier.classify(image[...])
            #expect(prediction.scores == tiny.referenceScores(image[...]), "image \(seed)")
        }
        await #expect(throws: ServiceClientError.self) {
            _ = try await PrivateClassifier.connect(to: service, plan: tiny, secretKey: Fixtures.secretKey)
        }
        await server.stop()
        // Specifications: @scores on a TFHE model; an RLWE variant on one is refused, naming it.
        let fast = try ModelCatalog.load("fast-mnist")
        #expect(try ModelRegistry.entry(for: "fast-mnist@scores", model: fast).listing.answer == "scores")
        #expect(throws: ModelRegistryError.self) { try ModelRegistry.entry(for: "fast-mnist@latency-bfv", model: fast) }
    }

    @Test("bad inputs: a clear 4xx with a JSON error each, and nothing stored changes")
    func badInputs() async throws {
        let directory = Fixtures.temporaryDirectory()
        let (server, service) = try await Fixtures.startServer(directory: directory, maxInputBytes: 64 << 10)
        let plan = Fixtures.tinyPlan
        let key = try await service.registerKey(InferenceClient(plan: plan, secretKey: Fixtures.secretKey).makeEvaluationKey().serialized())
        let otherKey = try await service.registerKey(Fixtures.otherSetKey)
        var client = InferenceClient(plan: plan, secretKey: Fixtures.secretKey)
        let input = try client.encrypt(Fixtures.image(9)[...]).serialized(parameters: plan.parameters)
        let wrongSet = Array(input[0..<8]) + [UInt8(TFHEParameters.integer2Bit128.id & 0xFF), UInt8(TFHEParameters.integer2Bit128.id >> 8)] + Array(input[10...])
        let inferences = "/v1/models/tiny-cnn/inferences"
        // The CNN's inputs are under the small key (kind 10); the same words marked as big-key ones.
        var bigKeyInput = input
        #expect(bigKeyInput[6] == 10)
        bigKeyInput[6] = 6
        let cases: [(String, String, String, [String: String], [UInt8], Int, String)] = [
            ("truncated ciphertext", "POST", inferences, ["key": key.id], Array(input.dropLast(7)), 400, "invalid_input"),
            ("inputs under the wrong key", "POST", inferences, ["key": key.id], bigKeyInput, 400, "wrong_input_key"),
            ("wrong parameter set", "POST", inferences, ["key": key.id], wrongSet, 400, "invalid_input"),
            ("too few ciphertexts", "POST", inferences, ["key": key.id],
             try Array(client.encrypt(Fixtures.image(9)[...]).prefix(5)).serialized(parameters: plan.parameters), 400, "wrong_input_size"),
            ("unknown key id", "POST", inferences, ["key": "0123456789abcdef0123456789abcdef"], input, 404, "unknown_key"),
            ("key/model mismatch", "POST", inferences, ["key": otherKey.id], input, 409, "key_model_mismatch"),
            ("missing key", "POST", inferences, [:], input, 400, "missing_key"),
            ("unknown model", "POST", "/v1/models/nope/inferences", ["key": key.id], input, 404, "unknown_model"),
            ("oversized body", "POST", inferences, ["key": key.id], [UInt8](repeating: 0, count: 65 << 10), 413, "body_too_large"),
            ("secret key as evaluation key", "POST", "/v1/keys", [:], Fixtures.secretKey.serialized(), 400, "secret_key_refused"),
            ("garbage as key", "POST", "/v1/keys", [:], [UInt8](repeating: 7, count: 100), 400, "invalid_key"),
            ("insecure test parameters", "POST", "/v1/keys", [:],
             SecretKey(parameters: .insecureTestOnly).makeEvaluationKey().serialized(), 400, "insecure_parameters"),
            ("key for another model's set", "POST", "/v1/keys", ["model": "tiny-cnn"], Fixtures.otherSetKey, 409, "key_model_mismatch"),
            ("unknown job", "GET", "/v1/inferences/none", [:], [], 404, "unknown_job"),
            ("unknown route", "GET", "/v2/everything", [:], [], 404, "not_found"),
        ]
        let before = try await server.storeSnapshot(directory: directory)
        for (name, method, path, query, body, status, code) in cases {
            let (answered, data) = try await service.raw(method, path, query: query, body: method == "POST" ? body : nil)
            let error = try? JSONDecoder().decode(APIErrorBody.self, from: data)
            #expect(answered == status, "\(name)")
            #expect(error?.error == code, "\(name): \(String(decoding: data.prefix(200), as: UTF8.self))")
            #expect(error.map { !$0.message.isEmpty } == true, "\(name)")
        }
        #expect(try await server.storeSnapshot(directory: directory) == before)
        // The good request still works after all that.
        let job = try await service.submit(model: "tiny-cnn", keyID: key.id, input: input)
        let result = try await service.waitForResult(job.id)
        #expect(try client.decryptScores(serialized: result) == plan.referenceScores(Fixtures.image(9)[...]))
        await server.stop()
    }

    @Test("restart: keys and finished results survive, and a job interrupted while running is re-queued and completes")
    func restartSurvival() async throws {
        let directory = Fixtures.temporaryDirectory()
        let plan = Fixtures.tinyPlan
        var client = InferenceClient(plan: plan, secretKey: Fixtures.secretKey)
        let image = Fixtures.image(21)
        var (server, service) = try await Fixtures.startServer(directory: directory)
        let key = try await service.registerKey(client.makeEvaluationKey().serialized())
        let first = try await service.submit(model: "tiny-cnn", keyID: key.id, input: try client.encrypt(image[...]).serialized(parameters: plan.parameters))
        let before = try await service.waitForResult(first.id)
        await server.stop()

        // A job the previous run had started when it died: its row says running.
        let store = try ServiceStore(directory: directory)
        let interrupted = InferenceJob(id: "interrupted-job", model: "tiny-cnn", keyId: key.id, status: .running, progress: 0.5,
                                       stage: "conv+sign", error: nil, createdAt: 1, startedAt: 2, finishedAt: nil,
                                       evaluationSeconds: nil, bootstraps: 40, attempts: 1)
        try await store.insert(interrupted, input: try await store.stage(bytes: try client.encrypt(image[...]).serialized(parameters: plan.parameters)))

        (server, service) = try await Fixtures.startServer(directory: directory)
        #expect(try await service.result(first.id) == before)
        let recovered = try await service.waitForResult("interrupted-job")
        #expect(try client.decryptScores(serialized: recovered) == plan.referenceScores(image[...]))
        #expect(try await service.job("interrupted-job").attempts == 2)
        // The key registered before the restart is still usable.
        let again = try await service.submit(model: "tiny-cnn", keyID: key.id, input: try client.encrypt(image[...]).serialized(parameters: plan.parameters))
        _ = try await service.waitForResult(again.id)
        await server.stop()
    }

    @Test("DELETE: a finished job and an unused key are gone from database and disk, across a restart; while a job is unfinished, both are refused with 409",
          arguments: StoreKind.allCases)
    func deletion(kind: StoreKind) async throws {
        let testStore = try kind.makeStore()
        defer { testStore.end() }
        let (directory, database) = (testStore.directory, testStore.database)
        let plan = Fixtures.tinyPlan
        var client = InferenceClient(plan: plan, secretKey: Fixtures.secretKey)
        var (server, service) = try await Fixtures.startServer(directory: directory, database: database)
        let key = try await service.registerKey(client.makeEvaluationKey().serialized())
        let input = try client.encrypt(Fixtures.image(4)[...]).serialized(parameters: plan.parameters)
        let first = try await service.submit(model: "tiny-cnn", keyID: key.id, input: input)
        _ = try await service.waitForResult(first.id)

        // A job that a worker elsewhere holds stays unfinished for as long as the test needs: it
        // and its key are refused.
        let store = try await testStore.open()
        let waiting = Fixtures.queuedJob(id: "waiting-job", keyID: key.id, createdAt: 1)
        try await Fixtures.plantRunningJob(waiting, input: input, in: store)
        for (path, code) in [("/v1/inferences/\(waiting.id)", "not_finished"), ("/v1/keys/\(key.id)", "key_in_use")] {
            let (status, data) = try await service.raw("DELETE", path)
            #expect(status == 409 && (try? JSONDecoder().decode(APIErrorBody.self, from: data))?.error == code, "\(path)")
        }
        try await Fixtures.failPlantedJob(id: waiting.id, in: store)
        try await service.deleteJob(waiting.id)
        let second = try await service.submit(model: "tiny-cnn", keyID: key.id, input: input)
        let secondResult = try await service.waitForResult(second.id)

        let blobs = directory + "/blobs"
        #expect(FileManager.default.fileExists(atPath: "\(blobs)/results/\(first.id).bin"))
        try await service.deleteJob(first.id)
        for path in ["inputs/\(first.id).bin", "results/\(first.id).bin"] { #expect(!FileManager.default.fileExists(atPath: "\(blobs)/\(path)")) }
        for path in ["/v1/inferences/\(first.id)", "/v1/inferences/\(first.id)/result"] { #expect(try await service.raw("GET", path).0 == 404) }
        #expect(try await service.raw("DELETE", "/v1/inferences/\(first.id)").0 == 404)

        try await service.deleteKey(key.id)
        #expect(!FileManager.default.fileExists(atPath: "\(blobs)/keys/\(key.id).bin"))
        #expect(try await service.raw("DELETE", "/v1/keys/\(key.id)").0 == 404)
        #expect(try await service.raw("POST", "/v1/models/tiny-cnn/inferences", query: ["key": key.id], body: input).0 == 404)
        #expect(try await service.result(second.id) == secondResult)
        await server.stop()

        (server, service) = try await Fixtures.startServer(directory: directory, database: database)
        #expect(try await service.result(second.id) == secondResult)
        #expect(try await service.raw("GET", "/v1/inferences/\(first.id)").0 == 404)
        #expect(try await testStore.open().key(id: key.id, owner: .anonymous) == nil)
        await server.stop()
    }

    @Test("expiry: a finished job carries its expiry, and the sweeper deletes it, with its input and result, once it has passed",
          arguments: StoreKind.allCases)
    func expiry(kind: StoreKind) async throws {
        let testStore = try kind.makeStore()
        defer { testStore.end() }
        let (directory, database) = (testStore.directory, testStore.database)
        let plan = Fixtures.tinyPlan
        var client = InferenceClient(plan: plan, secretKey: Fixtures.secretKey)
        let (server, service) = try await Fixtures.startServer(directory: directory, resultRetention: 1.5, database: database)
        let key = try await service.registerKey(client.makeEvaluationKey().serialized())
        let submitted = try await service.submit(model: "tiny-cnn", keyID: key.id, input: try client.encrypt(Fixtures.image(6)[...]).serialized(parameters: plan.parameters))
        #expect(submitted.expiresAt == nil)
        _ = try await service.waitForResult(submitted.id)
        let done = try await service.job(submitted.id)
        let finishedAt = try #require(done.finishedAt), expiresAt = try #require(done.expiresAt)
        #expect(abs(expiresAt - finishedAt - 1.5) < 1e-6)
        let blobs = directory + "/blobs"
        #expect(FileManager.default.fileExists(atPath: "\(blobs)/results/\(done.id).bin"))
        // The sweeper looks every 0.15 s: the job is gone shortly after its expiry.
        var gone = false
        for _ in 0..<100 where !gone {
            try await Task.sleep(for: .milliseconds(100))
            gone = try await service.raw("GET", "/v1/inferences/\(done.id)").0 == 404
        }
        #expect(gone)
        #expect(Date().timeIntervalSince1970 >= expiresAt)
        for path in ["inputs/\(done.id).bin", "results/\(done.id).bin"] { #expect(!FileManager.default.fileExists(atPath: "\(blobs)/\(path)")) }
        // Keys are not results: the key stays registered.
        #expect(try await testStore.open().key(id: key.id, owner: .anonymous) != nil)
        await server.stop()
    }

    @Test("bounded load: 8 concurrent clients × 2 jobs on a 3-slot queue; every job completes or is refused with 503, none lost")
    func boundedLoad() async throws {
        // Uploads are not the limit here (8 clients, 8 slots): the queue's 503s are counted.
        let (server, service) = try await Fixtures.startServer(directory: Fixtures.temporaryDirectory(), queueCapacity: 3, maxUploads: 8,
                                                               maxUploadsPerOwner: 8)
        let plan = Fixtures.tinyPlan
        let key = try await service.registerKey(InferenceClient(plan: plan, secretKey: Fixtures.secretKey).makeEvaluationKey().serialized())
        let outcomes = try await withThrowingTaskGroup(of: [String].self) { group in
            for clientIndex in 0..<8 {
                group.addTask {
                    var client = InferenceClient(plan: plan, secretKey: Fixtures.secretKey)
                    var outcomes: [String] = []
                    for jobIndex in 0..<2 {
                        let image = Fixtures.image(UInt64(100 + 2 * clientIndex + jobIndex))
                        let input = try client.encrypt(image[...]).serialized(parameters: plan.parameters)
                        do {
                            let job = try await service.submit(model: "tiny-cnn", keyID: key.id, input: input)
                            let scores = try client.decryptScores(serialized: try await service.waitForResult(job.id))
                            outcomes.append(scores == plan.referenceScores(image[...]) ? "completed" : "wrong")
                        } catch ServiceClientError.queueFull(let retryAfter, _) {
                            outcomes.append(retryAfter > 0 ? "refused" : "no retry-after")
                        }
                    }
                    return outcomes
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(outcomes.count == 16)
        #expect(outcomes.allSatisfy { $0 == "completed" || $0 == "refused" })
        #expect(outcomes.filter { $0 == "completed" }.count >= 3)
        #expect(outcomes.contains("refused"))
        let health = try await service.health()
        #expect(health.queued == 0 && health.running == 0)
        let metrics = String(decoding: try await service.raw("GET", "/metrics").1, as: UTF8.self)
        let refused = outcomes.filter { $0 == "refused" }.count
        #expect(metrics.contains("obscura_jobs_refused_total{reason=\"queue_full\"} \(refused)\n"), "\(metrics)")
        #expect(metrics.contains("obscura_http_requests_total{route=\"/v1/models/{name}/inferences\",method=\"POST\",status=\"503\"} \(refused)\n"))
        await server.stop()
    }

    @Test("the OpenAPI document: every documented operation answers with a documented status and the required fields")
    func openAPIConformance() async throws {
        let directory = Fixtures.temporaryDirectory()
        let (server, anonymous) = try await Fixtures.startServer(directory: directory, access: .tokens)
        let service = ServiceClient(baseURL: server.url, token: try await ServiceStore(directory: directory).createToken(name: "conformance").token)
        let (status, data) = try await service.raw("GET", "/v1/openapi.json")
        #expect(status == 200)
        let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: [String: Any]])
        let documented = Set(paths.flatMap { path, operations in operations.keys.map { "\($0.uppercased()) \(path)" } })
        #expect(documented == Set(ObscuraServer.routes.map { "\($0.method.rawValue) \($0.template)" }))
        let (wrongMethod, _) = try await service.raw("POST", "/healthz", body: [1])
        #expect(wrongMethod == 405)
        let plan = Fixtures.tinyPlan
        let keyBytes = InferenceClient(plan: plan, secretKey: Fixtures.secretKey).makeEvaluationKey().serialized()
        let key = try await service.registerKey(keyBytes)
        var client = InferenceClient(plan: plan, secretKey: Fixtures.secretKey)
        let input = try client.encrypt(Fixtures.image(5)[...]).serialized(parameters: plan.parameters)
        let job = try await service.submit(model: "tiny-cnn", keyID: key.id, input: input)
        _ = try await service.waitForResult(job.id)
        let requests: [(String, String, String, [String: String], [UInt8]?)] = [
            ("get", "/healthz", "/healthz", [:], nil), ("get", "/metrics", "/metrics", [:], nil),
            ("get", "/v1/openapi.json", "/v1/openapi.json", [:], nil),
            ("get", "/v1/models", "/v1/models", [:], nil), ("post", "/v1/keys", "/v1/keys", [:], keyBytes),
            ("post", "/v1/models/{name}/inferences", "/v1/models/tiny-cnn/inferences", ["key": key.id], input),
            ("get", "/v1/inferences/{id}", "/v1/inferences/\(job.id)", [:], nil),
            ("get", "/v1/inferences/{id}/result", "/v1/inferences/\(job.id)/result", [:], nil),
            ("delete", "/v1/inferences/{id}", "/v1/inferences/\(job.id)", [:], nil),
            ("delete", "/v1/keys/{id}", "/v1/keys/\(key.id)", [:], nil),
        ]
        // Every request once with the token, then once without (401 where the route needs one).
        for ((method, template, path, query, body), caller) in requests.map({ ($0, service) }) + requests.map({ ($0, anonymous) }) {
            let operation = try #require(paths[template]?[method] as? [String: Any], "\(method) \(template) is documented")
            let responses = try #require(operation["responses"] as? [String: Any])
            let (answered, data) = try await caller.raw(method.uppercased(), path, query: query, body: body)
            #expect(responses[String(answered)] != nil, "\(method) \(template) answered \(answered), not documented")
            let documented = responses[String(answered)] as? [String: Any]
            let content = documented?["content"] as? [String: Any]
            if let reference = ((content?["application/json"] as? [String: Any])?["schema"] as? [String: Any])?["$ref"] as? String {
                let schema = try #require(schemas[String(reference.split(separator: "/").last!)])
                let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(template) answers JSON")
                for field in schema["required"] as? [String] ?? [] { #expect(object[field] != nil, "\(template) answer lacks \(field)") }
            }
        }
        await server.stop()
    }
}

extension RunningServer {
    /// Everything stored: the rows of both tables and the blob files with their sizes.
    func storeSnapshot(directory: String, database: DatabaseLocation = .sqlite) async throws -> [String] {
        let blobs = FileManager.default.enumerator(atPath: directory + "/blobs")?.compactMap { $0 as? String } ?? []
        let sizes = blobs.map { path in
            "\(path) \((try? FileManager.default.attributesOfItem(atPath: directory + "/blobs/" + path)[.size] as? Int) ?? -1)"
        }
        let store = try await ServiceStore(directory: directory, database: database)
        let statistics = try await store.statistics()
        return sizes.sorted() + statistics.counts.map { "\($0.key.rawValue)=\($0.value)" }.sorted()
    }
}

/// The client library keeps secrets on the device: it refuses to send anything that is not the
/// object a route takes, before it opens a connection.
struct ClientUploadTests {
    @Test("A secret key, any other wrong file, or a truncated key or input is refused by ServiceClient without being sent")
    func refusesBeforeSending() async throws {
        // Port 9 (discard) on loopback: were anything sent, the error would be a connection error.
        let service = ServiceClient(baseURL: URL(string: "http://127.0.0.1:9")!)
        let secret = Fixtures.secretKey.serialized()
        // A real evaluation key and input, cut short: the headers are right, the bodies are not.
        let truncatedKey = Array(Fixtures.otherSetKey.dropLast(1))
        var client = InferenceClient(plan: Fixtures.tinyPlan, secretKey: Fixtures.secretKey)
        let truncatedInput = Array(try client.encrypt(Fixtures.image(1)[...]).serialized(parameters: Fixtures.tinyPlan.parameters).dropLast(5))
        for attempt in [{ _ = try await service.registerKey(secret) }, { _ = try await service.submit(model: "tiny-cnn", keyID: "k", input: secret) },
                        { _ = try await service.registerKey(Array("OBSC not a key".utf8)) }, { _ = try await service.submit(model: "m", keyID: nil, input: []) },
                        { _ = try await service.registerKey(truncatedKey) }, { _ = try await service.submit(model: "tiny-cnn", keyID: "k", input: truncatedInput) }] {
            do {
                try await attempt()
                Issue.record("sent")
            } catch let error as ServiceClientError {
                guard case .notSent = error else { Issue.record("\(error)"); continue }
            }
        }
    }
}

extension ClientUploadTests {
    @Test("A job that fails inside the server tells its client a generic message; the details stay in the log")
    func failedJobMessage() async throws {
        let directory = Fixtures.temporaryDirectory()
        let (server, service) = try await Fixtures.startServer(directory: directory)
        let plan = Fixtures.tinyPlan
        var client = InferenceClient(plan: plan, secretKey: Fixtures.secretKey)
        let key = try await service.registerKey(client.makeEvaluationKey().serialized())
        // The stored key is damaged behind the server's back: the job's deserialization fails.
        let keyBlob = directory + "/blobs/keys/\(key.id).bin"
        try Data([UInt8](repeating: 0x42, count: 64)).write(to: URL(fileURLWithPath: keyBlob))
        let job = try await service.submit(model: "tiny-cnn", keyID: key.id,
                                           input: try client.encrypt(Fixtures.image(3)[...]).serialized(parameters: plan.parameters))
        do {
            _ = try await service.waitForResult(job.id)
            Issue.record("the job should have failed")
        } catch ServiceClientError.jobFailed(_, let message) {
            #expect(message.contains("see its log"))
            #expect(!message.contains("magic") && !message.contains("truncated"), "\(message)")
        }
        await server.stop()
    }
}

extension ClientUploadTests {
    @Test("The default key size limit is the largest key of the served models: int6-128's (over 64 MiB) and CryptoNets' BFV latency keys fit when served")
    func keyLimitFollowsServedSets() throws {
        let configuration = ServerConfiguration(dataDirectory: "/unused")
        #expect(configuration.keyByteLimit(largestServedKey: Fixtures.models.largestEvaluationKey)
                == CompressedEvaluationKey.serializedSize(for: .integer4Bit128))
        #expect(CompressedEvaluationKey.serializedSize(for: .integer6Bit128) > 64 << 20)
        let latency = try ModelRegistry.loading(["cryptonets-mnist", "cryptonets-mnist@throughput-ckks"])
        guard case .simd(let plan) = latency.entries[0].backend else { Issue.record("not an RLWE entry"); return }
        #expect(latency.largestEvaluationKey == plan.evaluationKeyBytes && plan.evaluationKeyBytes > 64 << 20)
        #expect(ServerConfiguration(dataDirectory: "/unused", maxKeyBytes: 1000).keyByteLimit(largestServedKey: 1 << 30) == 1000)
    }
}
