import InferenceBackend
import Dispatch
import Foundation
import NeuralNet
import ObscuraMath
import RLWE

/// The server half: runs a ``SIMDPlan``'s steps on the client's ciphertexts with the client's
/// evaluation keys (relinearization, and rotations in latency mode), one plaintext prime per
/// call. It never holds a secret key. Each step's inputs are released as soon as its outputs
/// exist, so memory holds two layers of ciphertexts, not the whole trace.
public struct SIMDEvaluator: InferenceBackendServer {
    public let plan: SIMDPlan
    /// One evaluator per plaintext prime, each with its context and key.
    let evaluators: [Evaluator]
    /// Latency mode: each step's plaintexts, encoded once per prime ([prime][step]).
    let prepared: [[PreparedStep]]

    /// A latency step's weights as plaintexts of one prime (a convolution's by client
    /// ciphertext, shared patches' by j·R + δ, a dense layer's by diagonal; all-zero ones left
    /// out), and its bias.
    enum PreparedStep: Sendable {
        case none
        case plaintexts(weights: [Int: Plaintext], bias: Bias)
    }

    /// A latency step's bias: residues mod t (BFV), or reals encoded at the scale and level the
    /// step's output has when it is added (CKKS).
    enum Bias: Sendable {
        case exact(BFVPlaintext)
        case approximate([Double], CKKSEncoder)

        func added(to ct: Ciphertext, evaluator: Evaluator) throws(RlweError) -> Ciphertext {
            switch self {
            case .exact(let b): try evaluator.add(ct, b)
            case .approximate(let values, let encoder): try evaluator.add(ct, encoder.encode(values, scale: ct.scale, level: ct.level))
            }
        }
    }

    /// Why an evaluation cannot run.
    public enum EvaluationError: Error, Equatable, Sendable, CustomStringConvertible {
        case wrongKeyCount(expected: Int, got: Int)
        case wrongInputCount(prime: Int, expected: Int, got: Int)
        case noSuchPrime(index: Int, primes: Int)
        case rlwe(RlweError)

        public var description: String {
            switch self {
            case .wrongKeyCount(let expected, let got): "\(got) evaluation keys for \(expected) plaintext primes"
            case .wrongInputCount(let prime, let expected, let got):
                "plaintext prime \(prime): \(got) input ciphertexts, the network reads \(expected)"
            case .noSuchPrime(let index, let primes): "plaintext prime \(index): the plan has \(primes)"
            case .rlwe(let error): "\(error)"
            }
        }
    }

    /// An evaluator for `plan` from the client's evaluation keys (one per plaintext prime, in
    /// the plan's order, each for its context).
    public init(plan: SIMDPlan, keys: [EvaluationKey]) throws(EvaluationError) {
        guard keys.count == plan.parameters.count else { throw .wrongKeyCount(expected: plan.parameters.count, got: keys.count) }
        var evaluators: [Evaluator] = []
        for (key, parameters) in zip(keys, plan.parameters) {
            guard key.context.parameters == parameters else { throw .rlwe(.contextMismatch) }
            do { evaluators.append(try Evaluator(context: key.context, key: key)) } catch { throw .rlwe(error) }
        }
        self.plan = plan
        self.evaluators = evaluators
        do {
            prepared = try evaluators.map { evaluator throws(RlweError) in
                // Only latency mode has plaintexts. CKKS encodes each step's weights at the level
                // the step runs at, with the scale of the prime its rescale drops.
                guard plan.mode == .latency else { return plan.steps.map { _ in PreparedStep.none } }
                let encoder = try SlotEncoder(evaluator.context)
                var level = evaluator.context.parameters.ciphertextModuli.count
                return try plan.steps.map { step throws(RlweError) in
                    defer { level -= step.rescales }
                    return try Self.prepare(step, encoder: encoder, level: level)
                }
            }
        } catch {
            throw .rlwe(error)
        }
    }

