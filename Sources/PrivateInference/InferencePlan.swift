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
    /// A decrypted answer whose parts contradict each other.
    case inconsistentAnswer(String)

    public var description: String {
        switch self {
        case .unsupportedModel(let reason): "cannot run this model encrypted: \(reason)"
        case .sizeMismatch(let what, let expected, let found): "\(what): expected \(expected), found \(found)"
        case .parameterMismatch(let expected, let found): "parameter set \(found) where \(expected) is required"
        case .missingEvaluationKey(let bootstraps): "the plan runs \(bootstraps) bootstraps and needs the client's evaluation key"
        case .inconsistentAnswer(let reason): "the server's answer is inconsistent: \(reason)"
        }
    }
}

/// A model graph compiled for encrypted evaluation in `pbs` mode: the list of typed steps that
/// ``PBSInferenceEvaluator`` runs, in order, each with the message space (torus scale) of its
/// inputs and outputs, chosen from the weights so that no value wraps and every decoding fails
/// with probability below 2^-128.
///
/// Values are signed multiples of a scale Δ on the 2^64 torus, FHE-DiNN style:
/// - the client's encoding (the graph's binarize layer) gives ±1 inputs at ``inputDelta``,
///   under the small key where the first step bootstraps (its sums go to blind rotation
///   without a key switch), under the big key otherwise (``inputKey``);
/// - a convolution with small integer weights followed by sign activations (a quantized ReLU is
///   one sign per level) is one bootstrap per neuron
///   with a constant test vector (no padding bit: the whole torus is used, the sign boundaries
///   sit at 0 and 1/2), read at one coefficient per threshold; its output scale is the next step's;
/// - max pooling of ±1 values is their OR, one bootstrap; sum pooling is free;
/// - the last dense layer stays linear and is split into partial sums (``chunks``) small
///   enough to decode exactly; the client adds them;
/// - the partial sums go back packed into a few GLWE ciphertexts with small words
///   (``ResultEncoding``), their noise counted in the partial sums' budget.
public struct InferencePlan: Sendable {
    /// One step: what the evaluator does, what it costs and how likely it decodes wrongly.
    public struct Step: Sendable {
        /// What the step does, in words.
        public let name: String
        /// Bootstraps it runs per inference.
        public let bootstraps: Int
        /// log2 of the probability that one of its outputs decodes wrongly (union bound),
        /// floored at -999 (below that the figure says nothing more).
        public let failureLog2: Double
        /// log2 of the largest probability that any one of its bootstraps or decodings goes
        /// wrong: the per-bootstrap figure that parameter sets are published with.
        public let worstFailureLog2: Double
        /// What the evaluator runs.
        public let operation: Operation
        /// The graph layers it computes: its outputs are theirs, encrypted.
        public let layers: Range<Int>

        init(name: String, bootstraps: Int, failureLog2: Double, worstFailureLog2: Double, operation: Operation, layers: Range<Int>) {
            self.name = name
            self.layers = layers
            self.bootstraps = bootstraps
            self.failureLog2 = max(failureLog2, -999)
            self.worstFailureLog2 = max(worstFailureLog2, -999)
            self.operation = operation
        }
    }

    /// The operations the evaluator runs; each carries everything it needs.
    public enum Operation: Sendable {
        /// sign(Σ ±x − t) per filter, position and threshold: one bootstrap per neuron.
        case signConvolution(SignConvolution)
        /// OR of each window of ±1 values: one bootstrap per output.
        case orPool(OrPool)
        /// The sum of each window: linear.
        case sumPool(SumPool)
        /// The scores' partial sums: linear; the result (``Answer/partialSums``).
        case densePartialSums(DensePartialSums)
        /// The scores' base-B digits, summed exactly by rounds of bootstraps; the result
        /// (``Answer/scores``).
        case scoreDigits(ScoreDigits)
    }

