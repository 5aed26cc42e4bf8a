import Foundation
import NeuralNet
import RLWE

/// How a polynomial network runs on BFV in throughput mode (CryptoNets, HCNN): slot j of every
/// ciphertext belongs to image j, one ciphertext per input pixel, so convolutions and dense
/// layers are multiply-accumulates of ciphertexts by scalar weights and activations are
/// ciphertext products. Everything is exact modulo each plaintext prime t_i; the scores, which
/// the integer form bounds by ``PolynomialIntegerNetwork/outputBound``, come back through the
/// CRT from as many primes as their range needs (CryptoNets used two, HCNN several).
///
/// The plan is compiled once per network: parameters from the network's depth and value range,
/// one step per layer with its operation counts and predicted noise. The evaluator runs its
/// steps; nothing re-derives the layer order.
public struct SIMDPlan: Sendable {
    /// The homomorphic operations of one step, per plaintext prime.
    public struct Operations: Sendable, Equatable, Codable {
        /// Scalar multiply-accumulates of whole ciphertexts (linear layers' terms).
        public var scalarMultiplyAdds = 0
        /// Constants added to whole ciphertexts (biases, polynomial constant terms).
        public var constantAdds = 0
        /// Ciphertext-ciphertext products (activations).
        public var ciphertextMultiplies = 0
        /// Relinearizations (one per product).
        public var relinearizations = 0

        public static func + (a: Operations, b: Operations) -> Operations {
            Operations(scalarMultiplyAdds: a.scalarMultiplyAdds + b.scalarMultiplyAdds, constantAdds: a.constantAdds + b.constantAdds,
                       ciphertextMultiplies: a.ciphertextMultiplies + b.ciphertextMultiplies,
                       relinearizations: a.relinearizations + b.relinearizations)
        }
    }

    /// One layer of the network as the evaluator runs it.
    public struct Step: Sendable {
        public enum Kind: Sendable {
            /// A convolution or dense layer: scalar multiply-accumulates and a bias.
            case linear(PolynomialIntegerNetwork.Linear)
            /// An elementwise polynomial: powers by products, then their combination.
            case polynomial(PolynomialIntegerNetwork.Polynomial)
        }
        /// The model's layer index.
        public let layer: Int
        public let kind: Kind
        /// The step's operations, per plaintext prime.
        public let operations: Operations
        /// Predicted log2 of the largest noise coefficient after the step (conservative).
        public let predictedNoiseBits: Double

        /// "linear 845 → 100" or "x^2 × 845", for listings.
        public var summary: String {
            switch kind {
            case .linear(let l): "linear \(l.inputCount) → \(l.outputCount)"
            case .polynomial(let p): "degree-\(p.degree) polynomial"
            }
        }
    }

    /// Why no plan exists.
    public enum PlanError: Error, Equatable, Sendable, CustomStringConvertible {
        /// The network has no exact integer form.
        case noIntegerForm(String)
        /// No candidate parameter set leaves enough noise budget.
        case noParameterSet(outputBits: Int, depth: Int, tried: [String])
        /// Not enough NTT-friendly plaintext primes of a size.
        case notEnoughPlaintextPrimes(bits: Int, needed: Int)

        public var description: String {
            switch self {
            case .noIntegerForm(let reason): "the network has no exact integer form: \(reason)"
            case .noParameterSet(let bits, let depth, let tried):
                "no 128-bit BFV parameter set holds \(bits)-bit scores through \(depth) multiplicative levels "
                    + "(tried \(tried.joined(separator: "; "))): lower the network's weight or input bits"
            case .notEnoughPlaintextPrimes(let bits, let needed): "fewer than \(needed) \(bits)-bit plaintext primes"
            }
        }
    }

    /// A ciphertext modulus the planner may choose: N, the ciphertext primes' sizes, the special
    /// primes' sizes (empty: BV key switching), and whether it is the insecure test shape.
    public struct Shape: Sendable, Equatable {
        public var polynomialSize: Int
        public var ciphertextBits: [Int]
        public var specialBits: [Int]
        public var insecureTestOnly = false

        public init(polynomialSize: Int, ciphertextBits: [Int], specialBits: [Int], insecureTestOnly: Bool = false) {
            self.polynomialSize = polynomialSize
            self.ciphertextBits = ciphertextBits
            self.specialBits = specialBits
            self.insecureTestOnly = insecureTestOnly
        }

        var logQ: Double { Double(ciphertextBits.reduce(0, +)) - 0.01 * Double(ciphertextBits.count) }
        var logN: Double { log2(Double(polynomialSize)) }

