import Foundation
import NeuralNet
import ObscuraAPI
import SIMDInference

/// Private predictions of many images at once (or one, fast) from a polynomial network the
/// server runs on RLWE: ``PrivateClassifier``'s counterpart for CryptoNets-style models. It holds
/// the secret keys (inside its ``SIMDClient``), registers the evaluation keys once, then for each
/// batch encrypts on the device, submits, waits, downloads and decrypts.
public struct PrivateBatchClassifier: Sendable {
    /// The server.
    public let service: ServiceClient
    /// The served model's name (e.g. "cryptonets-mnist@throughput-ckks").
    public let model: String
    /// The plan, compiled from the same model file as the server's.
    public let plan: SIMDPlan
    /// The registered keys' id.
    public let keyID: String
    private let client: SIMDClient

    /// Exact scores (BFV) or the nearest integers of approximate ones (CKKS), per image.
    public struct Predictions: Sendable {
        public let predictedClasses: [Int]
        public let scores: [[Int128]]
        public let jobID: String
        public let uploadBytes: Int
        public let downloadBytes: Int
    }

    /// Checks that the server serves `model` with `plan`'s parameters and layout, and registers
    /// fresh evaluation keys for it (the secret keys stay in this process).
    public static func connect(to service: ServiceClient, model: String, plan: SIMDPlan) async throws -> PrivateBatchClassifier {
        guard let served = try await service.models().first(where: { $0.name == model }) else {
            throw ServiceClientError.unexpectedResponse("the server does not serve model \(model)")
        }
        guard served.parameterSet == plan.parameterSetName, served.batchSize == plan.batchSize,
              served.inputCiphertexts == plan.inputCiphertexts * plan.parameters.count else {
            throw ServiceClientError.unexpectedResponse("the server's \(model) (\(served.parameterSet)) differs from the local plan (\(plan.parameterSetName))")
        }
        let client = try SIMDClient(plan: plan)
        let key = try await service.registerKey(client.evaluationKeyBytes(), forModel: model)
        return PrivateBatchClassifier(service: service, model: model, plan: plan, keyID: key.id, client: client)
    }

    private init(service: ServiceClient, model: String, plan: SIMDPlan, keyID: String, client: SIMDClient) {
        self.service = service
        self.model = model
        self.plan = plan
        self.keyID = keyID
        self.client = client
    }

    /// Classifies up to ``SIMDPlan/batchSize`` images (pixels in [0, 1]) in one job.
    public func classify(_ images: [ArraySlice<Float>], progress: @Sendable (InferenceJob) -> Void = { _ in }) async throws -> Predictions {
        var client = client
        let served = try await service.roundTrip(images, client: &client, model: model, keyID: keyID, progress: progress)
        return Predictions(predictedClasses: served.scores.map { BinarizedCNN.argmax($0) }, scores: served.scores, jobID: served.jobID,
                           uploadBytes: served.uploadBytes, downloadBytes: served.downloadBytes)
    }
}