    /// What the server returns.
    public enum Answer: String, Sendable, Hashable, Codable, CaseIterable {
        /// The dense layer's partial sums, which the client adds: no bootstrap, but the client
        /// sees pieces of each score.
        case partialSums = "partial-sums"
        /// Each score's base-B digits and nothing else (``ScoreDigits``): bootstraps on the server.
        case scores
    }

    /// A convolution with small integer weights over ±1 inputs at `inputDelta`, then sign at
    /// `levels` thresholds per filter: outputs ±`outputDelta`, channel f·L + k.
    public struct SignConvolution: Sendable {
        public let input: TensorShape
        public let kernelSide, stride, filterCount, levels: Int
        /// Integer weights, [filter][input channel][row][column] (±1 for binarized networks).
        public let weights: [Int]
        /// Thresholds t, [filter][level], such that every sum S = Σ w·x the filter can reach has
        /// S − t odd and |S − t| ≤ 31: sign(S − t) is the graph's sign (the graph's bias and
        /// threshold folded in) and sits a whole 1/64 step from both sign boundaries.
        public let thresholds: [Int]
        public let inputDelta, outputDelta: UInt64

        /// The side of an output map.
        public var outputSide: Int { (input.height - kernelSide) / stride + 1 }

        /// The same convolution at other scales (the plan picks them once the dense layer is planned).
        func scaled(input inputScale: UInt64, output outputScale: UInt64) -> SignConvolution {
            SignConvolution(input: input, kernelSide: kernelSide, stride: stride, filterCount: filterCount, levels: levels,
                            weights: weights, thresholds: thresholds, inputDelta: inputScale, outputDelta: outputScale)
        }
    }

    /// OR over `window` × `window` windows of ±`inputDelta` values: sign(Σ a + p² − 1).
    public struct OrPool: Sendable {
        public let input: TensorShape
        public let window: Int
        public let inputDelta, outputDelta: UInt64
    }

    /// The sum over `window` × `window` windows.
    public struct SumPool: Sendable {
        public let input: TensorShape
        public let window: Int
    }

    /// Σ_{j in chunk} w_kj·f_j (+ b_k's share) for each score k and chunk, at scale `delta`.
    public struct DensePartialSums: Sendable {
        /// Weights, score by score.
        public let weights: [Int]
        public let bias: [Int]
        public let chunks: [Range<Int>]
        public let delta: UInt64
        public var scoreCount: Int { bias.count }
    }

    /// The model's name.
    public let modelName: String
    /// The model graph: its integer form is what decryption reproduces.
    public let graph: ModelGraph
    /// The graph's exact integer reference.
    public let reference: ModelGraph.Reference<Int128>
    /// The TFHE parameter set.
    public let parameters: TFHEParameters
    /// Input ciphertexts per inference (the client's encoding of one record).
    public let inputCount: Int
    /// The key the client encrypts inputs under: the small key when the first step bootstraps
    /// (CNNs), the big key when the inputs feed the decrypted result directly (the perceptron).
    public let inputKey: LweKey
    /// The scale of the ±1 inputs.
    public let inputDelta: UInt64
    /// The steps, in the order the evaluator runs them; the last gives the result.
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

    /// What the server returns.
    public var answer: Answer {
        if case .scoreDigits = steps.last!.operation { return .scores }
        return .partialSums
    }
    /// The number of scores.
    public var scoreCount: Int { graph.outputCount }
    /// The name a server lists this plan under: the model's, with `@scores` when the answer
    /// holds only the scores' digits.
    public var servedName: String { answer == .scores ? "\(modelName)@\(Answer.scores.rawValue)" : modelName }
    /// Values per record, before the client's encoding.
    public var recordSize: Int { graph.inputShape.count }

    /// Bytes of one serialized result.
    public var resultBytes: Int {
        switch resultEncoding {
        case .roundedList: [LweCiphertext].roundedSerializedSize(count: outputCount, parameters: parameters)
        case .packed(let bits): PackedLweList.serializedSize(values: outputCount, bits: bits, parameters: parameters)
        }
    }