        /// The 128-bit shapes, cheapest per image first (cost per image ∝ primes × limbs).
        /// log2(QP) is within the HE standard's bound: 162 and 216 ≤ 218 (N = 8192), 434 and 432 ≤ 438 (N = 16384).
        public static let secure: [Shape] = [
            Shape(polynomialSize: 8192, ciphertextBits: [54, 54, 54], specialBits: []),
            Shape(polynomialSize: 8192, ciphertextBits: [54, 54, 54, 54], specialBits: []),
            Shape(polynomialSize: 16384, ciphertextBits: [54, 54, 54, 54, 54, 54], specialBits: [55, 55]),
            Shape(polynomialSize: 16384, ciphertextBits: [54, 54, 54, 54, 54, 54, 54, 54], specialBits: []),
        ]
    }

    /// The network's exact integer form.
    public let network: PolynomialIntegerNetwork
    /// One BFV parameter set per plaintext prime: the same ring and ciphertext primes, t differs.
    public let parameters: [RlweParameters]
    /// The steps, in order.
    public let steps: [Step]
    /// Bits of noise budget predicted to remain at decryption (the smallest over the primes).
    public let predictedBudgetBits: Double

    /// The plaintext primes t_i.
    public var plaintextModuli: [UInt64] {
        parameters.map { if case .bfv(let t) = $0.scheme { t } else { 0 } }
    }
    /// Images per batch: one per slot.
    public var batchSize: Int { parameters[0].polynomialSize }
    /// 128, or 0 for the insecure test shape.
    public var securityBits: Int { parameters[0].securityBits }
    /// Ciphertext-ciphertext products in sequence.
    public var multiplicativeDepth: Int { Self.depth(network) }
    /// All steps' operations, per plaintext prime.
    public var operations: Operations { steps.reduce(Operations()) { $0 + $1.operations } }

    /// Compiles `network` with the cheapest of `shapes` that keeps `marginBits` of budget, with
    /// plaintext primes of at most `maximumPlaintextBits` bits.
    public static func compile(_ network: PolynomialIntegerNetwork, shapes: [Shape] = Shape.secure,
                               marginBits: Double = 8, maximumPlaintextBits: Int = 50) throws(PlanError) -> SIMDPlan {
        var best: (cost: Double, shape: Shape, tBits: Int, maximumBits: Int, count: Int)?
        var tried: [String] = []
        for shape in shapes {
            // The largest t that leaves the margin; then as many primes as the scores need,
            // each as small as that count allows (smaller t, more budget).
            let widest = min(shape.ciphertextBits.min()! - 2, maximumPlaintextBits)
            let smallest = Int(shape.logN) + 2
            guard widest >= smallest,
                  let bits = stride(from: widest, through: smallest, by: -1).first(where: {
                      budget(network, shape: shape, tBits: Double($0)) >= marginBits
                  })
            else {
                tried.append("N=\(shape.polynomialSize) log Q=\(Int(shape.logQ))")
                continue
            }
            let count = (network.outputBits + bits - 2) / (bits - 1)
            let balanced = max(smallest, (network.outputBits + count - 1) / count + 1)
            let cost = Double(count * shape.ciphertextBits.count)
            if best == nil || cost < best!.cost { best = (cost, shape, balanced, bits, count) }
        }
        guard let best else { throw .noParameterSet(outputBits: network.outputBits, depth: depth(network), tried: tried) }
        // The balanced size may have too few primes ≡ 1 mod 2N (small N): go up to the largest that fits.
        guard let primes = (best.tBits...best.maximumBits).lazy
            .map({ NTTPrimes.generate(count: best.count, bits: $0, polynomialSize: best.shape.polynomialSize) })
            .first(where: { $0.count == best.count })
        else { throw .notEnoughPlaintextPrimes(bits: best.maximumBits, needed: best.count) }
        let parameters = try primes.map { t throws(PlanError) in
            do {
                return best.shape.insecureTestOnly
                    ? try RlweParameters.insecureTestOnly(scheme: .bfv(plaintextModulus: t), polynomialSize: best.shape.polynomialSize,
                                                          ciphertextModulusBits: best.shape.ciphertextBits, specialModulusBits: best.shape.specialBits)
                    : try RlweParameters.generated(scheme: .bfv(plaintextModulus: t), polynomialSize: best.shape.polynomialSize,
                                                   ciphertextModulusBits: best.shape.ciphertextBits, specialModulusBits: best.shape.specialBits)
            } catch {
                throw .noParameterSet(outputBits: network.outputBits, depth: depth(network), tried: ["\(error)"])
            }
        }
        let tBits = log2(Double(primes.max()!))
        let trace = noiseTrace(network, shape: best.shape, tBits: tBits)
        var count = network.inputCount
        let steps = network.layers.enumerated().map { index, layer in
            defer { if case .linear(let l) = layer { count = l.outputCount } }
            return Step(layer: index, kind: layer.stepKind, operations: operations(of: layer, inputs: count),
                        predictedNoiseBits: trace[index])
        }
        return SIMDPlan(network: network, parameters: parameters, steps: steps,
                        predictedBudgetBits: best.shape.logQ - tBits - 1 - trace.last!)
    }

