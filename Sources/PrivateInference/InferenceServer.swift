import InferenceBackend
import ObscuraMath
import NeuralNet
import TFHE

/// The server side of `pbs` mode: runs an ``InferencePlan`` on a client's ciphertexts with
/// nothing but its evaluation key (there is no way to hand it a secret key).
public struct PBSInferenceEvaluator: InferenceBackendServer {
    /// The plan.
    public let plan: InferencePlan
    /// The client's evaluation key (nil for a plan without bootstraps).
    public let key: EvaluationKey?

    /// An evaluator for `plan` with a client's evaluation key of the plan's parameter set; a plan
    /// without bootstraps needs none.
    public init(plan: InferencePlan, key: EvaluationKey?) throws(InferenceError) {
        if let key, key.parameters != plan.parameters {
            throw .parameterMismatch(expected: plan.parameters.name, found: key.parameters.name)
        }
        if key == nil, plan.bootstrapsPerInference > 0 {
            throw .missingEvaluationKey(bootstraps: plan.bootstrapsPerInference)
        }
        self.plan = plan
        self.key = key
    }

    /// A result as it goes to the client, in the plan's ``InferencePlan/ResultEncoding``: the
    /// partial sums packed by the evaluation key's packing key switch, or, for plans without a
    /// key, listed with 16-bit words. The plan's failure probability includes either's noise.
    public func serializeResult(_ outputs: [LweCiphertext]) -> [UInt8] {
        switch plan.resultEncoding {
        case .roundedList: outputs.serializedRounded(parameters: plan.parameters)
        case .packed(let bits): key!.pack(outputs).serialized(transportBits: bits)
        }
    }

    /// Progress of one layer: its name, outputs done, outputs in total.
    public typealias Progress = EvaluationProgress

    /// Bootstraps per inference: the job runner's progress counts them.
    public var progressUnits: Int { plan.bootstrapsPerInference }

    /// The server's whole part of one inference, in bytes: the client's serialized seeded inputs
    /// (``InferenceClient/encryptForUpload(_:)``) in, the serialized result
    /// (``serializeResult(_:)``) out.
    public func answer(upload: [UInt8], progress: @escaping Progress = { _, _, _ in }) throws -> [UInt8] {
        let inputs = try [SeededLweCiphertext](deserializing: upload, expecting: plan.parameters).map { $0.expanded() }
        return serializeResult(try evaluate(inputs, progress: progress))
    }

    /// Runs the plan's steps, in order, on encrypted ±1 inputs; returns the partial scores,
    /// score by score and chunk by chunk. Independent neurons run on all cores.
    public func evaluate(_ inputs: [LweCiphertext], progress: Progress = { _, _, _ in }) throws(InferenceError) -> [LweCiphertext] {
        guard inputs.count == plan.inputCount else {
            throw .sizeMismatch(what: "input ciphertexts", expected: plan.inputCount, found: inputs.count)
        }
        let dimension = plan.inputKey.dimension(plan.parameters)
        if let bad = inputs.first(where: { $0.dimension != dimension }) {
            throw .sizeMismatch(what: "input ciphertext dimension", expected: dimension, found: bad.dimension)
        }
        return plan.steps.reduce(inputs) { values, step in run(step, values, progress: progress) }
    }

    /// One step on the previous step's outputs (or the inputs).
    func run(_ step: InferencePlan.Step, _ values: [LweCiphertext], progress: Progress) -> [LweCiphertext] {
        switch step.operation {
        case .signConvolution(let convolution): signConvolution(values, convolution, progress: progress)
        case .orPool(let pool): orPool(values, pool, progress: progress)
        case .sumPool(let pool): sumPool(values, pool)
        case .densePartialSums(let dense): partialSums(values, dense)
        case .scoreDigits(let digits): scoreDigits(values, digits, progress: progress)
        }
    }

    /// sign(Σ W·x − t_k) for every filter, threshold and position: a free linear sum, then
    /// one bootstrap read at one coefficient per threshold. Returns the channel maps in the
    /// graph's order (channel f·L + k, row, column).
    func signConvolution(_ inputs: [LweCiphertext], _ c: InferencePlan.SignConvolution, progress: Progress) -> [LweCiphertext] {
        let side = c.outputSide, area = side * side, k = c.kernelSide, inSide = c.input.height, channels = c.input.channels
        let table = LookupTable(polynomialSize: plan.parameters.polynomialSize, constant: c.outputDelta)
        let dimension = inputs[0].dimension, levels = c.levels, inputDelta = c.inputDelta
        // One step of the ±1 sum, 1/64 of the torus, is 2N/64 coefficients of the accumulator.
        let stepCoefficients = plan.parameters.polynomialSize / 32
        let neurons = bootstrapLayer(count: c.filterCount * area, table: table, name: "conv+sign", progress: progress) { index in
            let f = index / area, i = (index % area) / side, j = index % side
            // Shifted by the largest threshold; reading coefficient (t_max − t_k)·N/32 moves the
            // phase back up by t_max − t_k steps of 1/64, so it reads sign(S − t_k).
            let thresholds = c.thresholds[(f * levels)..<((f + 1) * levels)], largest = thresholds.max()!
            var sum = LweCiphertext.trivial(dimension: dimension, body: 0 &- UInt64(bitPattern: Int64(largest)) &* inputDelta)
            for channel in 0..<channels {
                for u in 0..<k {
                    for v in 0..<k {
                        let input = inputs[(channel * inSide + i * c.stride + u) * inSide + j * c.stride + v]
                        switch c.weights[((f * channels + channel) * k + u) * k + v] {
                        case 0: continue
                        case 1: sum.add(input)
                        case -1: sum.subtract(input)
                        case let w: sum.add(input, times: Int64(w))
                        }
                    }
                }
            }
            return (sum, thresholds.map { (largest - $0) * stepCoefficients })
        }
        return (0..<(c.filterCount * levels * area)).map { q in
            let channel = q / area
            return neurons[(channel / levels) * area + q % area][channel % levels]
        }
    }