    /// How the result travels, in words.
    public var resultDescription: String {
        let values: String
        switch steps.last!.operation {
        case .scoreDigits(let digits): values = "\(outputCount) base-\(digits.base) digits of the scores"
        default: values = "\(outputCount) partial sums"
        }
        switch resultEncoding {
        case .roundedList: return "\(values) as LWE ciphertexts with 16-bit words"
        case .packed(let bits):
            return "\(values) packed into \(PackedLweList.glweCount(values: outputCount, parameters: parameters)) GLWE(s) "
                + "(k'=\(parameters.packing.glweDimension), N'=\(parameters.packing.polynomialSize)), \(bits)-bit words"
        }
    }

    /// Bootstraps per inference.
    public var bootstrapsPerInference: Int { steps.reduce(0) { $0 + $1.bootstraps } }
    /// Ciphertexts returned per inference (score by score, partial sum by partial sum or digit by digit).
    public var outputCount: Int {
        switch steps.last!.operation {
        case .densePartialSums(let dense): dense.scoreCount * dense.chunks.count
        case .scoreDigits(let digits): digits.outputCount
        default: preconditionFailure("plans end with the dense step")
        }
    }
    /// log2 of the probability that an inference decodes anything wrongly.
    public var failureLog2: Double {
        let total = steps.reduce(0.0) { $0 + exp2($1.failureLog2) }
        return total > 0 ? log2(total) : steps.map(\.failureLog2).min() ?? -.infinity
    }

    /// log2 of the largest probability that any one bootstrap or decoding goes wrong.
    public var worstFailureLog2: Double { steps.map(\.worstFailureLog2).max() ?? -.infinity }

    /// Every plan keeps each bootstrap's and decoding's failure probability below this (a plan
    /// that would not is refused); a plan that answers with partial sums keeps the whole
    /// inference's below it too.
    public static let failureTargetLog2 = -128.0

    /// Compiles a bundled or loaded model for parameter set `parameters` (tfhe-rs's 4-bit set by
    /// default), answering with `answer`.
    public init(model: ModelFile, parameters: TFHEParameters = .integer4Bit128, answer: Answer = .partialSums) throws(InferenceError) {
        let graph: ModelGraph
        do {
            graph = try model.graph()
        } catch {
            throw .unsupportedModel("\(model.name): \(error)")
        }
        try self.init(modelName: model.name, graph: graph, parameters: parameters, answer: answer)
    }

