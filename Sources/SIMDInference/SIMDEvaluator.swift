import Dispatch
import NeuralNet
import ObscuraMath
import RLWE

/// The server half of throughput-mode inference: runs a ``SIMDPlan``'s steps on the client's
/// ciphertexts with the client's evaluation keys (relinearization only), one plaintext prime
/// after another. It never holds a secret key. Each step's inputs are released as soon as its
/// outputs exist, so memory holds two layers of ciphertexts, not the whole trace.
public struct SIMDEvaluator: Sendable {
    public let plan: SIMDPlan
    /// One evaluator per plaintext prime, each with its context and key.
    let evaluators: [Evaluator]

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
    }

    /// The contexts, one per plaintext prime (for deserializing the client's ciphertexts).
    public var contexts: [RlweContext] { evaluators.map(\.context) }

    /// Runs the network on plaintext prime `prime`'s ciphertexts (one per input value) and returns
    /// its output ciphertexts (one per score). The primes are independent: a caller streams them
    /// one at a time, so only one prime's ciphertexts are in memory. `progress(step, seconds)`
    /// after each step, with the step's wall-clock time.
    public func evaluate(prime: Int, inputs: [Ciphertext],
                         progress: (_ step: Int, _ seconds: Double) -> Void = { _, _ in }) throws(EvaluationError) -> [Ciphertext] {
        guard evaluators.indices.contains(prime) else { throw .noSuchPrime(index: prime, primes: evaluators.count) }
        guard inputs.count == plan.network.inputCount else {
            throw .wrongInputCount(prime: prime, expected: plan.network.inputCount, got: inputs.count)
        }
        var values = inputs
        for (index, step) in plan.steps.enumerated() {
            let start = DispatchTime.now().uptimeNanoseconds
            do {
                values = try Self.run(step, on: values, evaluator: evaluators[prime])
            } catch {
                throw .rlwe(error)
            }
            progress(index, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return values
    }

    /// One step on all cores: outputs (or elements) are independent.
    static func run(_ step: SIMDPlan.Step, on values: [Ciphertext], evaluator: Evaluator) throws(RlweError) -> [Ciphertext] {
        let plaintextModulus = evaluator.context.plaintextModulus
        do {
            switch step.kind {
            case .linear(let layer):
                let rows = try SparseIntegerRows(rowStart: layer.rowStart, columns: layer.inputs, weights: layer.weights)
                let sums = try evaluator.linearCombinations(values, rows: rows)
                return try ParallelWork.map(layer.outputCount) { o in
                    let bias = Int64(layer.bias[o] % Int128(plaintextModulus))
                    return bias == 0 ? sums[o] : try evaluator.add(sums[o], constant: bias)
                }
            case .polynomial(let polynomial):
                return try ParallelWork.map(values.count) { i in
                    try evaluate(polynomial, at: values[i], evaluator: evaluator, plaintextModulus: plaintextModulus)
                }
            }
        } catch let error as RlweError {
            throw error
        } catch {
            throw .invalidParameters("\(error)")
        }
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

extension RlweContext {
    /// t (0 for CKKS).
    var plaintextModulus: UInt64 {
        if case .bfv(let t) = parameters.scheme { t } else { 0 }
    }
}
