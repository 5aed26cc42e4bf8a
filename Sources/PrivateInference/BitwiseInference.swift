import CipherCircuits
import InferenceBackend
import NeuralNet
import TFHE

/// The main paper's `bitwise` mode for its binarized perceptron: the client encrypts each
/// binary input as one boolean ciphertext (the boolean-gate set, int2-128); the server computes
/// x_i·w_i = h-xnor(x_i, w_i) with the clear weight bits (free), adds the ±1 products into an
/// n-bit score (the paper: ep() and ripple additions; fast: a popcount tree) and compares it with
/// the clear threshold, all with the circuits of `CipherCircuits`.
///
/// The server returns the score's bits and the class bit; the client decrypts both.
public struct BitwisePerceptronEvaluator: Sendable {
    /// The model.
    public let perceptron: BinarizedPerceptron
    /// The circuit design.
    public let method: CircuitMethod
    /// The client's int2-128 evaluation key.
    public let key: EvaluationKey

    /// The boolean set this mode runs on.
    public static let parameters = TFHEParameters.booleanGates

    /// An evaluator with a client's int2-128 evaluation key.
    public init(perceptron: BinarizedPerceptron, method: CircuitMethod, key: EvaluationKey) throws(InferenceError) {
        guard key.parameters == Self.parameters else {
            throw .parameterMismatch(expected: Self.parameters.name, found: key.parameters.name)
        }
        self.perceptron = perceptron
        self.method = method
        self.key = key
    }

    /// Bits of the two's-complement score: enough for ±inputCount.
    public var scoreWidth: Int { EncryptedInteger.width(holding: perceptron.inputCount) }

    /// The score's bits (least significant first) followed by the class bit; the number of
    /// bootstraps it took.
    public func evaluate(_ inputs: [LweCiphertext]) throws(InferenceError) -> (outputs: [LweCiphertext], bootstraps: Int) {
        guard inputs.count == perceptron.inputCount else {
            throw .sizeMismatch(what: "input ciphertexts", expected: perceptron.inputCount, found: inputs.count)
        }
        if let bad = inputs.first(where: { $0.dimension != Self.parameters.bigLweDimension }) {
            throw .sizeMismatch(what: "input ciphertext dimension", expected: Self.parameters.bigLweDimension, found: bad.dimension)
        }
        let circuit = CircuitEvaluator(key: key)
        let products = zip(inputs, perceptron.weightSigns).map { input, weight in
            circuit.xnor(.encrypted(input), .plain(weight > 0))
        }
        let score = circuit.sumOfSigns(products, width: scoreWidth, method: method)
        // Scores lie in [−n, n]: a threshold clamped to [−n, n + 1] decides alike, and T − 1 fits the width.
        let n = perceptron.inputCount
        let threshold = EncryptedInteger.plain(Int64(min(max(perceptron.integerThreshold, -n), n + 1) - 1), width: scoreWidth)
        let decision = circuit.greaterThan(score, threshold, method: method)
        let outputs = (score.bits + [decision]).map { bit in
            switch bit {
            case .encrypted(let ciphertext): ciphertext
            case .plain(let value): LweCiphertext.trivial(dimension: Self.parameters.bigLweDimension, body: BooleanEncoding.encode(value))
            }
        }
        return (outputs, circuit.bootstrapCount)
    }
}

/// The client side of the bitwise perceptron: one boolean ciphertext per binary input.
public struct BitwisePerceptronClient: Sendable {
    /// The model.
    public let perceptron: BinarizedPerceptron
    private var encryptor: Encryptor

    /// A client with a fresh int2-128 secret key.
    public init(perceptron: BinarizedPerceptron) {
        self.perceptron = perceptron
        encryptor = Encryptor(secretKey: SecretKey(parameters: BitwisePerceptronEvaluator.parameters))
    }

    /// The evaluation key to send to the server.
    public func makeEvaluationKey() -> CompressedEvaluationKey { encryptor.secretKey.makeEvaluationKey() }

    /// The record's binarized features, encrypted bit by bit (+1 ↦ true).
    public mutating func encrypt(_ record: ArraySlice<Float>) throws(InferenceError) -> [SeededLweCiphertext] {
        guard record.count == perceptron.featureCount else {
            throw .sizeMismatch(what: "record values", expected: perceptron.featureCount, found: record.count)
        }
        return perceptron.binarize(record).map { encryptor.encryptSeeded(plaintext: BooleanEncoding.encode($0 > 0)) }
    }

    /// The decrypted score and class.
    public func decrypt(_ outputs: [LweCiphertext]) -> (score: Int, decision: Int) {
        let bits = outputs.map { encryptor.decryptBit($0) }
        let raw = bits.dropLast().enumerated().reduce(Int64(0)) { $0 | ($1.element ? Int64(1) << $1.offset : 0) }
        let score = EncryptedInteger.signExtend(raw, width: bits.count - 1)
        return (Int(score), bits.last! ? 1 : 0)
    }
}

/// The bitwise perceptron as an encrypted-inference backend, so that the command line, the
/// tests and apps run it through ``EncryptedInference/roundTrip(_:client:server:progress:)``
/// like every other backend: the upload is the seeded boolean ciphertexts, the answer the
/// score's bits and the class bit.
extension BitwisePerceptronEvaluator: InferenceBackendServer {
    /// Unknown before the circuits run (they count their bootstraps as they go): the one
    /// progress report, at the end, gives the count.
    public var progressUnits: Int { 0 }

    public func answer(upload: [UInt8], progress: @escaping EvaluationProgress) throws -> [UInt8] {
        let inputs = try [SeededLweCiphertext](deserializing: upload, expecting: Self.parameters).map { $0.expanded() }
        let result = try evaluate(inputs)
        progress("bitwise circuits", result.bootstraps, result.bootstraps)
        return result.outputs.serialized(parameters: Self.parameters)
    }
}

extension BitwisePerceptronClient: InferenceBackendClient {
    public var recordsPerUpload: Int { 1 }

    public func evaluationKeyBytes() -> [UInt8] { makeEvaluationKey().serialized() }

    public mutating func encryptForUpload(_ records: [ArraySlice<Float>]) throws -> [UInt8] {
        guard records.count == 1 else { throw InferenceError.sizeMismatch(what: "records per upload", expected: 1, found: records.count) }
        return try encrypt(records[0]).serialized(parameters: BitwisePerceptronEvaluator.parameters)
    }

    /// The score; the server's class bit must agree with it (score ≥ the threshold), a check
    /// of its comparator circuit.
    public func decryptScores(download: [UInt8], records: Int) throws -> [[Int128]] {
        guard records == 1 else { throw InferenceError.sizeMismatch(what: "records per upload", expected: 1, found: records) }
        let outputs = try [LweCiphertext](deserializing: download, expecting: BitwisePerceptronEvaluator.parameters)
        let width = EncryptedInteger.width(holding: perceptron.inputCount)
        guard outputs.count == width + 1 else {
            throw InferenceError.sizeMismatch(what: "answer ciphertexts (score bits and class bit)", expected: width + 1, found: outputs.count)
        }
        let (score, decision) = decrypt(outputs)
        guard decision == (score >= perceptron.integerThreshold ? 1 : 0) else {
            throw InferenceError.inconsistentAnswer("the class bit \(decision) disagrees with the score \(score) "
                + "(threshold \(perceptron.integerThreshold))")
        }
        return [[Int128(score)]]
    }
}
