import Foundation
import NeuralNet
import ObscuraMath
import TFHE

/// Why a model cannot be run encrypted, or an encrypted inference cannot proceed.
public enum InferenceError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The model has a layer that the PBS engine does not evaluate.
    case unsupportedModel(String)
    /// A record or a ciphertext list of the wrong size.
    case sizeMismatch(what: String, expected: Int, found: Int)
    /// The plan bootstraps, and no evaluation key came with it.
    case missingEvaluationKey(bootstraps: Int)
    /// An evaluation key or ciphertext of another parameter set.
    case parameterMismatch(expected: String, found: String)

    public var description: String {
        switch self {
        case .unsupportedModel(let reason): "cannot run this model encrypted: \(reason)"
        case .sizeMismatch(let what, let expected, let found): "\(what): expected \(expected), found \(found)"
        case .parameterMismatch(let expected, let found): "parameter set \(found) where \(expected) is required"
        case .missingEvaluationKey(let bootstraps): "the plan runs \(bootstraps) bootstraps and needs the client's evaluation key"
        }
    }
}

/// A model compiled for encrypted evaluation in `pbs` mode: where each bootstrap goes and the
/// message space (torus scale) of every layer, chosen from the weights so that no value wraps
/// and every decoding fails with probability below 2^-128.
///
/// Values are signed multiples of a scale Δ on the 2^64 torus, FHE-DiNN style:
/// - inputs ±1 at ``inputDelta``, under the small key where the first layer bootstraps (its
///   sums go to blind rotation without a key switch), under the big key otherwise (``inputKey``);
/// - a linear layer with plaintext integer weights costs no bootstrap;
/// - a sign is one bootstrap with a constant test vector (no padding bit: the whole torus is
///   used, the sign boundaries sit at 0 and 1/2), whose output scale is the next layer's;
/// - the last dense layer stays linear and is split into partial sums (``chunks``) small
///   enough to decode exactly; the client adds them;
/// - the partial sums go back packed into a few GLWE ciphertexts with small words
///   (``ResultEncoding``), their noise counted in the partial sums' budget.
public struct InferencePlan: Sendable {
    /// The network being evaluated.
    public enum Network: Sendable {
        /// The paper's binarized perceptron: one linear score.
        case perceptron(BinarizedPerceptron)
        /// A binarized CNN with sign activations.
        case signCNN(BinarizedCNN)
    }

    /// One layer of the plan, for display.
    public struct Step: Sendable {
        /// What the layer does.
        public let name: String
        /// Bootstraps it runs per inference.
        public let bootstraps: Int
        /// log2 of the probability that one of its outputs decodes wrongly (union bound),
        /// floored at -999 (below that the figure says nothing more).
        public let failureLog2: Double

        init(name: String, bootstraps: Int, failureLog2: Double) {
            self.name = name
            self.bootstraps = bootstraps
            self.failureLog2 = max(failureLog2, -999)
        }
    }

    /// The model's name.
    public let modelName: String
    /// The network.
    public let network: Network
    /// The TFHE parameter set.
    public let parameters: TFHEParameters
    /// Input ciphertexts per inference.
    public let inputCount: Int
    /// The key the client encrypts inputs under: the small key when the first layer bootstraps
    /// (CNNs), the big key when the inputs feed the decrypted result directly (the perceptron).
    public let inputKey: LweKey
    /// The scale of the ±1 inputs.
    public let inputDelta: UInt64
    /// Sign CNN: the scale of the bootstrap outputs that feed the pooling layer.
    public let poolDelta: UInt64
    /// The scale of the dense layer's ±1 inputs (perceptron: ``inputDelta``).
    public let featureDelta: UInt64
    /// The scale of the returned partial scores.
    public let scoreDelta: UInt64
    /// The feature ranges of the partial sums of each score.
    public let chunks: [Range<Int>]
    /// The number of scores.
    public let scoreCount: Int
    /// The layers, in order.
    public let steps: [Step]
    /// How the partial sums travel back to the client.
    public let resultEncoding: ResultEncoding

    /// How a result's partial sums travel from server to client.
    public enum ResultEncoding: Sendable, Hashable {
        /// One LWE ciphertext under the big key per partial sum, every word rounded to 16 bits:
        /// for plans without bootstraps, whose clients send no evaluation key.
        case roundedList
        /// The partial sums packed N' to a GLWE ciphertext by the evaluation key's packing key
        /// switch, every word switched to `transportBits` bits (``PackedLweList``).
        case packed(transportBits: Int)
    }

