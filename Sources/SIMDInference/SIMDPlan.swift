import Foundation
import NeuralNet
import RLWE

/// How a polynomial network runs on BFV. In throughput mode (CryptoNets, HCNN) slot j of every
/// ciphertext belongs to image j, one ciphertext per input pixel, so convolutions and dense
/// layers are multiply-accumulates of ciphertexts by scalar weights and activations are
/// ciphertext products. In latency mode one image fills the slots (``PackedConvolution`` or
/// ``SharedPatchConvolution``, ``MatrixVector``): plaintext products and rotations. Everything is exact modulo each
/// plaintext prime t_i; the scores, which
/// the integer form bounds by ``PolynomialIntegerNetwork/outputBound``, come back through the
/// CRT from as many primes as their range needs (CryptoNets used two, HCNN several).
///
/// The plan is compiled once per network: parameters from the network's depth and value range,
/// one step per layer with its operation counts and predicted noise. The evaluator runs its
/// steps; nothing re-derives the layer order.
public struct SIMDPlan: Sendable {
    /// One image per slot, or one image across the slots.
    public enum Mode: String, Sendable, CaseIterable {
        case throughput, latency
    }

    /// BFV (exact, CRT over plaintext primes) or CKKS (approximate, one evaluation: the integer
    /// network's values at a scale, a rescale after each product).
    public enum Scheme: String, Sendable, CaseIterable {
        case bfv, ckks
    }

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
        /// Ciphertext-plaintext products (latency mode's weights).
        public var plaintextMultiplies = 0
        /// Rotations (latency mode).
        public var rotations = 0
        /// Ciphertext additions (latency mode; throughput mode's are inside its multiply-adds).
        public var additions = 0

        /// Every homomorphic operation, one count.
        public var total: Int {
            scalarMultiplyAdds + constantAdds + ciphertextMultiplies + relinearizations + plaintextMultiplies + rotations + additions
        }