    /// An evaluator from the client's ``SIMDClient/evaluationKeyBytes()``, read as untrusted:
    /// one key per plaintext prime, each with the relinearization key and every rotation the
    /// plan needs (a key without them is refused here, not in the middle of a job).
    public init(plan: SIMDPlan, keyBytes: [UInt8]) throws(EvaluationError) {
        var keys: [EvaluationKey] = []
        do throws(RlweError) {
            let objects = try SIMDWire.decode(keyBytes, kind: .evaluationKeys, plan: plan, objectsPerPrime: 1)
            for (context, object) in zip(plan.contexts, objects) {
                let key = try EvaluationKey(deserializing: object[0], context: context)
                guard key.relinearization != nil else { throw RlweError.missingRelinearizationKey }
                for step in plan.rotationSteps {
                    let g = context.galoisElement(rotatingBy: step)
                    guard g == 1 || key.galois[g] != nil else { throw RlweError.missingGaloisKey(element: g) }
                }
                keys.append(key)
            }
        } catch {
            throw .rlwe(error)
        }
        try self.init(plan: plan, keys: keys)
    }

    /// Checks untrusted upload bytes for `plan` without evaluating them: the framing, and every
    /// seeded ciphertext's header, size and residues (what a server does before it queues a job).
    public static func check(upload: [UInt8], plan: SIMDPlan) throws(EvaluationError) {
        do throws(RlweError) {
            let objects = try SIMDWire.decode(upload, kind: .inputs, plan: plan, objectsPerPrime: plan.inputCiphertexts)
            for (context, group) in zip(plan.contexts, objects) {
                for bytes in group { _ = try SeededCiphertext(deserializing: bytes, context: context) }
            }
        } catch {
            throw .rlwe(error)
        }
    }

    /// What one evaluation of uploaded bytes gave: the result's bytes and each step's seconds
    /// (summed over the primes).
    public struct Evaluation: Sendable {
        public let bytes: [UInt8]
        public let stepSeconds: [Double]
    }

    /// Evaluates the client's ``SIMDClient/encryptForUpload(_:)`` bytes (read as untrusted)
    /// and returns the result as bytes for ``SIMDClient/decrypt(download:imageCount:)``.
    /// Throughput mode runs the primes one after another, each on all cores; latency mode runs
    /// them side by side. `progress(done, total)` counts steps over all primes.
    public func evaluate(upload: [UInt8], progress: @escaping @Sendable (_ done: Int, _ total: Int) -> Void = { _, _ in })
        throws(EvaluationError) -> Evaluation {
        let objects: [[[UInt8]]]
        do throws(RlweError) {
            objects = try SIMDWire.decode(upload, kind: .inputs, plan: plan, objectsPerPrime: plan.inputCiphertexts)
        } catch {
            throw .rlwe(error)
        }
        let total = plan.steps.count * evaluators.count
        let counter = StepCounter()
        func run(_ prime: Int) throws(EvaluationError) -> ([[UInt8]], [Double]) {
            let context = evaluators[prime].context
            let inputs: [Ciphertext]
            do throws(RlweError) {
                inputs = try objects[prime].map { bytes throws(RlweError) -> Ciphertext in
                    try SeededCiphertext(deserializing: bytes, context: context).expanded()
                }
            } catch {
                throw .rlwe(error)
            }
            var seconds = [Double](repeating: 0, count: plan.steps.count)
            let outputs: [Ciphertext] = try evaluate(prime: prime, inputs: inputs) { step, s in
                seconds[step] += s
                progress(counter.increment(), total)
            }
            return (outputs.map { $0.serialized() }, seconds)
        }
        let work = { (prime: Int) in Result(catching: { () throws(EvaluationError) in try run(prime) }) }
        let results = plan.mode == .latency ? ParallelWork.map(evaluators.count, work) : evaluators.indices.map(work)
        var outputs: [[[UInt8]]] = [], stepSeconds = [Double](repeating: 0, count: plan.steps.count)
        for result in results {
            let (bytes, seconds) = try result.get()
            outputs.append(bytes)
            for (step, s) in seconds.enumerated() { stepSeconds[step] += s }
        }
        return Evaluation(bytes: SIMDWire.encode(.outputs, plan: plan, outputs), stepSeconds: stepSeconds)
    }