    /// Bytes of one serialized result.
    public var resultBytes: Int {
        switch resultEncoding {
        case .roundedList: [LweCiphertext].roundedSerializedSize(count: outputCount, parameters: parameters)
        case .packed(let bits): PackedLweList.serializedSize(values: outputCount, bits: bits, parameters: parameters)
        }
    }

    /// Bootstraps per inference.
    public var bootstrapsPerInference: Int { steps.reduce(0) { $0 + $1.bootstraps } }
    /// Ciphertexts returned per inference (score by score, chunk by chunk).
    public var outputCount: Int { scoreCount * chunks.count }
    /// log2 of the probability that an inference decodes anything wrongly.
    public var failureLog2: Double {
        let total = steps.reduce(0.0) { $0 + exp2($1.failureLog2) }
        return total > 0 ? log2(total) : steps.map(\.failureLog2).min() ?? -.infinity
    }

    /// Every plan keeps each decoding's failure probability below this.
    public static let failureTargetLog2 = -128.0

    /// Compiles a bundled or loaded model for parameter set `parameters` (tfhe-rs's 4-bit set by default).
    public init(model: ModelFile, parameters: TFHEParameters = .integer4Bit128) throws(InferenceError) {
        if let perceptron = model.perceptron {
            try self.init(modelName: model.name, network: .perceptron(perceptron), parameters: parameters)
        } else if let cnn = model.binarizedCNN, cnn.activation == .sign {
            try self.init(modelName: model.name, network: .signCNN(cnn), parameters: parameters)
        } else {
            throw .unsupportedModel("\(model.name): pbs mode evaluates perceptrons and sign-activation CNNs; the scaled-ReLU "
                + "CNN multiplies by the encrypted K map (use its sign variant) and polynomial networks are for RLWE schemes")
        }
    }

