import Foundation
import CipherCircuits
import InferenceBackend
import NeuralNet
import Testing
import TFHE
@testable import PrivateInference

/// The real datasets sit beside the repository in `../shared/data`; `OBSCURA_SHARED_DATA` points elsewhere.
enum SharedData {
    static let root: String = {
        if let path = ProcessInfo.processInfo.environment["OBSCURA_SHARED_DATA"] { return path }
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        return here.appendingPathComponent("../../../shared/data").standardized.path
    }()
}

/// One evaluation key of the secure 4-bit set, made once for all tests (46.9 MB seeded).
enum SecureKeys {
    static let secret = SecretKey(parameters: .integer4Bit128)
    static let evaluation = EvaluationKey(secret.makeEvaluationKey())
}

/// Encrypts, evaluates and decrypts `records` as client and server do, through the serialized
/// result (packed, for plans with bootstraps); returns (decrypted scores, reference scores) per record.
func runEncrypted(_ plan: InferencePlan, _ data: Dataset, _ records: [Int]) throws -> [([Int], [Int])] {
    var client = InferenceClient(plan: plan, secretKey: SecureKeys.secret)
    let server = try PBSInferenceEvaluator(plan: plan, key: plan.bootstrapsPerInference > 0 ? SecureKeys.evaluation : nil)
    return try records.map { index in
        let download = try server.answer(upload: try client.encryptForUpload(data.sample(index)))
        #expect(download.count == plan.resultBytes)
        return (try client.decryptScores(serialized: download), plan.referenceScores(data.sample(index)))
    }
}