    /// Encodes a latency step's weights and bias: every slot vector the period-P pattern repeated
    /// (BFV: both rows of N/2 slots; CKKS: its one row).
    static func prepare(_ step: SIMDPlan.Step, encoder: SlotEncoder, level: Int) throws(RlweError) -> PreparedStep {
        let context = encoder.context, n = context.polynomialSize, slotCount = encoder.slotCount
        // Each plaintext's pattern over a period that divides a row, and the bias's.
        let patterns: [Int: [Int64]], bias: [Int128]
        switch step.kind {
        case .linear, .polynomial:
            return .none
        case .packedConvolution(let c):
            // Client ciphertext j's weights: each block's offset's, in its block's slots.
            var vectors: [Int: [Int64]] = [:]
            for j in 0..<c.ciphertextCount {
                let w = (0..<(n / 2)).map { s in c.offset(ciphertext: j, slot: s, polynomialSize: n).map { c.weights[$0][s % c.period] } ?? 0 }
                if w.contains(where: { $0 != 0 }) { vectors[j] = w }
            }
            (patterns, bias) = (vectors, c.bias)
        case .sharedPatchConvolution(let c):
            // D_(j,δ) keyed j·R + δ, as the evaluation reads them.
            var vectors: [Int: [Int64]] = [:]
            for j in 0..<c.ciphertextCount {
                for delta in 0..<c.blocksPerRow {
                    if let d = c.diagonal(ciphertext: j, delta) { vectors[j * c.blocksPerRow + delta] = d }
                }
            }
            (patterns, bias) = (vectors, c.bias)
        case .matrixVector(let m):
            (patterns, bias) = (m.diagonals, m.bias)
        }
        func repeated<T>(_ pattern: [T]) -> [T] { (0..<slotCount).map { pattern[$0 % pattern.count] } }
        let weights = patterns.mapValues(repeated)
        let biasSlots = repeated(bias)
        func encoded(_ encode: ([Int64]) throws(RlweError) -> Plaintext) throws(RlweError) -> [Int: Plaintext] {
            var plaintexts: [Int: Plaintext] = [:]
            for (key, w) in weights { plaintexts[key] = try encode(w) }
            return plaintexts
        }
        switch encoder {
        case .bfv(let encoder):
            let t = Int128(encoder.plaintextModulus)
            return .plaintexts(weights: try encoded { w throws(RlweError) in try encoder.prepare(w) },
                               bias: .exact(try encoder.encode(biasSlots.map { Int64($0 % t) })))
        case .ckks(let encoder):
            let q = Double(context.ciphertextTables[level - 1].modulus.value)
            return .plaintexts(weights: try encoded { w throws(RlweError) in try encoder.encode(w.map(Double.init), scale: q, level: level) },
                               bias: .approximate(biasSlots.map(Double.init), encoder))
        }
    }