    /// Compiles `network` for parameter set `parameters`.
    public init(modelName: String, network: Network, parameters: TFHEParameters = .integer4Bit128) throws(InferenceError) {
        self.parameters = parameters
        self.modelName = modelName
        self.network = network
        let noise = NoiseModel(parameters)
        let torus = Double.pow2(64)
        let cnn: BinarizedCNN
        switch network {
        case .perceptron(let perceptron):
            inputCount = perceptron.inputCount
            inputKey = .big
            poolDelta = 0
            let dense = try DensePlan(weights: [perceptron.weightSigns], bias: [0], featureVariance: noise.freshVariance,
                                      resultVariance: [LweCiphertext].roundingPhaseVariance(parameters))
            inputDelta = dense.featureDelta
            featureDelta = dense.featureDelta
            (scoreDelta, chunks, scoreCount, resultEncoding) = (dense.delta, dense.chunks, 1, .roundedList)
            steps = [Step(name: "dense \(inputCount) → 1 (linear, \(chunks.count) partial sum(s))", bootstraps: 0,
                          failureLog2: dense.failureLog2)]
            return
        case .signCNN(let network):
            cnn = network
        }
        guard cnn.activation == .sign, cnn.isConsistent else {
            throw .unsupportedModel("\(modelName): not a consistent sign-activation CNN")
        }
        let s = cnn.shape, levels = cnn.activationLevels
        guard s.kernelArea + BinarizedCNN.maxThreshold < 32 else {
            throw .unsupportedModel("a \(s.kernelSide)×\(s.kernelSide) sum does not fit one sign bootstrap")
        }
        inputCount = s.pixelCount
        inputKey = .small
        // |S − t| ≤ 31 odd: every pre-activation is at least 1/64 away from 0 and 1/2.
        inputDelta = UInt64(1) << 58
        let convolutionOutputs = s.filterCount * s.convolutionSide * s.convolutionSide
        // Every threshold's reading has the same 1/64 margin (the shift moves the phase by whole steps).
        let convolutionFailure = noise.smallKeyInputFailureLog2(inputNorm: Double(s.kernelSide), margin: 1.0 / 64)
            + log2(Double(convolutionOutputs * levels))
        let activationName = levels == 1 ? "sign" : "\(levels) signs (one bootstrap read at \(levels) coefficients)"
        var planned = [Step(name: "binarized conv \(s.filterCount)×\(s.kernelSide)×\(s.kernelSide) + \(activationName)",
                            bootstraps: convolutionOutputs, failureLog2: convolutionFailure)]
        let orPooling = s.poolSide > 1 && s.pooling == .max
        if orPooling {
            // OR of p² signs: Σ a_i + (p² − 1) ∈ [−1, 2p² − 1], so the scale is below 1/(2(2p² − 1)).
            let window = s.poolSide * s.poolSide
            let bits = Int.bitWidth - (2 * window - 2).leadingZeroBitCount  // ⌈log2(2p² − 1)⌉
            poolDelta = UInt64(1) << (63 - bits)
            let margin = Double(poolDelta) / torus
            planned.append(Step(name: "max pool \(s.poolSide)×\(s.poolSide) (OR of signs)", bootstraps: cnn.featureCount,
                                failureLog2: noise.failureLog2(inputNorm: Double(s.poolSide), margin: margin) + log2(Double(cnn.featureCount))))
        } else {
            poolDelta = 0
        }
        let features = cnn.featureCount
        let rows = (0..<s.classCount).map { Array(cnn.integer.denseWeights[($0 * features)..<(($0 + 1) * features)]) }
        // Bootstrap outputs, at the noise model's variance (which includes the FFT's error and
        // which NoiseTests checks against measurement on every set); a sum pool adds p² of them
        // into each feature. The L readings of one blind rotation go to
        // different features and their noises may be slightly correlated, which the noise
        // model's multi-value factor bounds. OR pooling bootstraps again, so its features are
        // independent.
        let summed = s.poolSide > 1 && s.pooling == .sum ? s.poolSide * s.poolSide : 1
        let correlation = NoiseModel.multiValueVarianceFactor(readings: orPooling ? 1 : levels)
        let (dense, bits) = try DensePlan.packed(weights: rows, bias: cnn.integer.denseBias, featureMagnitude: summed,
                                                 featureVariance: Double(summed) * correlation * noise.bootstrapOutputVariance,
                                                 noise: noise)
        featureDelta = dense.featureDelta
        (scoreDelta, chunks, scoreCount, resultEncoding) = (dense.delta, dense.chunks, s.classCount, .packed(transportBits: bits))
        if summed > 1 {
            planned.append(Step(name: "sum pool \(s.poolSide)×\(s.poolSide) (linear)", bootstraps: 0, failureLog2: -.infinity))
        }
        planned.append(Step(name: "dense \(features) → \(s.classCount) (linear, \(chunks.count) partial sums per class)",
                            bootstraps: 0, failureLog2: dense.failureLog2))
        let packing = parameters.packing, values = s.classCount * chunks.count
        planned.append(Step(name: "pack \(values) partial sums into \(PackedLweList.glweCount(values: values, parameters: parameters)) "
                                + "GLWE(s) (k'=\(packing.glweDimension), N'=\(packing.polynomialSize)), \(bits)-bit words",
                            bootstraps: 0, failureLog2: -.infinity))
        steps = planned
    }

    /// The integer reference's scores for a record: what decryption must reproduce exactly.
    public func referenceScores(_ record: ArraySlice<Float>) -> [Int] {
        switch network {
        case .perceptron(let p): [p.integerScore(p.binarize(record))]
        case .signCNN(let cnn): cnn.integerScores(record)
        }
    }

    /// The class the scores decide (perceptron: its threshold; CNN: the first largest score).
    public func classify(scores: [Int]) -> Int {
        switch network {
        case .perceptron(let p): scores[0] >= p.integerThreshold ? 1 : 0
        case .signCNN: BinarizedCNN.argmax(scores)
        }
    }

    /// The client's Batchnorm + Binactive: the ±1 inputs to encrypt.
    public func binarize(_ record: ArraySlice<Float>) -> [Int] {
        switch network {
        case .perceptron(let p): p.binarize(record)
        case .signCNN(let cnn): cnn.binarize(record)
        }
    }
}

/// The message space of a dense layer whose inputs are integers in [-m, m] (±1 signs, or sums of
/// m of them: sum pools) and whose outputs the
/// client decrypts: the fewest contiguous partial sums per score such that each partial sum's
/// value range fits the torus and its noise decodes with failure below the target.
struct DensePlan {
    let delta: UInt64
    /// The inputs' scale: the partial sums are linear in them, so they share the score scale.
    var featureDelta: UInt64 { delta }
    let chunks: [Range<Int>]
    let failureLog2: Double