        public static func + (a: Operations, b: Operations) -> Operations {
            Operations(scalarMultiplyAdds: a.scalarMultiplyAdds + b.scalarMultiplyAdds, constantAdds: a.constantAdds + b.constantAdds,
                       ciphertextMultiplies: a.ciphertextMultiplies + b.ciphertextMultiplies,
                       relinearizations: a.relinearizations + b.relinearizations,
                       plaintextMultiplies: a.plaintextMultiplies + b.plaintextMultiplies,
                       rotations: a.rotations + b.rotations, additions: a.additions + b.additions)
        }
    }

    /// One layer of the network as the evaluator runs it.
    public struct Step: Sendable {
        public enum Kind: Sendable {
            /// Throughput mode: a convolution or dense layer as scalar multiply-accumulates and a bias.
            case linear(PolynomialIntegerNetwork.Linear)
            /// Latency mode: the first convolution, from the client's kernel offsets in blocks.
            case packedConvolution(PackedConvolution)
            /// Latency mode: the first convolution, from the client's offsets' patches, shared by its channels.
            case sharedPatchConvolution(SharedPatchConvolution)
            /// Latency mode: a dense layer by diagonals and rotations.
            case matrixVector(MatrixVector)
            /// An elementwise polynomial: powers by products, then their combination.
            case polynomial(PolynomialIntegerNetwork.Polynomial)
        }
        /// The model's layer index.
        public let layer: Int
        public let kind: Kind
        /// The step's operations, per plaintext prime.
        public let operations: Operations
        /// Predicted log2 of the largest noise coefficient after the step (conservative); CKKS:
        /// of the largest error of the step's values.
        public let predictedNoiseBits: Double
        /// CKKS: whether the step relinearizes its outputs (a product's are relinearized after
        /// the linear layer that follows it), and the primes it drops after (BFV: false, 0).
        public let relinearizes: Bool
        public let rescales: Int

        /// "linear 845 → 100" or "x^2 × 845", for listings.
        public var summary: String {
            switch kind {
            case .linear(let l): "linear \(l.inputCount) → \(l.outputCount)"
            case .packedConvolution(let c): "convolution, \(c.offsetCount) kernel offsets in \(c.ciphertextCount) ciphertexts → period \(c.period)"
            case .sharedPatchConvolution(let c):
                "convolution, \(c.offsetCount) kernel offsets' patches (shared by \(c.channels) channels) in \(c.ciphertextCount) ciphertexts → period \(c.period)"
            case .matrixVector(let m): "dense by \(m.diagonals.count) diagonals, period \(m.inputPeriod) → \(m.outputPeriod)"
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
        /// Latency mode lays out the first layer from the client; later convolutions are dense.
        case latencyLayout(layer: Int, reason: String)
        /// What the CKKS path does not run.
        case notOnCKKS(String)

        public var description: String {
            switch self {
            case .noIntegerForm(let reason): "the network has no exact integer form: \(reason)"
            case .noParameterSet(let bits, let depth, let tried):
                "no BFV parameter set among those tried holds this network (\(bits)-bit scores, \(depth) multiplicative levels; "
                    + "tried \(tried.joined(separator: "; ")): lower the network's weight or input bits, or its widest layer"
            case .latencyLayout(let layer, let reason): "latency mode cannot lay out layer \(layer): \(reason)"
            case .notOnCKKS(let reason): "CKKS: \(reason)"
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
        /// Digits of a key switch: one per prime (BV), or per group of as many primes as P has.
        var keySwitchingDigits: Int {
            specialBits.isEmpty ? ciphertextBits.count : (ciphertextBits.count + specialBits.count - 1) / specialBits.count
        }

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
    /// Throughput or latency.
    public let mode: Mode
    /// BFV or CKKS.
    public let scheme: Scheme
    /// One BFV parameter set per plaintext prime: the same ring and ciphertext primes, t differs.
    public let parameters: [RlweParameters]
    /// The steps, in order.
    public let steps: [Step]
    /// Bits of noise budget predicted to remain at decryption (the smallest over the primes);
    /// CKKS: the predicted precision, every score within 2^−bits of the scores' bound.
    public let predictedBudgetBits: Double
    /// One context per parameter set, built once with the plan (NTT tables, base converters):
    /// the client, the evaluator and the server's checks of uploads all read them.
    public let contexts: [RlweContext]

    init(network: PolynomialIntegerNetwork, mode: Mode, scheme: Scheme, parameters: [RlweParameters], steps: [Step],
         predictedBudgetBits: Double) {
        self.network = network
        self.mode = mode
        self.scheme = scheme
        self.parameters = parameters
        self.steps = steps
        self.predictedBudgetBits = predictedBudgetBits
        contexts = parameters.map { RlweContext(parameters: $0) }
    }

    /// The plaintext primes t_i (BFV; none for CKKS).
    public var plaintextModuli: [UInt64] {
        parameters.compactMap { if case .bfv(let t) = $0.scheme { t } else { nil } }
    }
    /// Images per evaluation: one per slot (throughput: N for BFV, N/2 for CKKS), or one.
    public var batchSize: Int {
        mode == .latency ? 1 : parameters[0].polynomialSize / (scheme == .ckks ? 2 : 1)
    }
    /// Ciphertexts the client sends per plaintext prime: one per input value (throughput), a first
    /// convolution's kernel offsets in blocks (``PackedConvolution/ciphertextCount``) or their
    /// shared patches (``SharedPatchConvolution/ciphertextCount``), or one vector (latency).
    public var inputCiphertexts: Int {
        guard mode == .latency else { return network.inputCount }
        switch steps.first?.kind {
        case .packedConvolution(let c)?: return c.ciphertextCount
        case .sharedPatchConvolution(let c)?: return c.ciphertextCount
        default: return 1
        }
    }
    /// Ciphertexts the server returns per plaintext prime: one per score (throughput), or one.
    public var outputCiphertexts: Int { mode == .throughput ? scoreCount : 1 }
    /// Scores per image: the last linear layer's outputs.
    public var scoreCount: Int {
        network.layers.reversed().lazy.compactMap { if case .linear(let l) = $0 { l.outputCount } else { nil } }.first ?? network.inputCount
    }
    /// The rotations the server needs keys for (latency mode).
    public var rotationSteps: [Int] {
        Array(Set(steps.flatMap { step -> [Int] in
            switch step.kind {
            case .matrixVector(let m): m.rotationSteps
            case .packedConvolution(let c): c.folds
            case .sharedPatchConvolution(let c): c.rotationSteps
            case .linear, .polynomial: []
            }
        })).sorted()
    }
    /// 128, or 0 for the insecure test shape.
    public var securityBits: Int { parameters[0].securityBits }
    /// Ciphertext-ciphertext products in sequence.
    public var multiplicativeDepth: Int { Self.depth(network) }
    /// All steps' operations, per plaintext prime.
    public var operations: Operations { steps.reduce(Operations()) { $0 + $1.operations } }

    /// Compiles `network` with the cheapest of `shapes` that keeps `marginBits` of budget, with
    /// plaintext primes of at most `maximumPlaintextBits` bits.
    public static func compile(_ network: PolynomialIntegerNetwork, mode: Mode = .throughput, scheme: Scheme = .bfv,
                               shapes: [Shape] = Shape.secure,
                               marginBits: Double = 8, maximumPlaintextBits: Int = 50) throws(PlanError) -> SIMDPlan {
        if scheme == .ckks {
            // Insecure only when the caller names insecure test shapes and nothing else (an empty
            // list must not count as "all insecure").
            let insecure = !shapes.isEmpty && shapes.allSatisfy(\.insecureTestOnly)
            return try compileCKKS(network, mode: mode, insecureTestOnly: insecure)
        }
        let unplaced = mode == .throughput ? network.layers.map(\.stepKind) : try latencyKinds(network)
        var sharing = SharedLayout(network: network)
        var best: (cost: Double, shape: Shape, primes: [UInt64], kinds: [Step.Kind])?
        var tried: [String] = []
        for shape in shapes {
            // Latency mode tries the first convolution's offsets in blocks (fewer uploads; where a
            // row holds only one block, the offsets' patches shared by the channels instead), then
            // one offset per ciphertext: the rotations of the first two come before the first
            // product, and with BV key switching their noise may not fit, or need more primes,
            // where the plain layout does not. The cheaper wins; at equal cost, the first.
            let layouts = latencyLayouts(unplaced, sharing: &sharing, polynomialSize: shape.polynomialSize)
            for kinds in layouts {
                // The largest t that leaves the margin; then as many primes as the scores need,
                // each as small as that count allows (smaller t, more budget).
                let widest = min(shape.ciphertextBits.min()! - 2, maximumPlaintextBits)
                let smallest = Int(shape.logN) + 2
                let name = "N=\(shape.polynomialSize) log Q=\(Int(shape.logQ))" + (kinds.first?.layoutName.map { " (\($0))" } ?? "")
                if let shortfall = rowShortfall(kinds, polynomialSize: shape.polynomialSize) {
                    tried.append("\(name): \(shortfall)")
                    continue
                }
                guard widest >= smallest else {
                    tried.append("\(name): plaintext primes of at most \(widest) bits, below the \(smallest) that N needs")
                    continue
                }
                guard let bits = stride(from: widest, through: smallest, by: -1).first(where: {
                    shape.logQ - Double($0) - 1 - (noiseTrace(kinds, shape: shape, tBits: Double($0)).last ?? 0) >= marginBits
                }) else {
                    tried.append("\(name): the noise does not fit")
                    continue
                }
                let count = (network.outputBits + bits - 2) / (bits - 1)
                // Per image: primes × limbs; latency mode has one image per ciphertext (× N) and
                // is dominated by rotations, whose key switching costs a transform per digit and limb.
                let limbs = shape.ciphertextBits.count
                let cost = mode == .throughput ? Double(count * limbs)
                    : Double(count * shape.polynomialSize * limbs * shape.keySwitchingDigits)
                // The smallest size whose `count` largest primes ≡ 1 mod 2N hold the scores (smaller t,
                // more budget). Small sizes may have too few such primes (about 2^(b−1)/(2N·b·ln 2)).
                guard let primes = (smallest...bits).lazy
                    .map({ NTTPrimes.generate(count: count, bits: $0, polynomialSize: shape.polynomialSize) })
                    .first(where: {
                        // Enough to hold the scores, and a product the 128-bit CRT join can hold.
                        let bits = $0.reduce(0.0) { $0 + log2(Double($1)) }
                        return $0.count == count && bits >= Double(network.outputBits) && bits < 126.5
                    })
                else {
                    tried.append(network.outputBits > 126 ? "\(name): \(network.outputBits)-bit scores, more than the 126 bits the CRT join holds"
                                                          : "\(name): fewer than \(count) primes of at most \(bits) bits")
                    continue
                }
                if best == nil || cost < best!.cost { best = (cost, shape, primes, kinds) }
            }
        }
        guard let best else { throw .noParameterSet(outputBits: network.outputBits, depth: depth(network), tried: tried) }
        let parameters = try best.primes.map { t throws(PlanError) in
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
        let tBits = log2(Double(best.primes.max()!))
        let trace = noiseTrace(best.kinds, shape: best.shape, tBits: tBits)
        return SIMDPlan(network: network, mode: mode, scheme: .bfv, parameters: parameters,
                        steps: steps(best.kinds, network: network, mode: mode, noise: trace),
                        predictedBudgetBits: best.shape.logQ - tBits - 1 - trace.last!)
    }

    // MARK: CKKS

    /// CKKS (throughput mode) holds each integer value v of the network as m = v·Δ, with a
    /// scale Δ per stage chosen from the layers' bounds |v| ≤ 2^B and a precision p: every
    /// error enters at most 2^−p of its stage's bound (6σ in a slot).
    /// - Inputs: Δ_0 = 2^(p + e_fresh − B_in), e_fresh = log2(6σ·√N), the encryption error.
    /// - Linear layers multiply by the integer weights: Δ stays; bound and error grow alike.
    /// - An activation a_2·x² + a_1·x + a_0 is a_2·(x·(x + a_1/a_2)) + a_0: one product; a_2
    ///   moves into the scale (``Evaluator/multiply(_:byRescaling:)``), so a_1 x and x² alike
    ///   cost no extra level. Degree 1 is the scale alone.
    /// - A product followed by a linear layer is neither relinearized nor rescaled: the layer
    ///   combines the three-component products, and only its outputs (100 where the products
    ///   were 845 in CryptoNets) are relinearized and rescaled, in one division by P·q. A product
    ///   that ends the network is relinearized and rescaled itself. The rescale's primes, r
    ///   bits, leave the values at Δ' = 2^(p + e_round − B), B the bound where it happens and
    ///   e_round = log2(6·√(N/18)·√N) the rounding of a rescale (and of the key switch).
    /// - Q: the last prime(s) hold the scores' bound at the final scale, and every level holds the
    ///   largest value it carries (a linear layer's outputs before their rescale) with
    ///   `ckksMarginBits` to spare.
    /// The plan takes the smallest ring whose 128-bit bound holds Q·P at some p ≥ 20, and on it
    /// the chain with the fewest primes, then the largest p up to 30.
    static let ckksPrecisionBits = Array(stride(from: 30, through: 20, by: -1))
    /// Bits between the largest value a level carries and Q_ℓ/2.
    static let ckksMarginBits = 3.0

    /// The CKKS modulus chain for `network` at precision `p` on a ring of 2^logN.
    struct CKKSChain: Equatable {
        /// q_0 first; each product's rescaling primes after, the first product's last (dropped first).
        var ciphertextBits: [Int]
        /// log2 Δ_0 of the client's inputs.
        var logScale: Int
        /// Per step: whether it relinearizes its outputs, and the primes it drops after.
        var relinearizes: [Bool]
        var rescales: [Int]
        /// log2 of the predicted largest error of each step's values.
        var errorBits: [Double]
    }

    /// log2 of a fresh CKKS encryption's error (6σ in a slot) on a ring of 2^logN.
    static func ckksFreshError(logN: Double) -> Double { log2(6 * RlweParameters.errorStandardDeviation) + logN / 2 }
    /// log2 of a rescale's (or a hybrid key switch's) rounding error in a slot.
    static func ckksRoundingError(logN: Double) -> Double { log2(6 / 18.0.squareRoot()) + logN }
    /// log2(2^a + 2^b).
    static func logSum(_ a: Double, _ b: Double) -> Double { max(a, b) + log2(1 + exp2(-abs(a - b))) }

    /// A rescale by r bits as primes of at most 61 bits each (the NTT's lazy range); none below 20 bits.
    static func rescalePrimes(_ r: Int) -> [Int] {
        let primes = r < 20 ? 0 : (r + 60) / 61
        return (0..<primes).map { r / primes + ($0 < r % primes ? 1 : 0) }
    }

    /// q_0's primes: every value (its bits, and how many of the dropped primes were gone when
    /// it occurred) held with `ckksMarginBits` to spare; at least 20 bits a prime.
    static func basePrimes(_ needs: [(bits: Double, gone: Int)], dropped: [Int]) -> [Int] {
        let base = needs.map { $0.bits + ckksMarginBits - Double(dropped[$0.gone...].reduce(0, +)) }.max()!
        let count = max(1, Int((base / 61).rounded(.up)))
        let total = max(Int(base.rounded(.up)), 20 * count)
        return (0..<count).map { total / count + ($0 < total % count ? 1 : 0) }
    }

    static func ckksChain(_ network: PolynomialIntegerNetwork, logN: Double, precision p: Double) throws(PlanError) -> CKKSChain {
        let freshError = ckksFreshError(logN: logN), roundingError = ckksRoundingError(logN: logN)
        var bound = log2(Double(network.inputLevels))
        let logScale = Int((p + freshError - bound).rounded(.up))
        var s = Double(logScale)
        // Each value a level must hold: its bits, and the first product whose primes the level still has.
        var needs: [(bits: Double, gone: Int)] = []
        var rescaleBits: [Int] = [], relinearizes: [Bool] = [], rescales: [Int] = [], errorBits: [Double] = []
        // A product whose relinearization and rescale wait for the next linear layer.
        var pending = false
        // log2 of the largest error relative to the current bound: 2^−p from the encryption; a
        // linear layer keeps it (error and bound grow by the same Σ|w|), a product doubles it,
        // and a relinearization and rescale each add their rounding.
        var relative = -p
        /// Relinearizes and rescales at a value of bound 2^B: the primes that bring the scale to
        /// p + e_round − B, none when that is less than 20 bits.
        func rescale(at bound: Double) {
            let r = Int((s - (p + roundingError - bound)).rounded(.down))
            let primes = rescalePrimes(r)
            rescaleBits += primes
            relinearizes.append(true)
            rescales.append(primes.count)
            if !primes.isEmpty { s -= Double(r) }
            relative = logSum(relative, roundingError - (bound + s) + 1)
        }
        for (index, layer) in network.layers.enumerated() {
            let next = network.layerBoundBits[index]
            switch layer {
            case .linear:
                // Before a pending rescale, the level still has the product's primes.
                needs.append((next + s, rescaleBits.count))
                if pending { rescale(at: next) } else { relinearizes.append(false); rescales.append(0) }
                pending = false
            case .polynomial(let poly):
                let a = poly.coefficients.map { Double($0) }
                guard a.last != 0 else { throw .notOnCKKS("layer \(index)'s leading coefficient is zero") }
                guard !pending else { throw .notOnCKKS("layer \(index) follows another activation; CKKS runs them one linear layer apart") }
                switch poly.degree {
                case 1:
                    s -= log2(abs(a[1]))
                    relinearizes.append(false)
                    rescales.append(0)
                case 2:
                    // x·u, u = x + a_1/a_2; then ×a_2 and + a_0 through the scale.
                    let u = log2(exp2(bound) + abs(a[1] / a[2]))
                    let product = min(bound + u, log2((exp2(next) + abs(a[0])) / abs(a[2])))
                    needs.append((bound + u + 2 * s, rescaleBits.count))
                    s = 2 * s - log2(abs(a[2]))
                    relative += 1
                    if index + 1 < network.layers.count, case .linear = network.layers[index + 1] {
                        pending = true
                        relinearizes.append(false)
                        rescales.append(0)
                    } else {
                        s += log2(abs(a[2]))
                        rescale(at: product)
                        s -= log2(abs(a[2]))
                    }
                default:
                    throw .notOnCKKS("layer \(index) is a degree-\(poly.degree) polynomial; CKKS runs degrees 1 and 2 (BFV runs any, exactly)")
                }
            }
            bound = next
            errorBits.append(bound + relative)
        }
        needs.append((bound + s, rescaleBits.count))
        let baseBits = basePrimes(needs, dropped: rescaleBits)
        // Dropped last first: the last product's primes sit just above q_0.
        return CKKSChain(ciphertextBits: baseBits + rescaleBits.reversed(), logScale: logScale, relinearizes: relinearizes,
                         rescales: rescales, errorBits: errorBits)
    }

    /// CKKS, latency mode (one image across the slots, ``PackedConvolution`` or
    /// ``SharedPatchConvolution``, and ``MatrixVector``, as in BFV). Values sit at a scale Δ = 2^s that linear steps keep: each
    /// multiplies by its integer weights encoded at the scale q_w of a prime of its own, sums the
    /// blocks (rotations at scale Δ·q_w) and divides by q_w (one level); an activation is the
    /// throughput chain's product and rescale. Errors, in value units (log2), against each step's
    /// bound 2^B, with R = e_round − s one rounding at scale Δ:
    /// - a linear step scales the incoming error by its largest row sum Σ|w|; adds the weights'
    ///   encoding error (6·√(N/12)/q_w per weight, times the inputs summed into a slot, at most
    ///   `terms`·2^B_in), q_w chosen so that it stays 2^−(p+1) below the step's bound; the
    ///   rescale's rounding (R); and for a dense layer or shared patches the baby-step rotations' key switches,
    ///   made at Δ before the product, so weighted by the row sum (R + log Σ|w|). The giant
    ///   steps and block sums switch keys at Δ·q_w: their errors shrink by q_w.
    /// - activations: as in ``ckksChain(_:logN:precision:)``.
    static func ckksLatencyChain(_ kinds: [Step.Kind], network: PolynomialIntegerNetwork, logN: Double,
                                 precision p: Double) throws(PlanError) -> CKKSChain {
        let freshError = ckksFreshError(logN: logN), roundingError = ckksRoundingError(logN: logN)
        let encodingError = log2(6 * (exp2(logN) / 12).squareRoot())
        var bound = log2(Double(network.inputLevels))
        let logScale = Int((p + freshError - bound).rounded(.up))
        var s = Double(logScale)
        var error = freshError - s
        // Primes in the order they are dropped, and each value's bits with the primes gone by then.
        var dropped: [Int] = []
        var needs: [(bits: Double, gone: Int)] = []
        var rescales: [Int] = [], errorBits: [Double] = []
        for (index, kind) in kinds.enumerated() {
            let next = network.layerBoundBits[index]
            switch kind {
            case .packedConvolution, .sharedPatchConvolution, .matrixVector:
                guard case .linear(let l) = network.layers[index] else { throw .notOnCKKS("layer \(index) is not linear") }
                // Shared patches multiply padding (zeros and their error) by the channel's whole filter too.
                var sums = l.largestRowSum
                if case .sharedPatchConvolution(let c) = kind { sums = max(sums, c.largestFilterSum) }
                let rowSum = log2(max(sums, 1))
                let (terms, babySteps): (Int, Bool) = switch kind {
                case .matrixVector(let m): (m.inputPeriod, m.babyStep > 1)
                case .packedConvolution(let c): (c.ciphertextCount * c.blocks, false)
                case .sharedPatchConvolution(let c): (c.ciphertextCount * c.blocksPerRow, c.babyStep > 1)
                case .linear, .polynomial: (1, false)
                }
                // The weights' prime: the precision's bits, less what the encoder's 2^62 leaves
                // above the largest weight (its error, with the prime actually taken, is counted).
                let largestWeight = log2(Double(l.weights.lazy.map(\.magnitude).max() ?? 0) + 1)
                let wanted = Int((p + 1 + bound - next + log2(Double(terms)) + encodingError).rounded(.up))
                let w = min(max(wanted, 24), 61, 61 - Int(largestWeight.rounded(.up)))
                guard w >= 20 else { throw .notOnCKKS("layer \(index)'s weights (2^\(Int(largestWeight)) at most) leave no room for a weights' prime") }
                // Partial sums may exceed the layer's bound before its bias: Σ|w|·2^B_in.
                needs.append((max(next, bound + rowSum) + s + Double(w), dropped.count))
                dropped.append(w)
                rescales.append(1)
                var added = logSum(bound + log2(Double(terms)) + encodingError - Double(w), roundingError - s)
                if babySteps { added = logSum(added, roundingError - s + rowSum) }
                error = logSum(error + rowSum, added)
            case .polynomial(let poly):
                let a = poly.coefficients.map { Double($0) }
                guard a.last != 0 else { throw .notOnCKKS("layer \(index)'s leading coefficient is zero") }
                switch poly.degree {
                case 1:
                    s -= log2(abs(a[1]))
                    rescales.append(0)
                    error += log2(abs(a[1]))
                case 2:
                    // x·u at scale 2s, rescaled to keep p bits of its bound; a_2 then goes into the scale.
                    let u = log2(exp2(bound) + abs(a[1] / a[2]))
                    needs.append((bound + u + 2 * s, dropped.count))
                    let r = Int((2 * s - (p + roundingError - (bound + u))).rounded(.down))
                    let primes = rescalePrimes(r)
                    dropped += primes
                    rescales.append(primes.count)
                    s = 2 * s - (primes.isEmpty ? 0 : Double(r)) - log2(abs(a[2]))
                    // Relative error doubles; then the relinearization's and rescale's rounding.
                    error = logSum(next + (error - bound) + 1, roundingError - s + 1)
                default:
                    throw .notOnCKKS("layer \(index) is a degree-\(poly.degree) polynomial; CKKS runs degrees 1 and 2 (BFV runs any, exactly)")
                }
            case .linear:
                throw .notOnCKKS("latency mode lays out its linear layers by blocks and diagonals")
            }
            bound = next
            errorBits.append(error)
        }
        needs.append((bound + s, dropped.count))
        return CKKSChain(ciphertextBits: basePrimes(needs, dropped: dropped) + dropped.reversed(), logScale: logScale,
                         relinearizes: kinds.map { if case .polynomial(let p) = $0 { p.degree == 2 } else { false } },
                         rescales: rescales, errorBits: errorBits)
    }

    /// CKKS: the chain above (throughput) or the latency chain on the smallest 128-bit ring that
    /// holds it (one special prime as wide as the widest ciphertext prime: one-prime digits,
    /// hybrid key switching).
    static func compileCKKS(_ network: PolynomialIntegerNetwork, mode: Mode, insecureTestOnly: Bool) throws(PlanError) -> SIMDPlan {
        let kinds = mode == .throughput ? network.layers.map(\.stepKind) : try latencyKinds(network)
        var sharing = SharedLayout(network: network)
        var tried: [String] = []
        // Each ring, each layout a row holds, in order: the first whose chain fits.
        for n in insecureTestOnly ? [1024] : [8192, 16384, 32768] {
            for laidOut in latencyLayouts(kinds, sharing: &sharing, polynomialSize: n) {
                let name = "N=\(n)" + (laidOut.first?.layoutName.map { " (\($0))" } ?? "")
                if let shortfall = rowShortfall(laidOut, polynomialSize: n) {
                    tried.append("\(name): \(shortfall)")
                    continue
                }
                // The chains that fit: fewest primes (the cost per value), then the most precise.
                var fitting: [(p: Int, chain: CKKSChain)] = []
                for p in ckksPrecisionBits {
                    let chain = mode == .throughput
                        ? try ckksChain(network, logN: log2(Double(n)), precision: Double(p))
                        : try ckksLatencyChain(laidOut, network: network, logN: log2(Double(n)), precision: Double(p))
                    let logQP = chain.ciphertextBits.reduce(0, +) + chain.ciphertextBits.max()!
                    if insecureTestOnly || logQP <= RlweParameters.maximumLogModulus128[n] ?? 0 { fitting.append((p, chain)) }
                }
                guard let (p, chain) = fitting.min(by: { ($0.chain.ciphertextBits.count, -$0.p) < ($1.chain.ciphertextBits.count, -$1.p) }) else {
                    tried.append("\(name): no chain at 2^-\(ckksPrecisionBits.last!) within log QP ≤ \(RlweParameters.maximumLogModulus128[n] ?? 0)")
                    continue
                }
                let special = [chain.ciphertextBits.max()!]
                do {
                    let scheme = RlweParameters.Scheme.ckks(logScale: chain.logScale)
                    let parameters = insecureTestOnly
                        ? try RlweParameters.insecureTestOnly(scheme: scheme, polynomialSize: n,
                                                              ciphertextModulusBits: chain.ciphertextBits, specialModulusBits: special)
                        : try RlweParameters.generated(scheme: scheme, polynomialSize: n,
                                                       ciphertextModulusBits: chain.ciphertextBits, specialModulusBits: special)
                    return SIMDPlan(network: network, mode: mode, scheme: .ckks, parameters: [parameters],
                                    steps: steps(laidOut, network: network, mode: mode, noise: chain.errorBits,
                                                 ckks: (chain.relinearizes, chain.rescales)),
                                    predictedBudgetBits: network.layerBoundBits.last! - chain.errorBits.last!)
                } catch {
                    tried.append("\(name): \(error)")
                }
            }
        }
        throw .noParameterSet(outputBits: network.outputBits, depth: depth(network), tried: tried)
    }

    /// The plan's steps: each layer's kind with its operations and predicted noise.
    static func steps(_ kinds: [Step.Kind], network: PolynomialIntegerNetwork, mode: Mode, noise: [Double],
                      ckks: (relinearizes: [Bool], rescales: [Int])? = nil) -> [Step] {
        kinds.enumerated().map { index, kind in
            // Latency mode holds all of a layer's values in one ciphertext.
            let inputs = mode == .latency ? 1 : count(before: index, network)
            guard let ckks else {
                return Step(layer: index, kind: kind, operations: operations(of: kind, inputs: inputs),
                            predictedNoiseBits: noise[index], relinearizes: false, rescales: 0)
            }
            let relinearizes = ckks.relinearizes[index]
            return Step(layer: index, kind: kind, operations: ckksOperations(of: kind, inputs: inputs, relinearizes: relinearizes),
                        predictedNoiseBits: noise[index], relinearizes: relinearizes, rescales: ckks.rescales[index])
        }
    }

    /// CKKS's operations: polynomials by one product and constants (a_2 is free, in the scale),
    /// and a relinearization of every output of the step that relinearizes.
    static func ckksOperations(of kind: Step.Kind, inputs: Int, relinearizes: Bool) -> Operations {
        switch kind {
        case .polynomial(let p):
            let products = p.degree == 2 ? inputs : 0
            let constants = (p.degree == 2 && p.coefficients[1] != 0 ? inputs : 0) + (p.coefficients[0] != 0 ? inputs : 0)
            return Operations(constantAdds: constants, ciphertextMultiplies: products, relinearizations: relinearizes ? products : 0)
        case .linear(let l):
            var counts = operations(of: kind, inputs: inputs)
            counts.relinearizations = relinearizes ? l.outputCount : 0
            return counts
        case .packedConvolution, .sharedPatchConvolution, .matrixVector:
            return operations(of: kind, inputs: inputs)
        }
    }

    /// Values entering layer `index`.
    static func count(before index: Int, _ network: PolynomialIntegerNetwork) -> Int {
        network.layers[..<index].reduce(network.inputCount) { count, layer in
            if case .linear(let l) = layer { l.outputCount } else { count }
        }
    }

    // MARK: Noise model

    /// Noise is tracked as log2 of the largest error coefficient E of c_0 + c_1·s = Δ·m + E
    /// (Δ = ⌊Q/t⌋); decryption is exact while |E| < Δ/2, so the budget is log2 Q − log2 t − 1 − log2 E.
    /// - fresh (secret-key encryption): E ≤ t (Δ's rounding, r_t(Q)·m/t < t) plus 6σ;
    /// - Σ w_j·ct_j: E grows by Σ|w_j| (worst case over the row), a constant by at most t;
    /// - a product (HPS) then relinearization: E_out = 2^(E_a ⊕ E_b + log t + log N + 1) + E_ks,
    ///   the messages times the other factor's noise; BV key switching adds
    ///   E_ks = q_max·√(N·L)·σ·8, hybrid key switching (division by P) about N·2^8.
    /// The tests check it against measured budgets (N = 256 and 1024 insecure rings; CryptoNets at
    /// N = 8192 in both modes): the model must never be optimistic.
    ///
    /// Latency mode: a plaintext product multiplies the noise by the plaintext polynomial, whose
    /// coefficients are uniform mod t (E + log t + log N / 2 + 0.8), a sum of P independent
    /// products adds log P / 2 + 1, and each rotation adds E_ks.
    static func noiseTrace(_ kinds: [Step.Kind], shape: Shape, tBits: Double) -> [Double] {
        let sum = logSum
        let keySwitch = shape.specialBits.isEmpty
            ? Double(shape.ciphertextBits.max()!) + (shape.logN + log2(Double(shape.ciphertextBits.count))) / 2 + log2(3.2) + 3
            : shape.logN + 8
        var noise = sum(tBits, log2(6 * 3.2))
        var trace: [Double] = []
        // A plaintext product: each coefficient sums N products of noise (≤ E) and plaintext
        // coefficients (uniform, |p| ≤ t/2, σ = t/√12): 6σ·√N·E. Its P terms are independent,
        // so their sum grows as √P (one more bit for the tail).
        let plaintextProduct = tBits + shape.logN / 2 + log2(6 / 12.0.squareRoot())
        func independentSum(_ count: Int) -> Double { log2(Double(count)) / 2 + 1 }
        // Baby-step rotations (a key switch each, when there are any) before the products, giant
        // steps after: at most `terms` products summed.
        func babyGiantNoise(_ noise: Double, terms: Int, babySteps: Bool) -> Double {
            sum((babySteps ? sum(noise, keySwitch) : noise) + plaintextProduct + independentSum(terms), keySwitch + independentSum(terms))
        }
        for kind in kinds {
            switch kind {
            case .packedConvolution(let c):
                noise = noise + plaintextProduct + independentSum(c.ciphertextCount)
                // Each rotate-and-add: v + rot(v), the rotated copy with a key switch's noise.
                for _ in c.folds { noise = sum(noise, sum(noise, keySwitch)) }
                noise = sum(noise, tBits)
            case .matrixVector(let m):
                noise = sum(babyGiantNoise(noise, terms: m.inputPeriod, babySteps: m.babyStep > 1), tBits)
            case .sharedPatchConvolution(let c):
                noise = sum(babyGiantNoise(noise, terms: c.ciphertextCount * c.blocksPerRow, babySteps: c.babyStep > 1), tBits)
            case .linear(let l):
                noise = sum(noise + log2(max(l.largestRowSum, 1)), tBits)
            case .polynomial(let p):
                var powers = [noise]
                for _ in 1..<max(p.degree, 1) {
                    // The product's noise is t·(m_a·e_b + m_b·e_a) plus rounding: at most t·N·(E_a + E_b)
                    // in the worst case; t·√N·E with a tail allowance fits the measurements at
                    // N = 8192 (27.5 bits for t = 2^17) — log t + log N + 1 stays above both.
                    powers.append(sum(sum(powers.last!, noise) + tBits + shape.logN + 1, keySwitch))
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

    // MARK: Latency layouts

    /// Why `kinds` do not fit a ring of N: a vector longer than a row of N/2 slots; nil when they fit.
    static func rowShortfall(_ kinds: [Step.Kind], polynomialSize n: Int) -> String? {
        let period = kinds.map(\.largestPeriod).max() ?? 0
        return period <= n / 2 ? nil : "a layer needs \(period) slots in a row of \(n / 2)"
    }

    /// ``latencyKinds(_:sharingPatches:)`` with the patches shared, built on first use (only a ring
    /// whose rows hold a single block asks); nil where they do not lay out.
    struct SharedLayout {
        let network: PolynomialIntegerNetwork
        lazy var kinds: [Step.Kind]? = try? SIMDPlan.latencyKinds(network, sharingPatches: true)
    }

    /// Layouts to try on a ring of N, preferred first: a latency plan's first convolution with its
    /// offsets in blocks where a row holds several, else with their patches shared by the channels
    /// where that sends fewer ciphertexts for at most about three times the products (R ≤ 2K, so
    /// J·R < K + R ≤ 3K); then one offset per ciphertext. Otherwise `kinds` as they are.
    static func latencyLayouts(_ kinds: [Step.Kind], sharing: inout SharedLayout, polynomialSize n: Int) -> [[Step.Kind]] {
        guard case .packedConvolution(let packed)? = kinds.first else { return [kinds] }
        let blocked = kinds.map { $0.laidOut(polynomialSize: n) }
        if blocked.contains(where: \.isBlocked) { return [blocked, kinds] }
        if let shared = sharing.kinds?.map({ $0.laidOut(polynomialSize: n) }), case .sharedPatchConvolution(let c)? = shared.first,
           c.ciphertextCount < packed.offsetCount, c.blocksPerRow <= 2 * packed.offsetCount {
            return [shared, kinds]
        }
        return [kinds]
    }

    /// The first convolution packed by the client (its offsets' patches shared by its channels
    /// when `sharingPatches` and it has several), every other linear layer by diagonals.
    static func latencyKinds(_ network: PolynomialIntegerNetwork, sharingPatches: Bool = false) throws(PlanError) -> [Step.Kind] {
        // The scores are the last linear layer's outputs, laid out in one period of the slots.
        guard network.layers.contains(where: { if case .linear = $0 { true } else { false } }) else {
            throw .latencyLayout(layer: 0, reason: "latency mode lays out linear layers, and the network has none")
        }
        var period = powerOfTwo(atLeast: network.inputCount)
        var kinds: [Step.Kind] = []
        // Shared patches leave channel c's outputs in a block of Q' slots: the next linear layer reads them there.
        var shared: SharedPatchConvolution?
        for (index, layer) in network.layers.enumerated() {
            switch layer {
            case .polynomial(let p):
                kinds.append(.polynomial(p))
            case .linear(let l) where index == 0 && l.kernelOffsetCount > 0:
                // Shared only where a later linear layer reads the outputs from their blocks (the
                // client reads scores at their own index).
                let read = network.layers.dropFirst().contains { if case .linear = $0 { true } else { false } }
                if sharingPatches, read, let c = SharedPatchConvolution(l) {
                    shared = c
                    period = c.period
                    kinds.append(.sharedPatchConvolution(c))
                } else {
                    period = powerOfTwo(atLeast: l.outputCount)
                    kinds.append(.packedConvolution(PackedConvolution(l, period: period)))
                }
            case .linear(let l):
                let outputPeriod = powerOfTwo(atLeast: l.outputCount)
                let inputPeriod = max(period, outputPeriod)
                guard inputPeriod * outputPeriod <= 1 << 26 else {
                    throw .latencyLayout(layer: index, reason: "a \(l.outputCount) × \(l.inputCount) matrix is too large to lay out by diagonals")
                }
                var slot: (Int) -> Int = { $0 }
                if let shared { slot = shared.outputSlot }
                kinds.append(.matrixVector(MatrixVector(l, inputPeriod: inputPeriod, outputPeriod: outputPeriod, inputSlot: slot)))
                shared = nil
                period = outputPeriod
            }
        }
        return kinds
    }

    /// Powers are built one product at a time (x^k = x^(k−1)·x), so a degree-d polynomial costs d − 1 levels.
    static func depth(_ network: PolynomialIntegerNetwork) -> Int {
        network.layers.reduce(0) { depth, layer in
            if case .polynomial(let p) = layer { depth + max(p.degree - 1, 0) } else { depth }
        }
    }

    /// A step's operations on `inputs` ciphertexts (latency mode: one ciphertext holds them all).
    static func operations(of kind: Step.Kind, inputs: Int) -> Operations {
        switch kind {
        case .linear(let l):
            return Operations(scalarMultiplyAdds: l.termCount, constantAdds: l.bias.filter { $0 != 0 }.count)
        case .packedConvolution(let c):
            return Operations(constantAdds: 1, plaintextMultiplies: c.ciphertextCount, rotations: c.folds.count,
                              additions: c.ciphertextCount - 1 + c.folds.count)
        case .matrixVector(let m):
            return Operations(constantAdds: 1, plaintextMultiplies: m.diagonals.count, rotations: m.rotationCount,
                              additions: max(m.diagonals.count - 1, 0) + m.foldCount)
        case .sharedPatchConvolution(let c):
            let products = c.diagonalCount
            return Operations(constantAdds: 1, plaintextMultiplies: products, rotations: c.rotationCount, additions: max(products - 1, 0))
        case .polynomial(let p):
            let products = max(p.degree - 1, 0)
            let terms = p.coefficients.dropFirst().filter { $0 != 0 }.count
            let combined = p.isPurePower ? 0 : terms
            return Operations(scalarMultiplyAdds: inputs * combined, constantAdds: p.coefficients[0] != 0 ? inputs : 0,
                              ciphertextMultiplies: inputs * products, relinearizations: inputs * products)
        }
    }
}

extension PolynomialIntegerNetwork.Linear {
    /// max over outputs of Σ|w|: how much a row can grow its inputs (and their errors).
    var largestRowSum: Double {
        (0..<outputCount).map { o in (rowStart[o]..<rowStart[o + 1]).reduce(0.0) { $0 + Double(weights[$1].magnitude) } }.max() ?? 0
    }
}

extension PolynomialIntegerNetwork.Polynomial {
    /// x^d alone (x² in CryptoNets): the last power is the result, with no combination.
    var isPurePower: Bool {
        degree >= 1 && coefficients.last == 1 && coefficients.dropLast().allSatisfy { $0 == 0 }
    }
}

extension SIMDPlan.Step.Kind {
    /// The kind laid out on a ring of `polynomialSize` slots (the first convolution's blocks).
    func laidOut(polynomialSize: Int) -> SIMDPlan.Step.Kind {
        switch self {
        case .packedConvolution(let c): .packedConvolution(c.laidOut(polynomialSize: polynomialSize))
        case .sharedPatchConvolution(let c): .sharedPatchConvolution(c.laidOut(polynomialSize: polynomialSize))
        case .linear, .matrixVector, .polynomial: self
        }
    }

    /// Whether the first convolution's offsets share ciphertexts.
    var isBlocked: Bool {
        if case .packedConvolution(let c) = self { c.blocks > 1 } else { false }
    }

    /// How a first convolution's offsets travel, for the planner's refusals; nil for one per ciphertext.
    var layoutName: String? {
        switch self {
        case .packedConvolution(let c) where c.blocks > 1: "offsets in blocks"
        case .sharedPatchConvolution: "offsets' patches shared"
        default: nil
        }
    }

    /// The largest vector period the step lays out in a row (latency mode; 1 otherwise).
    var largestPeriod: Int {
        switch self {
        case .packedConvolution(let c): c.period
        case .sharedPatchConvolution(let c): c.period
        case .matrixVector(let m): m.inputPeriod
        case .linear, .polynomial: 1
        }
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
