import ObscuraMath

/// The client's secret: a uniform ternary s ∈ {−1, 0, 1}^N. It never leaves the client: no
/// public reader accepts its bytes, and nothing on the server side takes one.
public struct SecretKey: Sendable {
    public let context: RlweContext
    /// The coefficients of s.
    let coefficients: [Int8]
    /// s in the NTT domain mod every ciphertext prime and every special prime (L + α limbs).
    let ntt: RnsPolynomial

    /// A fresh secret from operating-system entropy.
    public init(context: RlweContext) {
        var generator = CSPRNG.fromSystemEntropy(domain: "rlwe.secret")
        self.init(context: context, coefficients: Sampling.ternary(count: context.polynomialSize, using: &generator))
    }

    init(context: RlweContext, coefficients: [Int8]) {
        self.context = context
        self.coefficients = coefficients
        let levels = context.maximumLevel
        var s = Sampling.lift(coefficients.map(Int64.init), limbs: levels + context.specialCount) {
            context.tables(limb: $0, level: levels).modulus
        }
        PolynomialArithmetic.forward(&s) { context.tables(limb: $0, level: levels) }
        ntt = s
    }
}

/// An encryption of zero under s, for public-key encryption: (b, a) = (−a·s + e, a) mod Q.
public struct PublicKey: Sendable {
    public let context: RlweContext
    /// The seed of a (uniform in the NTT domain).
    public let seed: Seed128
    let body: RnsPolynomial
    let mask: RnsPolynomial

    init(context: RlweContext, seed: Seed128, body: RnsPolynomial) {
        self.context = context
        self.seed = seed
        self.body = body
        var generator = CSPRNG(seed: seed, domain: "rlwe.pk.mask")
        mask = Sampling.uniform(limbs: context.maximumLevel, degree: context.polynomialSize,
                                moduli: { context.ciphertextTables[$0].modulus }, using: &generator)
    }
}

/// A hybrid key-switching key from s′ to s: Q splits into digits D_j of α primes, and for each
/// digit, over Q·P in the NTT domain,
///     b_j = −a_j·s + e_j + [P]_(q_i)·s′ on the limbs i of D_j only,  a_j uniform,
/// because P·E_j, with E_j the CRT idempotent of D_j (1 mod its primes, 0 mod the others), is
/// P mod q_i ∈ D_j and 0 mod every other prime. Switching Σ_j [c]_(D_j)·(b_j, a_j) then dividing
/// by P leaves c·s′ + Σ_j [c]_(D_j)·e_j/P: a digit's error is divided by P ≥ the digit.
public struct KeySwitchingKey: Sendable {
    public let context: RlweContext
    /// The seed of every a_i.
    public let seed: Seed128
    /// b_0 … b_(dnum−1), each L + α limbs (special primes last), one flat array.
    let bodyWords: [UInt64]
    /// a_0 … a_(L−1), expanded from the seed, laid out as the bodies.
    let maskWords: [UInt64]

    init(context: RlweContext, seed: Seed128, bodies: [RnsPolynomial]) {
        self.context = context
        self.seed = seed
        bodyWords = bodies.flatMap(\.words)
        maskWords = Self.expandMasks(context: context, seed: seed).flatMap(\.words)
    }

    static func expandMasks(context: RlweContext, seed: Seed128) -> [RnsPolynomial] {
        var generator = CSPRNG(seed: seed, domain: "rlwe.ksk.mask")
        let levels = context.maximumLevel
        return (0..<context.digitCount).map { _ in
            Sampling.uniform(limbs: levels + context.specialCount, degree: context.polynomialSize,
                             moduli: { context.tables(limb: $0, level: levels).modulus }, using: &generator)
        }
    }

    /// The key from `target` (s′, NTT over Q·P) to `secret`'s s.
    static func make(switching target: RnsPolynomial, to secret: SecretKey, seed: Seed128,
                     noise: inout CSPRNG) -> KeySwitchingKey {
        let context = secret.context, levels = context.maximumLevel, n = context.polynomialSize
        let masks = expandMasks(context: context, seed: seed)
        let modulus = { (i: Int) in context.tables(limb: i, level: levels).modulus }
        var bodies: [RnsPolynomial] = []
        for j in 0..<context.digitCount {
            var b = Sampling.lift(Sampling.gaussian(count: n, using: &noise), limbs: levels + context.specialCount, moduli: modulus)
            PolynomialArithmetic.forward(&b) { context.tables(limb: $0, level: levels) }
            var aTimesS = masks[j]
            PolynomialArithmetic.multiply(&aTimesS, secret.ntt, moduli: modulus)
            PolynomialArithmetic.subtract(&b, aTimesS, moduli: modulus)
            b.words.withUnsafeMutableBufferPointer { body in
                target.words.withUnsafeBufferPointer { t in
                    for i in context.digitPrimes(j) {
                        let q = context.ciphertextTables[i].modulus, p = context.specialModQ[i]
                        for k in (i * n)..<((i + 1) * n) { body[k] = q.add(body[k], q.multiply(t[k], p)) }
                    }
                }
            }
            bodies.append(b)
        }
        return KeySwitchingKey(context: context, seed: seed, bodies: bodies)
    }
}