    /// `resultVariance` is the noise the result picks up on its way to the client (the rounding
    /// of `serializedRounded`), added to every partial sum. The search starts at `fewestChunks`:
    /// a caller that knows fewer cannot decode passes it.
    init(weights: [[Int]], bias: [Int], featureMagnitude: Int = 1, featureVariance: Double,
         resultVariance: Double = 0, fewestChunks: Int = 1) throws(InferenceError) {
        let features = weights[0].count
        for count in min(max(1, fewestChunks), max(1, features))...max(1, features) {
            let bounds = (0...count).map { $0 * features / count }
            let ranges = (0..<count).map { bounds[$0]..<bounds[$0 + 1] }
            // In doubles: a hostile model's weights must give an error here, not an overflow trap
            // (the bound below refuses anything near 2^53 long before precision matters).
            var largest = 0.0, normSquared = 0.0
            for (k, row) in weights.enumerated() {
                for (g, range) in ranges.enumerated() {
                    let share = Double(Self.biasShare(bias[k], chunk: g, of: count))
                    largest = max(largest, row[range].reduce(0.0) { $0 + abs(Double($1)) } * Double(featureMagnitude) + abs(share))
                    normSquared = max(normSquared, row[range].reduce(0.0) { $0 + Double($1) * Double($1) })
                }
            }
            guard largest < 0x1p40 else { continue }
            // Values in [−largest, largest] at scale Δ stay inside (−1/2, 1/2) with half a step to spare.
            let delta = UInt64(Double.pow2(64) / (2 * largest + 2))
            let margin = Double(delta) / 2 / Double.pow2(64)
            let sigma = (featureVariance * normSquared + resultVariance).squareRoot()
            let failure = NoiseModel.log2Erfc(margin / (sigma * 2.0.squareRoot())) + log2(Double(weights.count * count))
            if failure <= InferencePlan.failureTargetLog2 {
                self.delta = delta
                chunks = ranges
                failureLog2 = failure
                return
            }
        }
        throw .unsupportedModel("the dense layer's weights are too large to decode exactly")
    }

    /// The dense plan whose packed result (``PackedLweList``) is smallest, with its transport
    /// bits: fewer bits add rounding noise, so more and smaller partial sums; more bits make every
    /// word longer. Each candidate counts the packing key switch's noise and its own rounding.
    /// Candidates go from the most bits down: a split that decodes with more noise decodes with
    /// less, so each search starts at the previous one's count, and once none decodes, none will.
    static func packed(weights: [[Int]], bias: [Int], featureMagnitude: Int, featureVariance: Double,
                       noise: NoiseModel) throws(InferenceError) -> (DensePlan, transportBits: Int) {
        var best: (plan: DensePlan, bits: Int, bytes: Int)?, fewest = 1
        for bits in (10...24).reversed() {
            let resultVariance = noise.packingKeySwitchVariance
                + PackedLweList.transportRoundingVariance(noise.parameters, bits: bits)
            guard let plan = try? DensePlan(weights: weights, bias: bias, featureMagnitude: featureMagnitude,
                                            featureVariance: featureVariance, resultVariance: resultVariance,
                                            fewestChunks: fewest) else { break }
            fewest = plan.chunks.count
            let bytes = PackedLweList.serializedSize(values: weights.count * plan.chunks.count, bits: bits,
                                                     parameters: noise.parameters)
            // Ties go to fewer bits.
            if best.map({ bytes <= $0.bytes }) ?? true { best = (plan, bits, bytes) }
        }
        guard let best else { throw .unsupportedModel("the dense layer's weights are too large to decode exactly") }
        return (best.plan, best.bits)
    }

    /// The part of a score's bias that partial sum g of `count` carries: the bias is spread
    /// over the partial sums (the shares add up to it exactly) so that no single one holds
    /// all of its range.
    static func biasShare(_ bias: Int, chunk g: Int, of count: Int) -> Int {
        // The product bias·(g+1) may not fit for a hostile bias; the quotient always does.
        let (quotient, remainder) = bias.quotientAndRemainder(dividingBy: count)
        return quotient + (remainder * (g + 1) / count - remainder * g / count)
    }
}
