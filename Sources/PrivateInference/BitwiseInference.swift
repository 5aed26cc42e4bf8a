import CipherCircuits
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
        let circuit = CircuitEvaluator(key: key)
        let products = zip(inputs, perceptron.weightSigns).map { input, weight in
            circuit.xnor(.encrypted(input), .plain(weight > 0))
        }
        let score = circuit.sumOfSigns(products, width: scoreWidth, method: method)
        let threshold = EncryptedInteger.plain(Int64(perceptron.integerThreshold - 1), width: scoreWidth)
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