    /// Runs the network on plaintext prime `prime`'s ciphertexts (``SIMDPlan/inputCiphertexts``
    /// of them) and returns its output ciphertexts (one per score in throughput mode, one in all). The primes are independent: a caller streams them
    /// one at a time, so only one prime's ciphertexts are in memory. `progress(step, seconds)`
    /// after each step, with the step's wall-clock time.
    public func evaluate(prime: Int, inputs: [Ciphertext],
                         progress: (_ step: Int, _ seconds: Double) -> Void = { _, _ in }) throws(EvaluationError) -> [Ciphertext] {
        guard evaluators.indices.contains(prime) else { throw .noSuchPrime(index: prime, primes: evaluators.count) }
        guard inputs.count == plan.inputCiphertexts else {
            throw .wrongInputCount(prime: prime, expected: plan.inputCiphertexts, got: inputs.count)
        }
        var values = inputs
        for (index, step) in plan.steps.enumerated() {
            let start = DispatchTime.now().uptimeNanoseconds
            do {
                values = try Self.run(step, prepared: prepared[prime][index], on: values, evaluator: evaluators[prime])
            } catch {
                throw .rlwe(error)
            }
            progress(index, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return values
    }

    /// One step (throughput mode: on all cores, outputs and elements are independent).
    static func run(_ step: SIMDPlan.Step, prepared: PreparedStep, on values: [Ciphertext],
                    evaluator: Evaluator) throws(RlweError) -> [Ciphertext] {
        let plaintextModulus = evaluator.context.plaintextModulus
        do {
            if case .plaintexts(let weights, let bias) = prepared {
                // Σ ct ⊙ w, the blocks summed (CKKS: then rescaled by the weights' prime), the bias.
                let products: Ciphertext?, folds: [Int]
                switch step.kind {
                case .packedConvolution(let c):
                    var sum: Ciphertext?
                    for (j, ct) in values.enumerated() {
                        guard let w = weights[j] else { continue }
                        sum = try accumulate(sum, evaluator.multiply(ct, w), evaluator: evaluator)
                    }
                    (products, folds) = (sum, c.folds)
                case .sharedPatchConvolution(let c):
                    (products, folds) = (try babyGiantSum(values, unit: c.positionPeriod, babyStep: c.babyStep, giantSteps: c.giantSteps,
                                                          stride: c.blocksPerRow, diagonals: weights, evaluator: evaluator), [])
                case .matrixVector(let m):
                    (products, folds) = (try babyGiantSum([values[0]], unit: 1, babyStep: m.babyStep, giantSteps: m.giantSteps,
                                                          stride: 0, diagonals: weights, evaluator: evaluator), m.folds)
                case .linear, .polynomial:
                    throw RlweError.invalidParameters("plaintexts for a step that has none")
                }
                guard var sum = products else {
                    let zero = try zero(like: values[0], evaluator: evaluator)
                    return [try bias.added(to: evaluator.dropToLevel(zero, values[0].level - step.rescales), evaluator: evaluator)]
                }
                // The block sums before the rescale: their key switches' errors shrink with it.
                for fold in folds { sum = try evaluator.add(sum, evaluator.rotate(sum, by: fold)) }
                return [try bias.added(to: rescaled(sum, primes: step.rescales, evaluator: evaluator), evaluator: evaluator)]
            }
            switch step.kind {
            case .linear(let layer):
                let rows = try SparseIntegerRows(rowStart: layer.rowStart, columns: layer.inputs, weights: layer.weights)
                let sums = try evaluator.linearCombinations(values, rows: rows)
                return try ParallelWork.map(layer.outputCount) { o in
                    guard evaluator.context.isBFV else {
                        let sum = layer.bias[o] == 0 ? sums[o] : try evaluator.add(sums[o], approximately: Double(layer.bias[o]))
                        return step.relinearizes ? try relinearizeRescale(sum, primes: step.rescales, evaluator: evaluator) : sum
                    }
                    guard layer.bias[o] != 0 else { return sums[o] }
                    return try evaluator.add(sums[o], constant: Int64(layer.bias[o] % Int128(plaintextModulus)))
                }
            case .polynomial(let polynomial):
                return try ParallelWork.map(values.count) { i in
                    guard evaluator.context.isBFV else {
                        return try evaluateApproximately(polynomial, at: values[i], step: step, evaluator: evaluator)
                    }
                    return try evaluate(polynomial, at: values[i], evaluator: evaluator, plaintextModulus: plaintextModulus)
                }
            case .packedConvolution, .sharedPatchConvolution, .matrixVector:
                throw RlweError.invalidParameters("a latency step without its plaintexts")
            }
        } catch let error as RlweError {
            throw error
        } catch {
            throw .invalidParameters("\(error)")
        }
    }

    /// sum + x, or x when there is no sum yet.
    static func accumulate(_ sum: Ciphertext?, _ x: Ciphertext, evaluator: Evaluator) throws(RlweError) -> Ciphertext {
        guard let sum else { return x }
        return try evaluator.add(sum, x)
    }

    /// A ciphertext of zeros shaped like `x` (a layer whose weights are all zero).
    static func zero(like x: Ciphertext, evaluator: Evaluator) throws(RlweError) -> Ciphertext {
        try evaluator.multiply(x, byInteger: 0)
    }

    /// Σ_g rot(Σ_j Σ_(h<b) d_(j·stride + g·b + h) ⊙ rot(v_j, h·u), g·b·u): a dense layer's
    /// Σ_i d_i ⊙ rot(v, i) (one v, u = 1; the caller sums the blocks of m'), or shared patches'
    /// Σ_j Σ_δ D_(j,δ) ⊙ rot(ct_j, δ·Q') (u = Q', stride R), each d already rotated by −g·b·u.
    /// Baby steps share one decomposition per v_j. Nil when every d is zero.
    static func babyGiantSum(_ inputs: [Ciphertext], unit: Int, babyStep: Int, giantSteps: Int, stride: Int,
                             diagonals: [Int: Plaintext], evaluator: Evaluator) throws(RlweError) -> Ciphertext? {
        let baby = try inputs.map { v throws(RlweError) -> [Ciphertext] in try evaluator.rotations(of: v, by: (0..<babyStep).map { $0 * unit }) }
        // The giant steps are independent: on all cores (a prime's share when primes run side by side).
        let giants: [Ciphertext?]
        do {
            giants = try ParallelWork.map(giantSteps) { g -> Ciphertext? in
                var inner: Ciphertext?
                for (j, rotated) in baby.enumerated() {
                    for h in 0..<babyStep {
                        guard let d = diagonals[j * stride + g * babyStep + h] else { continue }
                        inner = try accumulate(inner, evaluator.multiply(rotated[h], d), evaluator: evaluator)
                    }
                }
                guard let inner else { return nil }
                return g > 0 ? try evaluator.rotate(inner, by: g * babyStep * unit) : inner
            }
        } catch let error as RlweError {
            throw error
        } catch {
            throw .invalidParameters("\(error)")
        }
        var total: Ciphertext?
        for case let inner? in giants { total = try accumulate(total, inner, evaluator: evaluator) }
        return total
    }

    /// CKKS: ct divided by its last `primes` primes (BFV: none, ct itself).
    static func rescaled(_ ct: Ciphertext, primes: Int, evaluator: Evaluator) throws(RlweError) -> Ciphertext {
        var out = ct
        for _ in 0..<primes { out = try evaluator.rescale(out) }
        return out
    }

    /// CKKS, degree 1 or 2 (the plan checks): a_2·(x·(x + a_1/a_2)) + a_0, one product;
    /// a_2 (or a_1 alone) goes into the scale. The product keeps its three components when the
    /// plan defers its relinearization to the next linear layer.
    static func evaluateApproximately(_ p: PolynomialIntegerNetwork.Polynomial, at x: Ciphertext, step: SIMDPlan.Step,
                                      evaluator: Evaluator) throws(RlweError) -> Ciphertext {
        let a = p.coefficients.map { Double($0) }
        var y: Ciphertext
        if p.degree == 1 {
            y = try evaluator.multiply(x, byRescaling: a[1])
        } else {
            let u = a[1] == 0 ? x : try evaluator.add(x, approximately: a[1] / a[2])
            let product = try evaluator.multiply(x, u)
            y = try evaluator.multiply(step.relinearizes ? relinearizeRescale(product, primes: step.rescales, evaluator: evaluator) : product,
                                       byRescaling: a[2])
        }
        return a[0] == 0 ? y : try evaluator.add(y, approximately: a[0])
    }

    /// CKKS: relinearized and divided by `primes` primes (the first division fused with the key
    /// switch's division by P).
    static func relinearizeRescale(_ ct: Ciphertext, primes: Int, evaluator: Evaluator) throws(RlweError) -> Ciphertext {
        guard primes > 0 else { return try evaluator.relinearize(ct) }
        return try rescaled(evaluator.relinearizeRescale(ct), primes: primes - 1, evaluator: evaluator)
    }

    /// Σ a_k·x^k: the powers by successive products (each relinearized), then one combination.
    static func evaluate(_ p: PolynomialIntegerNetwork.Polynomial, at x: Ciphertext, evaluator: Evaluator,
                         plaintextModulus t: UInt64) throws(RlweError) -> Ciphertext {
        var powers = [x]
        for k in stride(from: 2, through: p.degree, by: 1) {
            powers.append(k == 2 ? try evaluator.squareRelinearize(x) : try evaluator.multiplyRelinearize(powers.last!, x))
        }
        if p.isPurePower { return powers.last! }
        // a_k mod t, centred, so the noise grows by |a_k| ≤ t/2 at most.
        let centred = p.coefficients.map { a -> Int64 in
            let r = Int64(a % Int128(t))
            let positive = r < 0 ? r + Int64(t) : r
            return positive > Int64(t / 2) ? positive - Int64(t) : positive
        }
        let combined = try evaluator.linearCombination(powers, weights: Array(centred.dropFirst()))
        return centred[0] == 0 ? combined : try evaluator.add(combined, constant: centred[0])
    }
}

/// Steps finished over primes running side by side.
final class StepCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func increment() -> Int { lock.withLock { count += 1; return count } }
}

extension RlweContext {
    /// t (0 for CKKS).
    var plaintextModulus: UInt64 {
        if case .bfv(let t) = parameters.scheme { t } else { 0 }
    }
}

extension SIMDEvaluator {
    /// Steps over primes: the job runner's progress counts them.
    public var progressUnits: Int { plan.steps.count * plan.parameters.count }

    /// ``evaluate(upload:progress:)``'s bytes, its progress named by step.
    public func answer(upload: [UInt8], progress: @escaping EvaluationProgress) throws -> [UInt8] {
        let steps = plan.steps.count
        return try evaluate(upload: upload) { done, _ in progress("step \((done - 1) % steps + 1) of \(steps)", 1, 1) }.bytes
    }
}
