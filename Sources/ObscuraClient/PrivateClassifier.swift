import Foundation
import NeuralNet
import ObscuraAPI
import PrivateInference
import TFHE

/// One private prediction, decrypted on the client.
public struct PrivatePrediction: Sendable, Equatable {
    /// The predicted class (argmax of the scores).
    public let predictedClass: Int
    /// The decrypted scores, equal to the plaintext integer reference model's.
    public let scores: [Int]
    /// The server's job id.
    public let jobID: String
    /// Bytes sent (the encrypted input) and received (the encrypted scores).
    public let uploadBytes: Int
    public let downloadBytes: Int
}

/// What an app uses: it holds the secret key, registers the evaluation key with the server once,
/// then for each record encrypts on the device, submits, waits, downloads and decrypts. The
/// model's public description (its plan, built from the same model file the server serves) tells
/// it how to binarize, encrypt and add up the returned partial sums.
public struct PrivateClassifier: Sendable {
    /// The server.
    public let service: ServiceClient
    /// The plan of the model queried.
    public let plan: InferencePlan
    /// The registered evaluation key's id (nil for a model without bootstraps).
    public let keyID: String?
    private var client: InferenceClient

    /// Checks that the server serves `plan`'s model with the same shape and parameter set, and
    /// registers the evaluation key made from `secretKey` if the model needs one.
    public static func connect(to service: ServiceClient, plan: InferencePlan, secretKey: SecretKey) async throws -> PrivateClassifier {
        let name = plan.servedName
        guard let served = try await service.models().first(where: { $0.name == name }) else {
            throw ServiceClientError.unexpectedResponse("the server does not serve model \(name)")
        }
        guard served.parameterSet == plan.parameters.name, served.inputCiphertexts == plan.inputCount,
              served.outputCiphertexts == plan.outputCount, served.bootstrapsPerInference == plan.bootstrapsPerInference,
              (served.answer ?? InferencePlan.Answer.partialSums.rawValue) == plan.answer.rawValue else {
            throw ServiceClientError.unexpectedResponse("the server's \(name) differs from the local model file")
        }
        let client = InferenceClient(plan: plan, secretKey: secretKey)
        let keyID = try await service.registerKey(of: client, forModel: name)
        return PrivateClassifier(service: service, plan: plan, keyID: keyID, client: client)
    }

    private init(service: ServiceClient, plan: InferencePlan, keyID: String?, client: InferenceClient) {
        self.service = service
        self.plan = plan
        self.keyID = keyID
        self.client = client
    }

    /// Encrypts `record` for the server (one seeded ciphertext per binarized value).
    public mutating func encrypt(_ record: ArraySlice<Float>) throws -> [UInt8] {
        try client.encryptForUpload(record)
    }

    /// Decrypts a downloaded result into scores and class.
    public func decrypt(_ result: [UInt8]) throws -> (predictedClass: Int, scores: [Int]) {
        let scores = try client.decryptScores(serialized: result)
        return (plan.classify(scores: scores), scores)
    }

    /// Classifies one record privately: encrypt, submit, wait (reporting progress), download, decrypt.
    public mutating func classify(_ record: ArraySlice<Float>, progress: @Sendable (InferenceJob) -> Void = { _ in })
        async throws -> PrivatePrediction {
        let served = try await service.roundTrip([record], client: &client, model: plan.servedName, keyID: keyID, progress: progress)
        let scores = served.scores[0].map { Int($0) }
        return PrivatePrediction(predictedClass: plan.classify(scores: scores), scores: scores, jobID: served.jobID,
                                 uploadBytes: served.uploadBytes, downloadBytes: served.downloadBytes)
    }
}