struct PBSInferenceTests {
    @Test("perceptron: decrypted scores equal the integer reference's on all 115 test records, with no bootstrap")
    func perceptronExact() throws {
        let model = try ModelCatalog.load("paper-perceptron-cancer")
        let data = try Dataset.breastCancer(folder: SharedData.root + "/breast-cancer")
        let plan = try InferencePlan(model: model)
        #expect(plan.bootstrapsPerInference == 0 && plan.parameters.securityBits >= 128)
        let test = Dataset.breastCancerSplit().test
        let results = try runEncrypted(plan, data, test)
        for (index, (decrypted, reference)) in zip(test, results) { #expect(decrypted == reference, "record \(index)") }
        let correct = zip(test, results).filter { plan.classify(scores: $1.0) == data.labels[$0] }.count
        #expect(Double(correct) / Double(test.count) == model.integerAccuracy)
    }

    /// A random sign CNN on 8×8 images: 2 filters 5×5 → 2×4×4 signs → OR-pool 2×2 → 8 → 3 classes.
    static func tinyNetwork() -> BinarizedCNN {
        var random = SystemRandomNumberGenerator()
        let shape = BinarizedCNN.Shape(imageSide: 8, kernelSide: 5, stride: 1, filterCount: 2, poolSide: 2, classCount: 3)
        let filters = (0..<(shape.filterCount * shape.kernelArea)).map { _ in Float.random(in: -1...1, using: &random) }
        let dense = (0..<(shape.classCount * shape.filterCount * shape.pooledSide * shape.pooledSide)).map { _ in Int.random(in: -7...7, using: &random) }
        let thresholds = (0..<shape.filterCount).map { _ in 2 * Int.random(in: -3...3, using: &random) }
        return BinarizedCNN(shape: shape, activation: .sign, pixelMean: 0.5, pixelDeviation: 0.3, filterWeights: filters,
                            thresholds: thresholds.map(Float.init), denseWeights: dense.map(Float.init), denseBias: [0, 0, 0],
                            integer: .init(filterSigns: filters.map { $0 >= 0 ? 1 : -1 }, thresholds: thresholds, alphas: [],
                                           denseWeights: dense, denseBias: [3, -5, 40]))
    }

    @Test("a random tiny sign CNN, secure parameters: every decrypted score equals the reference, bootstraps as planned")
    func tinyCNNExact() throws {
        let cnn = Self.tinyNetwork()
        #expect(cnn.isConsistent)
        let plan = try InferencePlan(modelName: "tiny", graph: cnn.graph)
        #expect(plan.bootstrapsPerInference == 2 * 4 * 4 + 2 * 2 * 2)
        let images = (0..<4).flatMap { _ in (0..<64).map { _ in Float.random(in: 0...1) } }
        let data = try Dataset(name: "random", sampleShape: [1, 8, 8], features: images, labels: [0, 1, 2, 0], classNames: ["a", "b", "c"])
        for (decrypted, reference) in try runEncrypted(plan, data, Array(0..<4)) { #expect(decrypted == reference) }
    }

    @Test("a random tiny CNN reading 3 thresholds per neuron, sum and OR pooling, secure parameters: exact scores, one conv bootstrap per neuron")
    func tinyThresholdChannelsExact() throws {
        var cnn = Self.tinyNetwork()
        var random = SystemRandomNumberGenerator()
        cnn.activationLevels = 3
        cnn.integer.thresholds = (0..<(3 * cnn.shape.filterCount)).map { _ in 2 * Int.random(in: -3...3, using: &random) }
        cnn.thresholds = cnn.integer.thresholds.map(Float.init)
        // Weights within ±3, as the sum-pooled bundled model's: ±7 on a sum of 4 correlated
        // readings is more range than one partial sum can decode.
        cnn.integer.denseWeights = (0..<(cnn.shape.classCount * cnn.featureCount)).map { _ in Int.random(in: -3...3, using: &random) }
        cnn.denseWeights = cnn.integer.denseWeights.map(Float.init)
        let images = (0..<3).flatMap { _ in (0..<64).map { _ in Float.random(in: 0...1) } }
        let data = try Dataset(name: "random", sampleShape: [1, 8, 8], features: images, labels: [0, 1, 2], classNames: ["a", "b", "c"])
        for pooling in [BinarizedCNN.Pooling.sum, .max] {
            cnn.shape.pooling = pooling
            #expect(cnn.isConsistent)
            let plan = try InferencePlan(modelName: "tiny-channels", graph: cnn.graph)
            // 2 filters × 16 positions; OR pooling adds one bootstrap per feature (6 channels × 4).
            #expect(plan.bootstrapsPerInference == 2 * 4 * 4 + (pooling == .max ? 6 * 2 * 2 : 0))
            for (decrypted, reference) in try runEncrypted(plan, data, Array(0..<3)) { #expect(decrypted == reference, "\(pooling)") }
        }
    }

    /// A quantized-ReLU network as an import writes it: 8×8 signs → 3×3 convolution with weights
    /// in −2…2 (zeros included) and a bias → 3 thresholds per filter of both parities → OR
    /// (max) pooling → dense.
    static func integerWeightGraph() -> ModelGraph {
        var random = SystemRandomNumberGenerator()
        let weights = (0..<18).map { _ in Int64.random(in: -2...2, using: &random) }
        let thresholds = [-3, 0, 4, -1, 2, 5]
        let dense = (0..<(3 * 6 * 3 * 3)).map { _ in Int64.random(in: -5...5, using: &random) }
        return ModelGraph(
            inputShape: TensorShape(channels: 1, height: 8, width: 8),
            layers: [.binarize(.init(thresholds: [0.5])),
                     .convolution(.init(outputChannels: 2, kernelSide: 3, stride: 1, padding: 0, weights: weights.map(Float.init),
                                        bias: [1, -2], integerWeights: weights, integerBias: [1, -2])),
                     .sign(.init(levels: 3, thresholds: thresholds.map(Float.init), integerThresholds: thresholds)),
                     .pool(.init(kind: .max, window: 2)),
                     .dense(.init(outputCount: 3, weights: dense.map(Float.init), bias: [0, 0, 0], integerWeights: dense,
                                  integerBias: [7, -3, 0]))],
            decision: .argmax)
    }

    @Test("sign thresholds for integer weights: for every sum a filter reaches, S − t is odd, within ±31 and has the graph's sign; too wide a filter is refused")
    func signThresholdsMatchTheGraph() throws {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            // Sums within ±14, so that even a clamped threshold (±15) is within 31 of every sum.
            let area = Int.random(in: 1...7, using: &random), levels = Int.random(in: 1...3, using: &random)
            let weights = (0..<area).map { _ in Int64.random(in: -2...2, using: &random) }
            let bias = Int128(Int.random(in: -4...4, using: &random))
            let graphThresholds = (0..<levels).map { _ in Int.random(in: -40...40, using: &random) }
            let reach = Int(weights.reduce(0) { $0 + abs($1) }), parity = Int(weights.reduce(0, +) & 1)
            let thresholds = try PBSLayers.signThresholds(weights: weights, bias: [bias], thresholds: graphThresholds, levels: levels)
            for (t, graphT) in zip(thresholds, graphThresholds) {
                for sum in stride(from: -reach, through: reach, by: 2) {
                    #expect((sum - t) & 1 == 1 && abs(sum - t) <= 31)
                    #expect((sum > t) == (Int128(sum) + bias > Int128(graphT)), "S \(sum), t \(t), T \(graphT), b \(bias)")
                }
                #expect(parity == reach & 1)
            }
        }
        // 25 weights of ±1 reach ±25: a threshold at 8 leaves 33 between it and S = −25.
        #expect(throws: PBSLayers.ThresholdError.self) {
            try PBSLayers.signThresholds(weights: .init(repeating: 1, count: 25), bias: [0], thresholds: [8], levels: 1)
        }
    }

    @Test("step by step: each step's decrypted outputs equal the graph reference after the layers the step computes")
    func stepByStep() throws {
        var sumPooled = Self.tinyNetwork()
        sumPooled.activationLevels = 3
        sumPooled.integer.thresholds = [-6, 0, 4, -2, 2, 6]
        sumPooled.thresholds = sumPooled.integer.thresholds.map(Float.init)
        sumPooled.integer.denseWeights = (0..<(3 * sumPooled.featureCount)).map { $0 % 7 - 3 }
        sumPooled.denseWeights = sumPooled.integer.denseWeights.map(Float.init)
        sumPooled.shape.pooling = .sum
        let mnist = try Dataset.mnist(folder: SharedData.root + "/mnist")
        let cases: [(ModelGraph, ArraySlice<Float>, InferencePlan.Answer)] = [
            (Self.tinyNetwork().graph, (0..<64).map { Float($0 % 9) / 8 }[...], .partialSums),
            (sumPooled.graph, (0..<64).map { Float($0 % 5) / 4 }[...], .partialSums),
            (Self.integerWeightGraph(), (0..<64).map { Float(($0 * 7) % 11) / 10 }[...], .partialSums),
            (try ModelCatalog.load("fast-mnist").graph(), mnist.sample(8002), .partialSums),
            (Self.tinyNetwork().graph, (0..<64).map { Float($0 % 7) / 6 }[...], .scores),
            (sumPooled.graph, (0..<64).map { Float($0 % 3) / 2 }[...], .scores),
            (Self.integerWeightGraph(), (0..<64).map { Float(($0 * 5) % 11) / 10 }[...], .scores),
        ]
        let encryptor = Encryptor(secretKey: SecureKeys.secret)
        for (graph, record, answer) in cases {
            let plan = try InferencePlan(modelName: "steps", graph: graph, answer: answer)
            var client = InferenceClient(plan: plan, secretKey: SecureKeys.secret)
            let server = try PBSInferenceEvaluator(plan: plan, key: SecureKeys.evaluation)
            var values = try client.encrypt(record).map { $0.expanded() }
            var delta = plan.inputDelta
            func decrypted() -> [Int128] { values.map { Int128(encryptor.decryptSigned($0, delta: delta)) } }
            for step in plan.steps {
                values = server.run(step, values, progress: { _, _, _ in })
                let expected = plan.reference.outputs(record, layers: step.layers.upperBound)
                switch step.operation {
                case .signConvolution(let convolution): delta = convolution.outputDelta
                case .orPool(let pool): delta = pool.outputDelta
                case .sumPool: break
                case .densePartialSums(let dense):
                    delta = dense.delta
                    let partial = decrypted(), chunks = dense.chunks.count
                    #expect((0..<dense.scoreCount).map { k in partial[(k * chunks)..<((k + 1) * chunks)].reduce(0, +) } == expected, "\(step.name)")
                    continue
                case .scoreDigits(let digits):
                    delta = digits.delta
                    let values = decrypted().map { Int($0) }
                    #expect(values.allSatisfy { (0..<digits.base).contains($0) }, "\(step.name): digits \(values)")
                    var next = 0
                    let scores = digits.digits.indices.map { k in
                        defer { next += digits.digits[k].count }
                        return digits.score(k, digits: Array(values[next..<(next + digits.digits[k].count)]))
                    }
                    #expect(scores.map { Int128($0) } == expected, "\(step.name)")
                    continue
                }
                #expect(decrypted() == expected, "\(step.name)")
            }
        }
    }

    @Test("the bundled sign CNNs on a real MNIST image, secure parameters: exact scores",
          arguments: [("paper-bnn-sign-mnist", 3 * 24 * 24, 8000), ("fast-mnist", 6 * 12 * 12, 8001)])
    func bundledCNNExact(name: String, bootstraps: Int, image: Int) throws {
        let plan = try InferencePlan(model: try ModelCatalog.load(name))
        #expect(plan.bootstrapsPerInference == bootstraps)
        #expect(plan.failureLog2 < -100)
        // The answer is packed: at most 64 KB per image (from 15 MB of rounded LWE ciphertexts).
        #expect(plan.resultEncoding != .roundedList && plan.resultBytes <= 64 << 10, "\(plan.resultBytes) bytes")
        let data = try Dataset.mnist(folder: SharedData.root + "/mnist")
        for (decrypted, reference) in try runEncrypted(plan, data, [image]) { #expect(decrypted == reference) }
    }

    @Test("no default is the insecure test set: plans, the gates' set, the secure list and the names a command line accepts")
    func defaultsAreSecure() throws {
        let plan = try InferencePlan(model: try ModelCatalog.load("fast-mnist"))
        #expect(!plan.parameters.isInsecureTestOnly && plan.parameters.securityBits >= 128)
        #expect(!TFHEParameters.booleanGates.isInsecureTestOnly)
        #expect(TFHEParameters.secureSets.allSatisfy { !$0.isInsecureTestOnly && $0.securityBits >= 128 })
        #expect(TFHEParameters.named(TFHEParameters.insecureTestOnly.name) == nil)
    }

    @Test("dense planning: each partial sum's range fits the torus and the split is the smallest that decodes")
    func densePlan() throws {
        let weights = [[Int]](repeating: [Int](repeating: 7, count: 400), count: 2)
        let plan = try DensePlan(weights: weights, bias: [100, -100], featureVariance: 1e-12)
        let count = plan.chunks.count
        let largest = plan.chunks.indices.map { plan.chunks[$0].count * 7 + abs(DensePlan.biasShare(100, chunk: $0, of: count)) }.max()!
        #expect(Double(plan.delta) * Double(2 * largest + 1) < 18_446_744_073_709_551_616)
        // The bias is spread over the partial sums and adds up exactly.
        #expect((0..<count).map { DensePlan.biasShare(-100, chunk: $0, of: count) }.reduce(0, +) == -100)
        #expect(plan.failureLog2 <= InferencePlan.failureTargetLog2)
        // 400 weights of 7 at this noise do not decode in one sum; two ±1 weights do.
        #expect(plan.chunks.count > 1)
        #expect(try DensePlan(weights: [[1, -1]], bias: [0], featureVariance: 1e-9).chunks.count == 1)
        #expect(plan.chunks.reduce(0) { $0 + $1.count } == 400)
    }

    @Test("refused: the scaled-ReLU model, a key of another parameter set, a wrong number of inputs, a missing key")
    func refusals() throws {
        // The error names the first layer pbs mode cannot run.
        for (model, layer) in [("paper-bnn-mnist", "layer 2 (magnitude scale)"), ("cryptonets-mnist", "layer 0 (fixed point)")] {
            do {
                _ = try InferencePlan(model: try ModelCatalog.load(model))
                Issue.record("\(model) compiled for pbs mode")
            } catch {
                #expect("\(error)".contains(layer), "\(error)")
            }
        }
        let plan = try InferencePlan(modelName: "tiny", graph: Self.tinyNetwork().graph)
        let otherKey = EvaluationKey(SecretKey(parameters: .insecureTestOnly).makeEvaluationKey())
        #expect(throws: InferenceError.parameterMismatch(expected: "int4-128", found: "INSECURE-test-only")) {
            _ = try PBSInferenceEvaluator(plan: plan, key: otherKey)
        }
        #expect(throws: InferenceError.missingEvaluationKey(bootstraps: plan.bootstrapsPerInference)) {
            _ = try PBSInferenceEvaluator(plan: plan, key: nil)
        }
        let server = try PBSInferenceEvaluator(plan: plan, key: SecureKeys.evaluation)
        #expect(throws: InferenceError.sizeMismatch(what: "input ciphertexts", expected: 64, found: 3)) {
            _ = try server.evaluate([LweCiphertext](repeating: .trivial(dimension: 2048, body: 0), count: 3))
        }
        var client = InferenceClient(plan: plan, secretKey: SecureKeys.secret)
        #expect(throws: InferenceError.sizeMismatch(what: "record values", expected: 64, found: 2)) {
            _ = try client.encrypt([0, 1][...])
        }
    }
}