/// What the server needs to compute: a relinearization key and the Galois keys of the
/// rotations the client chose. Contains no secret.
public struct EvaluationKey: Sendable {
    public let context: RlweContext
    /// s² → s, for ciphertext multiplication.
    public let relinearization: KeySwitchingKey?
    /// σ_g(s) → s for each Galois element g.
    public let galois: [Int: KeySwitchingKey]

    /// Keys made by ``KeyGenerator`` for `context`; a key of another context, or an element that is
    /// not odd in (1, 2N), is refused.
    public init(context: RlweContext, relinearization: KeySwitchingKey?, galois: [Int: KeySwitchingKey]) throws(RlweError) {
        guard relinearization.map({ $0.context === context }) ?? true,
              galois.values.allSatisfy({ $0.context === context }) else { throw .contextMismatch }
        for g in galois.keys where g & 1 == 0 || g <= 1 || g >= 2 * context.polynomialSize {
            throw .invalidParameters("Galois element \(g): elements are odd, above 1 and below 2N")
        }
        self.context = context
        self.relinearization = relinearization
        self.galois = galois
    }
}

/// Makes public and evaluation keys from a secret key, its noise and seeds from a
/// ``LockedCSPRNG`` (no copy replays it, no two threads read it at once).
public final class KeyGenerator: Sendable {
    public let secretKey: SecretKey
    private let randomness: LockedCSPRNG

    public convenience init(secretKey: SecretKey) {
        self.init(secretKey: secretKey, randomness: CSPRNG.fromSystemEntropy(domain: "rlwe.keygen"))
    }

    /// A fixed stream, for known-answer tests only.
    init(secretKey: SecretKey, randomness: CSPRNG) {
        self.secretKey = secretKey
        self.randomness = LockedCSPRNG(randomness)
    }

    private static func seed(_ generator: inout CSPRNG) -> Seed128 { Seed128(low: generator.next(), high: generator.next()) }

    /// A seeded public key (b, a) = (−a·s + e, a) mod Q, for ``PublicKeyEncryptor``.
    public func makePublicKey() -> PublicKey {
        let context = secretKey.context, levels = context.maximumLevel
        let (seed, error) = randomness.draw { (Self.seed(&$0), Sampling.gaussian(count: context.polynomialSize, using: &$0)) }
        let modulus = { (i: Int) in context.ciphertextTables[i].modulus }
        var generator = CSPRNG(seed: seed, domain: "rlwe.pk.mask")
        var aTimesS = Sampling.uniform(limbs: levels, degree: context.polynomialSize, moduli: modulus, using: &generator)
        PolynomialArithmetic.multiply(&aTimesS, secretKey.ntt, moduli: modulus)
        var b = Sampling.lift(error, limbs: levels, moduli: modulus)
        PolynomialArithmetic.forward(&b) { context.ciphertextTables[$0] }
        PolynomialArithmetic.subtract(&b, aTimesS, moduli: modulus)
        return PublicKey(context: context, seed: seed, body: b)
    }

    /// The key from s² to s that turns a product's three components back into two.
    public func makeRelinearizationKey() -> KeySwitchingKey {
        let context = secretKey.context, levels = context.maximumLevel
        var square = secretKey.ntt
        PolynomialArithmetic.multiply(&square, secretKey.ntt) { context.tables(limb: $0, level: levels).modulus }
        return randomness.draw { KeySwitchingKey.make(switching: square, to: secretKey, seed: Self.seed(&$0), noise: &$0) }
    }

    /// The key of Galois element g (odd, below 2N).
    public func makeGaloisKey(element g: Int) throws(RlweError) -> KeySwitchingKey {
        let context = secretKey.context
        guard g & 1 == 1 && g > 1 && g < 2 * context.polynomialSize else {
            throw .invalidParameters("Galois element \(g): elements are odd, above 1 and below 2N")
        }
        let rotated = PolynomialArithmetic.permute(secretKey.ntt, context.galoisPermutation(g))
        return randomness.draw { KeySwitchingKey.make(switching: rotated, to: secretKey, seed: Self.seed(&$0), noise: &$0) }
    }

    /// A relinearization key (unless `relinearization` is false) and the Galois keys of the
    /// given rotation steps (and of conjugation / row swap when asked).
    public func makeEvaluationKey(relinearization: Bool = true, rotations: [Int] = [],
                                  conjugation: Bool = false) -> EvaluationKey {
        let context = secretKey.context
        var elements = Set(rotations.map { context.galoisElement(rotatingBy: $0) })
        elements.remove(1)
        if conjugation { elements.insert(context.conjugationElement) }
        var galois: [Int: KeySwitchingKey] = [:]
        for g in elements.sorted() { galois[g] = try! makeGaloisKey(element: g) }  // 5^k and 2N − 1 are valid
        return try! EvaluationKey(context: context, relinearization: relinearization ? makeRelinearizationKey() : nil,
                                  galois: galois)  // made here for this context, with valid elements
    }
}