    /// Compiles `graph` for parameter set `parameters`: its layers, in order, become the steps;
    /// the first layer that `pbs` mode cannot run is named in the error.
    public init(modelName: String, graph: ModelGraph, parameters: TFHEParameters = .integer4Bit128,
                answer: Answer = .partialSums) throws(InferenceError) {
        do {
            reference = try graph.integerReference()
        } catch {
            throw .unsupportedModel("\(modelName): \(error)")
        }
        self.modelName = modelName
        self.graph = graph
        self.parameters = parameters
        let layers = try PBSLayers(graph: graph)
        inputCount = layers.encodedShape.count
        let noise = NoiseModel(parameters)
        let torus = Double.pow2(64)
        guard let convolution = layers.convolution else {
            guard answer == .partialSums else {
                throw .unsupportedModel("\(modelName): score digits are summed from bootstrapped features; this network has no "
                    + "convolution to bootstrap (its answer is its partial sums)")
            }
            // Binarize → dense (the perceptron): nothing to bootstrap; the inputs feed the result.
            inputKey = .big
            let dense = try DensePlan(weights: layers.dense.rows, bias: layers.dense.bias, featureVariance: noise.freshVariance,
                                      resultVariance: [LweCiphertext].roundingPhaseVariance(parameters))
            inputDelta = dense.featureDelta
            resultEncoding = .roundedList
            steps = [Step(name: "dense \(inputCount) → \(layers.dense.bias.count) (linear, \(dense.chunks.count) partial sum(s))",
                          bootstraps: 0, failureLog2: dense.failureLog2, worstFailureLog2: dense.worstFailureLog2,
                          operation: .densePartialSums(.init(weights: layers.dense.rows.flatMap { $0 }, bias: layers.dense.bias,
                                                             chunks: dense.chunks, delta: dense.delta)),
                          layers: 1..<2)]
            return
        }
        inputKey = .small
        // |S − t| ≤ 31 odd: every pre-activation is at least 1/64 away from 0 and 1/2.
        inputDelta = UInt64(1) << 58
        let c = convolution, levels = c.levels
        let convolutionShape = TensorShape(channels: c.filterCount * levels, height: c.outputSide, width: c.outputSide)
        let neurons = c.filterCount * c.outputSide * c.outputSide
        // Every threshold's reading has the same 1/64 margin (the shift moves the phase by whole steps).
        let area = c.input.channels * c.kernelSide * c.kernelSide
        let weightNorm = (0..<c.filterCount).map { f in
            c.weights[(f * area)..<((f + 1) * area)].reduce(0.0) { $0 + Double($1 * $1) }
        }.max()!.squareRoot()
        let convolutionFailure = noise.smallKeyInputFailureLog2(inputNorm: weightNorm, margin: 1.0 / 64)
        // OR of p² signs: Σ a_i + (p² − 1) ∈ [−1, 2p² − 1], so the scale is below 1/(2(2p² − 1)).
        let poolDelta: UInt64? = layers.pool.flatMap { pool in
            guard pool.kind == .max else { return nil }
            let window = pool.window * pool.window
            return UInt64(1) << (63 - (Int.bitWidth - (2 * window - 2).leadingZeroBitCount))  // ⌈log2(2p² − 1)⌉
        }
        // Bootstrap outputs, at the noise model's variance (which includes the FFT's error and
        // which NoiseTests checks against measurement on every set); a sum pool adds p² of them
        // into each feature. The L readings of one blind rotation go to different features and
        // their noises may be slightly correlated, which the noise model's multi-value factor
        // bounds. OR pooling bootstraps again, so its features are independent.
        let summed = layers.pool.map { $0.kind == .sum ? $0.window * $0.window : 1 } ?? 1
        let correlation = NoiseModel.multiValueVarianceFactor(readings: poolDelta != nil ? 1 : levels)
        let featureVariance = Double(summed) * correlation * noise.bootstrapOutputVariance
        let denseName = "dense \(layers.dense.rows[0].count) → \(layers.dense.bias.count)"
        let denseLayers = (graph.layers.count - 1)..<graph.layers.count
        let featureDelta: UInt64, denseStep: Step
        switch answer {
        case .partialSums:
            let (dense, bits) = try DensePlan.packed(weights: layers.dense.rows, bias: layers.dense.bias, featureMagnitude: summed,
                                                     featureVariance: featureVariance, noise: noise)
            featureDelta = dense.featureDelta
            resultEncoding = .packed(transportBits: bits)
            denseStep = Step(name: "\(denseName) (linear, \(dense.chunks.count) partial sums per class)", bootstraps: 0,
                             failureLog2: dense.failureLog2, worstFailureLog2: dense.worstFailureLog2,
                             operation: .densePartialSums(.init(weights: layers.dense.rows.flatMap { $0 }, bias: layers.dense.bias,
                                                                chunks: dense.chunks, delta: dense.delta)),
                             layers: denseLayers)
        case .scores:
            let digits = try ScoreDigits(weights: layers.dense.rows, bias: layers.dense.bias, featureMagnitude: summed,
                                         featureNormSquared: Double(summed) * correlation, noise: noise)
            featureDelta = digits.featureDelta
            resultEncoding = .packed(transportBits: digits.transportBits)
            denseStep = Step(name: "\(denseName) into base-\(digits.base) score digits (\(digits.rounds.count) rounds of merges)",
                             bootstraps: digits.bootstraps, failureLog2: digits.failureLog2,
                             worstFailureLog2: digits.worstFailureLog2, operation: .scoreDigits(digits),
                             layers: denseLayers)
        }
        let activationName = levels == 1 ? "sign" : "\(levels) signs (one bootstrap read at \(levels) coefficients)"
        let convolutionName = c.weights.allSatisfy { $0 == 1 || $0 == -1 } ? "binarized conv" : "integer conv"
        var planned = [Step(name: "\(convolutionName) \(c.filterCount)×\(c.kernelSide)×\(c.kernelSide) + \(activationName)",
                            bootstraps: neurons, failureLog2: convolutionFailure + log2(Double(neurons * levels)),
                            worstFailureLog2: convolutionFailure,
                            operation: .signConvolution(c.scaled(input: inputDelta, output: poolDelta ?? featureDelta)),
                            layers: 1..<3)]
        if let pool = layers.pool {
            let p = pool.window
            if let poolDelta {
                let features = layers.dense.rows[0].count
                let orFailure = noise.failureLog2(inputNorm: Double(p), margin: Double(poolDelta) / torus)
                planned.append(Step(name: "max pool \(p)×\(p) (OR of signs)", bootstraps: features,
                                    failureLog2: orFailure + log2(Double(features)), worstFailureLog2: orFailure,
                                    operation: .orPool(.init(input: convolutionShape, window: p, inputDelta: poolDelta,
                                                             outputDelta: featureDelta)),
                                    layers: 3..<4))
            } else {
                planned.append(Step(name: "sum pool \(p)×\(p) (linear)", bootstraps: 0, failureLog2: -.infinity, worstFailureLog2: -.infinity,
                                    operation: .sumPool(.init(input: convolutionShape, window: p)), layers: 3..<4))
            }
        }
        planned.append(denseStep)
        steps = planned
        if let weak = planned.first(where: { $0.worstFailureLog2 > Self.failureTargetLog2 }) {
            throw .unsupportedModel(String(format: "%@ on %@: %@ fails with p 2^%.1f per bootstrap, above 2^%.0f (choose another set)",
                                           modelName, parameters.name, weak.name, weak.worstFailureLog2, Self.failureTargetLog2))
        }
    }

