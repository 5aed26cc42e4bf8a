import InferenceBackend
import NeuralNet
import TFHE

/// The client side: key generation, Batchnorm + Binactive + encryption of a record, and
/// decryption of the returned partial scores. It needs no server code.
public struct InferenceClient: InferenceBackendClient {
    /// The plan of the model the client queries.
    public let plan: InferencePlan
    private var encryptor: Encryptor

    /// A client with a fresh secret key for the plan's parameter set.
    public init(plan: InferencePlan) {
        self.init(plan: plan, secretKey: SecretKey(parameters: plan.parameters))
    }

    /// A client with an existing secret key.
    public init(plan: InferencePlan, secretKey: SecretKey) {
        precondition(secretKey.parameters == plan.parameters, "the secret key belongs to another parameter set")
        self.plan = plan
        encryptor = Encryptor(secretKey: secretKey)
    }

    /// The evaluation key to send to the server (seeded, compact).
    public func makeEvaluationKey() -> CompressedEvaluationKey {
        encryptor.secretKey.makeEvaluationKey()
    }

    /// The record binarized and encrypted, one seeded ciphertext per input, under the plan's input key.
    public mutating func encrypt(_ record: ArraySlice<Float>) throws(InferenceError) -> [SeededLweCiphertext] {
        let size = plan.recordSize
        guard record.count == size else { throw .sizeMismatch(what: "record values", expected: size, found: record.count) }
        let delta = plan.inputDelta, key = plan.inputKey
        return plan.binarize(record).map { encryptor.encryptSeeded(plaintext: UInt64(bitPattern: Int64($0)) &* delta, key: key) }
    }

    /// The record encrypted and serialized as it goes to the server
    /// (``PBSInferenceEvaluator/answer(upload:progress:)`` reads it).
    public mutating func encryptForUpload(_ record: ArraySlice<Float>) throws -> [UInt8] {
        try encrypt(record).serialized(parameters: plan.parameters)
    }

    /// One record per upload: each is its own inference.
    public var recordsPerUpload: Int { 1 }

    /// A fresh evaluation key (of the same secret key), serialized; empty for a plan without bootstraps.
    public func evaluationKeyBytes() -> [UInt8] {
        plan.bootstrapsPerInference > 0 ? makeEvaluationKey().serialized() : []
    }

    /// ``encryptForUpload(_:)`` of the one record an upload carries.
    public mutating func encryptForUpload(_ records: [ArraySlice<Float>]) throws -> [UInt8] {
        guard records.count == 1 else { throw InferenceError.sizeMismatch(what: "records per upload", expected: 1, found: records.count) }
        return try encryptForUpload(records[0])
    }

    /// ``decryptScores(serialized:)`` of the one record an upload carries.
    public func decryptScores(download: [UInt8], records: Int) throws -> [[Int128]] {
        guard records == 1 else { throw InferenceError.sizeMismatch(what: "records per upload", expected: 1, found: records) }
        return [try decryptScores(serialized: download).map { Int128($0) }]
    }

    /// The scores of a result as the server sends it (``PBSInferenceEvaluator/serializeResult(_:)``).
    public func decryptScores(serialized bytes: [UInt8]) throws -> [Int] {
        switch plan.resultEncoding {
        case .roundedList:
            return try decryptScores(try [LweCiphertext](deserializingRounded: bytes, expecting: plan.parameters))
        case .packed:
            // The plan knows the result's exact size: nothing larger is unpacked.
            let packed = try PackedLweList(deserializing: bytes, expecting: plan.parameters, limit: plan.resultBytes)
            guard packed.count == plan.outputCount else {
                throw InferenceError.sizeMismatch(what: "packed result values", expected: plan.outputCount, found: packed.count)
            }
            return try decryptScores(packed.extractAll())
        }
    }

    /// The scores: each score's partial sums decrypted and added, or its digits decrypted and
    /// put together.
    public func decryptScores(_ outputs: [LweCiphertext]) throws(InferenceError) -> [Int] {
        guard outputs.count == plan.outputCount else {
            throw .sizeMismatch(what: "result ciphertexts", expected: plan.outputCount, found: outputs.count)
        }
        switch plan.steps.last!.operation {
        case .scoreDigits(let digits):
            var next = 0
            return (0..<digits.scoreCount).map { k in
                let values = digits.digits[k].map { _ in
                    defer { next += 1 }
                    return Int(encryptor.decryptSigned(outputs[next], delta: digits.delta))
                }
                return digits.score(k, digits: values)
            }
        case .densePartialSums(let dense):
            let chunkCount = dense.chunks.count
            return (0..<dense.scoreCount).map { k in
                (0..<chunkCount).reduce(0) { $0 + Int(encryptor.decryptSigned(outputs[k * chunkCount + $1], delta: dense.delta)) }
            }
        default:
            preconditionFailure("plans end with the dense step")
        }
    }
}