    // MARK: Noise model

    /// Noise is tracked as log2 of the largest error coefficient E of c_0 + c_1·s = Δ·m + E
    /// (Δ = ⌊Q/t⌋); decryption is exact while |E| < Δ/2, so the budget is log2 Q − log2 t − 1 − log2 E.
    /// - fresh (secret-key encryption): E ≤ t (Δ's rounding, r_t(Q)·m/t < t) plus 6σ;
    /// - Σ w_j·ct_j: E grows by Σ|w_j| (worst case over the row), a constant by at most t;
    /// - a product (HPS) then relinearization: E_out = 2^(E_in + log t + log N / 2 + 5) + E_ks,
    ///   the message times the other factor's noise with a tail allowance; BV key switching adds
    ///   E_ks = q_max·√(N·L)·σ·8, hybrid key switching (division by P) about N·2^8.
    /// Checked against measured budgets in the tests (the model must never be optimistic).
    static func noiseTrace(_ network: PolynomialIntegerNetwork, shape: Shape, tBits: Double) -> [Double] {
        func sum(_ a: Double, _ b: Double) -> Double { max(a, b) + log2(1 + exp2(-abs(a - b))) }
        let keySwitch = shape.specialBits.isEmpty
            ? Double(shape.ciphertextBits.max()!) + (shape.logN + log2(Double(shape.ciphertextBits.count))) / 2 + log2(3.2) + 3
            : shape.logN + 8
        var noise = sum(tBits, log2(6 * 3.2))
        var trace: [Double] = []
        for layer in network.layers {
            switch layer {
            case .linear(let l):
                let largestRow = (0..<l.outputCount).map { o in
                    (l.rowStart[o]..<l.rowStart[o + 1]).reduce(0.0) { $0 + Double(l.weights[$1].magnitude) }
                }.max() ?? 0
                noise = sum(noise + log2(max(largestRow, 1)), tBits)
            case .polynomial(let p):
                var powers = [noise]
                for _ in 1..<max(p.degree, 1) {
                    powers.append(sum(max(powers.last!, noise) + tBits + shape.logN / 2 + 5, keySwitch))
                }
                // Σ |a_k mod t| · E_k over k ≥ 1, with a_k taken centred mod t (≤ t/2).
                var combined = -Double.infinity
                for (k, power) in powers.enumerated() {
                    let a = p.coefficients[k + 1]
                    guard a != 0 else { continue }
                    let magnitude = min(log2(Double(a.magnitude)), tBits - 1)
                    combined = sum(combined, power + magnitude)
                }
                noise = sum(combined, tBits)
            }
            trace.append(noise)
        }
        return trace
    }

    /// The predicted final budget of `network` on `shape` with t of `tBits` bits.
    static func budget(_ network: PolynomialIntegerNetwork, shape: Shape, tBits: Double) -> Double {
        shape.logQ - tBits - 1 - (noiseTrace(network, shape: shape, tBits: tBits).last ?? 0)
    }

    /// Powers are built one product at a time (x^k = x^(k−1)·x), so a degree-d polynomial costs d − 1 levels.
    static func depth(_ network: PolynomialIntegerNetwork) -> Int {
        network.layers.reduce(0) { depth, layer in
            if case .polynomial(let p) = layer { depth + max(p.degree - 1, 0) } else { depth }
        }
    }

    /// A layer's operations on `inputs` ciphertexts.
    static func operations(of layer: PolynomialIntegerNetwork.Layer, inputs: Int) -> Operations {
        switch layer {
        case .linear(let l):
            return Operations(scalarMultiplyAdds: l.termCount, constantAdds: l.bias.filter { $0 != 0 }.count)
        case .polynomial(let p):
            let products = max(p.degree - 1, 0)
            let terms = p.coefficients.dropFirst().filter { $0 != 0 }.count
            let combined = p.isPurePower ? 0 : terms
            return Operations(scalarMultiplyAdds: inputs * combined, constantAdds: p.coefficients[0] != 0 ? inputs : 0,
                              ciphertextMultiplies: inputs * products, relinearizations: inputs * products)
        }
    }
}

extension PolynomialIntegerNetwork.Polynomial {
    /// x^d alone (x² in CryptoNets): the last power is the result, with no combination.
    var isPurePower: Bool {
        coefficients.last == 1 && coefficients.dropLast().allSatisfy { $0 == 0 }
    }
}

extension PolynomialIntegerNetwork.Layer {
    var stepKind: SIMDPlan.Step.Kind {
        switch self {
        case .linear(let l): .linear(l)
        case .polynomial(let p): .polynomial(p)
        }
    }
}