struct BitwiseInferenceTests {
    @Test("bitwise perceptron (the paper's circuits and the fast ones), int2-128: exact score and class on real records")
    func bitwisePerceptron() throws {
        let bundled = try #require(try ModelCatalog.load("paper-perceptron-cancer").perceptron)
        let data = try Dataset.breastCancer(folder: SharedData.root + "/breast-cancer")
        // The paper's ripple circuits on a one-level perceptron (30 inputs) keep the test short;
        // the fast circuits run the bundled model's thermometer inputs.
        let oneLevel = BinarizedPerceptron.train(on: data, samples: Dataset.breastCancerSplit().train,
                                                 options: .init(epochs: 20, levels: 1))
        for (perceptron, method, record) in [(oneLevel, CircuitMethod.paper, 0), (bundled, .fast, 1)] {
            var client = BitwisePerceptronClient(perceptron: perceptron)
            let key = EvaluationKey(client.makeEvaluationKey())
            let server = try BitwisePerceptronEvaluator(perceptron: perceptron, method: method, key: key)
            let inputs = try client.encrypt(data.sample(record)).map { $0.expanded() }
            let result = try server.evaluate(inputs)
            let decrypted = client.decrypt(result.outputs)
            #expect(decrypted.score == perceptron.integerScore(perceptron.binarize(data.sample(record))), "\(method) record \(record)")
            #expect(decrypted.decision == perceptron.predictInteger(data.sample(record)), "\(method) record \(record)")
            #expect(result.bootstraps > 0)
        }
        #expect(throws: InferenceError.parameterMismatch(expected: "int2-128", found: "int4-128")) {
            _ = try BitwisePerceptronEvaluator(perceptron: bundled, method: .fast, key: SecureKeys.evaluation)
        }
    }

    @Test("the bitwise perceptron as a backend (bytes both ways, the key as bytes) gives the integer score; a class bit that contradicts the score, or an answer of the wrong length, is refused")
    func bitwiseBackend() throws {
        let perceptron = try #require(try ModelCatalog.load("paper-perceptron-cancer").perceptron)
        let data = try Dataset.breastCancer(folder: SharedData.root + "/breast-cancer")
        var client = BitwisePerceptronClient(perceptron: perceptron)
        let key = EvaluationKey(try CompressedEvaluationKey(deserializing: client.evaluationKeyBytes(), expecting: .booleanGates))
        let server = try BitwisePerceptronEvaluator(perceptron: perceptron, method: .fast, key: key)
        let record = data.sample(5)
        let answer = try server.answer(upload: try client.encryptForUpload([record])) { _, _, _ in }
        #expect(try client.decryptScores(download: answer, records: 1) == [[Int128(perceptron.integerScore(perceptron.binarize(record)))]])

        var outputs = try [LweCiphertext](deserializing: answer, expecting: .booleanGates)
        let decision = client.decrypt(outputs).decision
        outputs[outputs.count - 1] = .trivial(dimension: outputs[0].dimension, body: BooleanEncoding.encode(decision == 0))
        do {
            _ = try client.decryptScores(download: outputs.serialized(parameters: .booleanGates), records: 1)
            Issue.record("a class bit that contradicts the score was accepted")
        } catch {
            #expect("\(error)".contains("disagrees with the score"), "\(error)")
        }
        #expect(throws: InferenceError.self) {
            _ = try client.decryptScores(download: Array(outputs.dropLast()).serialized(parameters: .booleanGates), records: 1)
        }
        #expect(throws: InferenceError.self) { _ = try client.encryptForUpload([record, record]) }
        // Inputs under another key's dimension: a typed error before any gate.
        #expect(throws: InferenceError.self) {
            _ = try server.evaluate([LweCiphertext](repeating: .trivial(dimension: 10, body: 0), count: perceptron.inputCount))
        }
    }

    @Test("the bitwise comparator decides as score ≥ T for any threshold T, even far outside the scores' range (clamped to [−n, n + 1]), so an honest answer always passes the client's check")
    func bitwiseExtremeThresholds() throws {
        for (threshold, decision) in [(1000, 0), (Int.min, 1), (2, 0), (1, 1)] {
            let perceptron = BinarizedPerceptron(featureThresholds: [0.5, 0.5, 0.5], weightSigns: [1, 1, -1], alpha: 1, bias: 0,
                                                 integerThreshold: threshold)
            var client = BitwisePerceptronClient(perceptron: perceptron)
            let key = EvaluationKey(client.makeEvaluationKey())
            let server = try BitwisePerceptronEvaluator(perceptron: perceptron, method: .fast, key: key)
            // Inputs +1, +1, +1: score 1 + 1 − 1 = 1.
            let answer = try server.answer(upload: try client.encryptForUpload([[0.9, 0.9, 0.9]])) { _, _, _ in }
            #expect(try client.decryptScores(download: answer, records: 1) == [[1]], "T = \(threshold)")
            let outputs = try [LweCiphertext](deserializing: answer, expecting: .booleanGates)
            #expect(client.decrypt(outputs).decision == decision, "T = \(threshold)")
        }
    }
}

/// Hostile model files end in a typed error, never an arithmetic trap.
struct HostileModelTests {
    @Test("A dense weight of 10^15 or a bias of 10^18 is refused by the planner with an error",
          arguments: [(weight: 1_000_000_000_000_000, bias: 0), (weight: 1, bias: 1_000_000_000_000_000_000),
                      (weight: Int.max, bias: Int.min)])
    func absurdDenseParameters(weight: Int, bias: Int) throws {
        var model = try ModelCatalog.load("fast-mnist")
        var cnn = try #require(model.binarizedCNN)
        cnn.integer.denseWeights[0] = weight
        cnn.integer.denseBias[0] = bias
        model.network = .binarizedCNN(cnn)
        #expect(throws: InferenceError.self) { try InferencePlan(model: model) }
    }

    @Test("The shares of a bias over partial sums add up to it for any value, extremes included")
    func biasShares() {
        for bias in [Int.min, Int.max, -100, 0, 7, 1_000_000_000_000_000_000] {
            for count in [1, 3, 25] {
                #expect((0..<count).reduce(0) { $0 &+ DensePlan.biasShare(bias, chunk: $1, of: count) } == bias)
            }
        }
    }
}