    /// OR over each pooling window of ±1 values: sign(Σ a + p² − 1), one bootstrap.
    func orPool(_ activations: [LweCiphertext], _ pool: InferencePlan.OrPool, progress: Progress) -> [LweCiphertext] {
        let p = pool.window, count = pool.input.channels * (pool.input.height / p) * (pool.input.width / p)
        let table = LookupTable(polynomialSize: plan.parameters.polynomialSize, constant: pool.outputDelta)
        let offset = UInt64(p * p - 1) &* pool.inputDelta, dimension = activations[0].dimension
        return bootstrapLayer(count: count, table: table, name: "max pool", progress: progress) { q in
            var sum = LweCiphertext.trivial(dimension: dimension, body: offset)
            for position in pool.input.poolWindow(q, side: p) { sum.add(activations[position]) }
            return (sum, [0])
        }.map { $0[0] }
    }

    /// The sum over each pooling window: linear, no bootstrap.
    func sumPool(_ activations: [LweCiphertext], _ pool: InferencePlan.SumPool) -> [LweCiphertext] {
        let p = pool.window, count = pool.input.channels * (pool.input.height / p) * (pool.input.width / p)
        let dimension = activations[0].dimension
        return (0..<count).map { q in
            pool.input.poolWindow(q, side: p).reduce(into: LweCiphertext.trivial(dimension: dimension, body: 0)) { $0.add(activations[$1]) }
        }
    }

    /// The dense layer's partial sums Σ_{j in chunk} w_kj·f_j (+ b_k's share), on all cores.
    func partialSums(_ features: [LweCiphertext], _ dense: InferencePlan.DensePartialSums) -> [LweCiphertext] {
        let count = features.count, chunks = dense.chunks, delta = dense.delta, weights = dense.weights, bias = dense.bias
        let dimension = features[0].dimension
        return ParallelWork.map(dense.scoreCount * chunks.count) { index in
            let k = index / chunks.count, g = index % chunks.count
            let share = DensePlan.biasShare(bias[k], chunk: g, of: chunks.count)
            var sum = LweCiphertext.trivial(dimension: dimension, body: UInt64(bitPattern: Int64(share)) &* delta)
            for j in chunks[g] where weights[k * count + j] != 0 { sum.add(features[j], times: Int64(weights[k * count + j])) }
            return sum
        }
    }

    /// The scores' digits: the plan's merges, round by round, each round's bootstraps on all
    /// cores; returns every score's digits, lowest first.
    func scoreDigits(_ features: [LweCiphertext], _ plan: ScoreDigits, progress: Progress) -> [LweCiphertext] {
        let parameters = self.plan.parameters, base = plan.base, m = plan.featureMagnitude
        let digit = LookupTable(parameters: parameters) { $0 % base }, carry = LookupTable(parameters: parameters) { $0 / base }
        let dimension = features[0].dimension, featureDelta = plan.featureDelta
        var blocks = [LweCiphertext?](repeating: nil, count: plan.blockCount)
        for (r, round) in plan.rounds.enumerated() {
            let written = blocks
            let sums: [LweCiphertext] = ParallelWork.map(round.count) { i in
                switch round[i].input {
                case .features(_, let terms):
                    // Σ (w·f + |w|·m)/2 at Δ: the features come at Δ/2.
                    let reach = terms.reduce(0) { $0 + abs($1.weight) } * m
                    var sum = LweCiphertext.trivial(dimension: dimension, body: UInt64(reach) &* featureDelta)
                    for term in terms { sum.add(features[term.feature], times: Int64(term.weight)) }
                    return sum
                case .blocks(let inputs):
                    return inputs.dropFirst().reduce(into: written[inputs[0]]!) { $0.add(written[$1]!) }
                }
            }
            let name = "score digits, round \(r + 1)/\(plan.rounds.count)"
            for (i, output) in bootstrapLayer(count: round.count, table: digit, name: name, progress: progress, { (sums[$0], [0]) }).enumerated() {
                blocks[round[i].digit] = output[0]
            }
            let carrying = round.indices.filter { round[$0].carry != nil }
            for (i, output) in bootstrapLayer(count: carrying.count, table: carry, name: name + " carries", progress: progress,
                                              { (sums[carrying[$0]], [0]) }).enumerated() {
                blocks[round[carrying[i]].carry!] = output[0]
            }
        }
        return plan.digits.flatMap { $0.map { blocks[$0]! } }
    }

    /// Bootstraps every neuron of a layer through `table` on all cores, in blocks, reporting
    /// progress: `neuron(i)` gives neuron i's linear sum and the coefficients to read its
    /// bootstrap at. Only bootstrapping layers call it, and their plans come with a key
    /// (checked at init).
    func bootstrapLayer(count: Int, table: LookupTable, name: String, progress: Progress,
                        _ neuron: @Sendable (Int) -> (LweCiphertext, coefficients: [Int])) -> [[LweCiphertext]] {
        let block = 4 * Evaluator.batchSize * ProcessInfoCores.active
        var outputs: [[LweCiphertext]] = []
        outputs.reserveCapacity(count)
        progress(name, 0, count)
        for start in stride(from: 0, to: count, by: block) {
            let size = min(block, count - start)
            outputs += key!.bootstrapInParallel(count: size, table: table) { neuron(start + $0) }
            progress(name, outputs.count, count)
        }
        return outputs
    }
}
