import Foundation
import ModelImport
import NeuralNet
import PrivateInference
import RLWE
import SIMDInference
import TFHE

/// Every reader of bytes an adversary controls, as one fuzz target each: what a server reads from
/// clients (keys, inputs), what a client reads from a server (results) and what either loads from
/// a file (models, secret keys). The contract under test: any byte string gives a value or a
/// typed error, never a trap, an out-of-bounds access or a leak. `obscura-fuzz` runs them under
/// libFuzzer and AddressSanitizer (`scripts/fuzz.sh`); the tests replay the committed corpus.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A server reading a client's encrypted TFHE input.
    case tfheInputs = "tfhe-inputs"
    /// A server reading a client's seeded TFHE evaluation key.
    case tfheEvaluationKey = "tfhe-evaluation-key"
    /// A client reading its secret key file.
    case tfheSecretKey = "tfhe-secret-key"
    /// A client decrypting a server's TFHE result (full and 16-bit rounded lists).
    case tfheResult = "tfhe-result"
    /// A server checking an RLWE model's upload (CryptoNets, BFV latency mode).
    case simdUpload = "simd-upload"
    /// A server building an evaluator from an RLWE model's keys.
    case simdKeys = "simd-keys"
    /// A client decrypting an RLWE model's result.
    case simdResult = "simd-result"
    /// A model file (JSON), then the TFHE plan compiled from it.
    case modelFile = "model-file"
    /// An ONNX file (protobuf) being imported: read, then lowered to a model's network.
    case onnx = "onnx"

    /// Feeds one input to the reader; errors are the expected outcome and are dropped.
    public func run(_ bytes: [UInt8]) {
        switch self {
        case .tfheInputs:
            _ = try? [SeededLweCiphertext](deserializing: bytes, expecting: nil, limit: 1 << 20)
        case .tfheEvaluationKey:
            _ = try? CompressedEvaluationKey(deserializing: bytes)
        case .tfheSecretKey:
            _ = try? SecretKey(deserializing: bytes)
        case .tfheResult:
            _ = try? Fixture.tfheClient.decryptScores(serialized: bytes)
            if let packed = try? PackedLweList(deserializing: bytes, limit: 1 << 20), packed.count <= 64 { _ = packed.extractAll() }
        case .simdUpload:
            try? SIMDEvaluator.check(upload: bytes, plan: Fixture.simdPlan)
        case .simdKeys:
            _ = try? SIMDEvaluator(plan: Fixture.simdPlan, keyBytes: bytes)
        case .simdResult:
            _ = try? Fixture.simdClient.decrypt(download: bytes, imageCount: 1)
        case .modelFile:
            guard let model = try? ModelFile.decode(Data(bytes), path: "fuzz input"), model.polynomialNetwork == nil else { return }
            _ = try? InferencePlan(model: model)
        case .onnx:
            guard let imported = try? ONNXImporter.read(Data(bytes)) else { return }
            _ = try? imported.network()
            // A float ReLU network goes through the sign-form search, on two small records.
            let size = imported.inputShape.count
            if !imported.isPolynomial, !imported.carriesItsIntegers, size <= 4096,
               let records = try? Dataset(name: "fuzz", sampleShape: [size], features: (0..<(2 * size)).map { Float($0 % 2) },
                                          labels: [0, 1], classNames: ["0", "1"]) {
                _ = try? imported.signForm(calibration: records, allowedLoss: 0.01)
            }
        }
    }

    /// Valid inputs to start from: real objects of each kind (large ones cut to their first
    /// 16 KiB, which still walks the header and the first elements).
    public func seeds() throws -> [[UInt8]] {
        let cut = { (bytes: [UInt8]) in Array(bytes.prefix(16 << 10)) }
        switch self {
        case .tfheInputs:
            var client = Fixture.tfheClient
            return [try client.encrypt(Fixture.tfheRecord)
                        .serialized(parameters: Fixture.tfhePlan.parameters)]
        case .tfheEvaluationKey:
            return [cut(Fixture.tfheClient.makeEvaluationKey().serialized())]
        case .tfheSecretKey:
            return [SecretKey(parameters: .integer2Bit128).serialized()]
        case .tfheResult:
            // The server's answer to a real input, as it sends it.
            var client = Fixture.tfheClient
            let evaluator = try PBSInferenceEvaluator(plan: Fixture.tfhePlan, key: nil)
            return [cut(try evaluator.answer(upload: try client.encryptForUpload(Fixture.tfheRecord)))]
        case .simdUpload:
            return [cut(try Fixture.simdClient.encryptForUpload([Array(repeating: Float(0.5), count: Fixture.simdPlan.network.inputCount)[...]]))]
        case .simdKeys:
            return [cut(Fixture.simdClient.evaluationKeyBytes())]
        case .simdResult:
            let upload = try Fixture.simdClient.encryptForUpload([Array(repeating: Float(0.5), count: Fixture.simdPlan.network.inputCount)[...]])
            let evaluator = try SIMDEvaluator(plan: Fixture.simdPlan, keys: Fixture.simdClient.evaluationKeys())
            return [cut(try evaluator.evaluate(upload: upload).bytes)]
        case .modelFile:
            // A trained kind, and the same network as a graph (format 3).
            var model = try ModelCatalog.load("paper-perceptron-cancer")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let kind = [UInt8](try encoder.encode(model))
            model.network = .graph(try model.graph())
            return [kind, [UInt8](try encoder.encode(model))]
        case .onnx:
            // This library reads ONNX but does not write it: the seeds are PyTorch's exports
            // under examples/, committed to Fuzz/corpus/onnx.
            return []
        }
    }
}

/// The plans and client keys the targets read against, made once per process.
enum Fixture {
    static let tfheModel = try! ModelCatalog.load("paper-perceptron-cancer")
    static let tfhePlan = try! InferencePlan(model: tfheModel)
    static let tfheRecord = Array(repeating: Float(0.5), count: tfheModel.inputSize)[...]
    static let tfheClient = InferenceClient(plan: tfhePlan, secretKey: SecretKey(parameters: tfhePlan.parameters))
    static let simdPlan = try! SIMDPlan.compile(try! ModelCatalog.load("cryptonets-mnist").polynomialNetwork!.integerForm(), mode: .latency)
    static let simdClient = try! SIMDClient(plan: simdPlan)
}