    /// The integer reference's scores for a record: what decryption must reproduce exactly.
    public func referenceScores(_ record: ArraySlice<Float>) -> [Int] {
        // The plan's dense step checked every weight and bias below 2^40: the scores fit an Int.
        reference.outputs(record).map { Int(truncatingIfNeeded: $0) }
    }

    /// The class the scores decide (the graph's decision: a threshold or the first largest score).
    public func classify(scores: [Int]) -> Int {
        reference.decide(scores.map { Int128($0) })
    }

    /// The client's encoding of a record (Batchnorm + Binactive): the ±1 inputs to encrypt.
    public func binarize(_ record: ArraySlice<Float>) -> [Int] {
        reference.clientEncoding(record).map { Int(truncatingIfNeeded: $0) }
    }
}

/// The graph's layers in the shape `pbs` mode runs: binarize, then optionally one convolution
/// of small integer weights with its sign activation (one or more thresholds) and one pooling, then the dense layer that gives the
/// scores. Anything else is refused, naming the layer.
struct PBSLayers {
    struct Dense {
        let rows: [[Int]]
        let bias: [Int]
    }

    let encodedShape: TensorShape
    /// Its scales are the plan's to choose (0 here).
    var convolution: InferencePlan.SignConvolution?
    var pool: GraphLayer.Pool?
    var dense: Dense

    init(graph: ModelGraph) throws(InferenceError) {
        let shapes = (try? graph.shapes()) ?? []
        func refuse(_ index: Int, _ reason: String) -> InferenceError {
            .unsupportedModel("layer \(index) (\(graph.layers[index].kind)): \(reason)")
        }
        guard case .binarize = graph.layers[0] else {
            throw refuse(0, "pbs mode encrypts ±1 inputs (a binarize encoding); on fixed-point inputs, networks with polynomial "
                + "activations run on the RLWE backends, and ReLU or max pooling run on pbs when the network binarizes its input and "
                + "quantizes its activations to a few bits (a quantization-aware export, as examples/user-qat-cnn.onnx)")
        }
        encodedShape = shapes[0]
        var index = 1, convolution: InferencePlan.SignConvolution?, pool: GraphLayer.Pool?
        while index < graph.layers.count - 1 {
            switch graph.layers[index] {
            case .convolution(let c) where convolution == nil && index == 1:
                guard case .sign(let sign) = graph.layers[index + 1] else {
                    throw refuse(index + 1, "pbs mode follows a convolution only with a sign activation (the paper's "
                        + "magnitude scale multiplies by the client's encrypted K map: use bitwise mode or the model's sign variant)")
                }
                let input = shapes[index - 1]
                guard c.padding == 0 else {
                    throw refuse(index, "pbs mode runs convolutions without padding (a padded border changes the sums' parity)")
                }
                guard c.integerWeights.allSatisfy({ abs($0) <= 31 }), c.integerBias.allSatisfy({ $0.magnitude < 1 << 40 }),
                      sign.integerThresholds.allSatisfy({ abs($0) < 1 << 40 }) else {
                    throw refuse(index, "pbs mode runs convolutions with weights within ±31 (one sign bootstrap tells apart 63 values)")
                }
                let thresholds: [Int]
                do {
                    thresholds = try Self.signThresholds(weights: c.integerWeights, bias: c.integerBias, thresholds: sign.integerThresholds,
                                                         levels: sign.levels)
                } catch {
                    throw refuse(index, error.reason)
                }
                convolution = InferencePlan.SignConvolution(input: input, kernelSide: c.kernelSide, stride: c.stride, filterCount: c.outputChannels,
                                                            levels: sign.levels, weights: c.integerWeights.map { Int($0) },
                                                            thresholds: thresholds, inputDelta: 0, outputDelta: 0)
                index += 2
            case .pool(let p) where convolution != nil && pool == nil && index == 3:
                // A 1×1 window pools nothing (and an OR of one sign would need the whole torus).
                pool = p.window > 1 ? p : nil
                index += 1
            default:
                throw refuse(index, "pbs mode runs binarize → [integer convolution → sign → one pooling] → dense; "
                    + "this layer does not fit there (ReLU and polynomial activations, the paper's magnitude scale: use bitwise "
                    + "mode or the RLWE backends)")
            }
        }
        let last = graph.layers.count - 1
        guard index == last, case .dense(let d) = graph.layers[last] else {
            throw refuse(min(index, last), "pbs mode ends with the dense layer that gives the scores")
        }
        // In doubles: a hostile model's weights must give an error here, not an overflow trap.
        guard d.integerWeights.allSatisfy({ $0.magnitude < 1 << 40 }), d.integerBias.allSatisfy({ $0.magnitude < 1 << 40 }) else {
            throw refuse(last, "the dense layer's weights are too large to decode exactly")
        }
        let features = shapes[last - 1].count
        // The partial-sum search is quadratic in the features; these networks have a few thousand.
        guard features <= 1 << 16, features * d.outputCount <= 1 << 22 else {
            throw refuse(last, "\(features) features × \(d.outputCount) outputs is beyond what pbs mode plans (2^16 features, 2^22 weights)")
        }
        self.convolution = convolution
        self.pool = pool
        dense = Dense(rows: (0..<d.outputCount).map { k in d.integerWeights[(k * features)..<((k + 1) * features)].map { Int($0) } },
                      bias: d.integerBias.map { Int($0) })
    }
}

extension PBSLayers {
    struct ThresholdError: Error { let reason: String }

    /// The thresholds the evaluator reads sign(S − t) at, for sums S = Σ w·x of ±1 inputs x:
    /// the graph's sign is S + b > T. Every S a filter reaches has the parity of Σ w and lies in
    /// [−Σ|w|, Σ|w|]; t = T − b, moved up by one where S − t would be even (S > T ⟺ S ≥ T + 2
    /// there), then clamped to one past either end (a threshold beyond the sums gives the same
    /// sign for all of them), so S − t is odd. Refused when some |S − t| exceeds 31, the most one
    /// sign bootstrap reads with a 1/64 margin.
    static func signThresholds(weights: [Int64], bias: [Int128], thresholds: [Int], levels: Int) throws(ThresholdError) -> [Int] {
        let filters = bias.count, area = weights.count / filters
        var effective: [Int] = []
        for f in 0..<filters {
            let filter = weights[(f * area)..<((f + 1) * area)]
            let reach = Int(filter.reduce(0) { $0 + abs($1) }), parity = Int(filter.reduce(0, +) & 1)
            for k in 0..<levels {
                var t = thresholds[f * levels + k] - Int(bias[f])
                if (t - parity) & 1 == 0 { t += 1 }
                t = min(max(t, -reach - 1), reach + 1)
                guard reach + abs(t) <= 31 else {
                    throw ThresholdError(reason: "filter \(f): its sums reach ±\(reach) and threshold \(k) sits at \(t), so a sum "
                        + "can be \(reach + abs(t)) away from it; one sign bootstrap reads at most 31 (smaller or fewer weights, "
                        + "or thresholds nearer 0)")
                }
                effective.append(t)
            }
        }
        return effective
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
    /// One partial sum's.
    let worstFailureLog2: Double

    /// `resultVariance` is the noise the result picks up on its way to the client (the rounding
    /// of `serializedRounded`), added to every partial sum. The search starts at `fewestChunks`:
    /// a caller that knows fewer cannot decode passes it.
    init(weights: [[Int]], bias: [Int], featureMagnitude: Int = 1, featureVariance: Double,
         resultVariance: Double = 0, fewestChunks: Int = 1) throws(InferenceError) {
        let features = weights[0].count
        // Values in [−largest, largest] at scale Δ stay inside (−1/2, 1/2) with half a step to
        // spare; the worst decoding of one partial sum, and Δ.
        func decoding(largest: Double, normSquared: Double) -> (worst: Double, delta: UInt64) {
            let delta = UInt64(Double.pow2(64) / (2 * largest + 2))
            let margin = Double(delta) / 2 / Double.pow2(64)
            let sigma = (featureVariance * normSquared + resultVariance).squareRoot()
            return (NoiseModel.log2Erfc(margin / (sigma * 2.0.squareRoot())), delta)
        }
        // Every split has a partial sum holding the largest weight: when that term alone does not
        // decode, no split does (and the search need not try thousands).
        let heaviest = weights.lazy.flatMap { $0 }.map { abs(Double($0)) }.max() ?? 0
        guard heaviest * Double(featureMagnitude) < 0x1p40,
              decoding(largest: heaviest * Double(featureMagnitude), normSquared: heaviest * heaviest).worst
                + log2(Double(weights.count)) <= InferencePlan.failureTargetLog2 else {
            throw .unsupportedModel("the dense layer's weights are too large to decode exactly")
        }
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
            let (worst, delta) = decoding(largest: largest, normSquared: normSquared)
            let failure = worst + log2(Double(weights.count * count))
            if failure <= InferencePlan.failureTargetLog2 {
                self.delta = delta
                chunks = ranges
                failureLog2 = failure
                worstFailureLog2 = worst
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
