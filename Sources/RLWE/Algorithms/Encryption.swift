import ObscuraMath

/// Secret-key encryption, seeded: c_1 = a comes from a fresh public seed, c_0 = −a·s + e + message.
/// Its noise and seeds come from a ``LockedCSPRNG``, which no copy can replay and no two threads
/// read at once.
public final class Encryptor: Sendable {
    public let secretKey: SecretKey
    private let randomness: LockedCSPRNG

    public convenience init(secretKey: SecretKey) {
        self.init(secretKey: secretKey, randomness: CSPRNG.fromSystemEntropy(domain: "rlwe.encrypt"))
    }

    /// A fixed stream, for known-answer tests only (internal: a caller-chosen seed is no secret).
    init(secretKey: SecretKey, randomness: CSPRNG) {
        self.secretKey = secretKey
        self.randomness = LockedCSPRNG(randomness)
    }

    /// A BFV message at level ℓ (default: the top).
    public func encrypt(_ message: BFVPlaintext, level: Int? = nil) throws(RlweError) -> SeededCiphertext {
        let context = secretKey.context
        let bfv = try context.bfvConstants(checking: message)
        let level = try checkedLevel(level, context)
        return randomness.draw {
            let e = Encryption.errorPlusScaledMessage(context: context, level: level, message: message.coefficients,
                                                      delta: bfv.delta[level - 1], noise: &$0)
            return seeded(e, level: level, scale: 1, using: &$0)
        }
    }

    /// A CKKS plaintext, at its level and scale.
    public func encrypt(_ plaintext: Plaintext) throws(RlweError) -> SeededCiphertext {
        let context = secretKey.context
        guard plaintext.context === context else { throw .contextMismatch }
        guard !context.isBFV else { throw .wrongScheme("BFV messages are BFVPlaintext values") }
        return randomness.draw {
            var e = Encryption.errorPlusScaledMessage(context: context, level: plaintext.level, message: nil, delta: [],
                                                      noise: &$0)
            PolynomialArithmetic.add(&e, plaintext.polynomial) { context.ciphertextTables[$0].modulus }
            return seeded(e, level: plaintext.level, scale: plaintext.scale, using: &$0)
        }
    }

    /// Draws a seed and builds the ciphertext.
    private func seeded(_ errorAndMessage: RnsPolynomial, level: Int, scale: Double,
                        using generator: inout CSPRNG) -> SeededCiphertext {
        let context = secretKey.context
        let seed = Seed128(low: generator.next(), high: generator.next())
        var aTimesS = SeededCiphertext.mask(context: context, seed: seed, level: level)
        let modulus = { (i: Int) in context.ciphertextTables[i].modulus }
        PolynomialArithmetic.multiply(&aTimesS, secretKey.ntt, moduli: modulus)
        var body = errorAndMessage
        PolynomialArithmetic.subtract(&body, aTimesS, moduli: modulus)
        return SeededCiphertext(context: context, seed: seed, body: body, scale: scale)
    }
}

/// Public-key encryption: (c_0, c_1) = (b·u + e_0 + message, a·u + e_1) for a ternary u, its
/// randomness from a ``LockedCSPRNG`` as ``Encryptor``'s is.
public final class PublicKeyEncryptor: Sendable {
    public let publicKey: PublicKey
    private let randomness = LockedCSPRNG(.fromSystemEntropy(domain: "rlwe.pk-encrypt"))

    public init(publicKey: PublicKey) {
        self.publicKey = publicKey
    }

    public func encrypt(_ message: BFVPlaintext) throws(RlweError) -> Ciphertext {
        let context = publicKey.context
        let bfv = try context.bfvConstants(checking: message)
        let level = context.maximumLevel
        return randomness.draw {
            let e0 = Encryption.errorPlusScaledMessage(context: context, level: level, message: message.coefficients,
                                                       delta: bfv.delta[level - 1], noise: &$0)
            return encrypt(e0, scale: 1, using: &$0)
        }
    }

    public func encrypt(_ plaintext: Plaintext) throws(RlweError) -> Ciphertext {
        let context = publicKey.context
        guard plaintext.context === context else { throw .contextMismatch }
        guard !context.isBFV else { throw .wrongScheme("BFV messages are BFVPlaintext values") }
        guard plaintext.level == context.maximumLevel else { throw .levelMismatch(plaintext.level, context.maximumLevel) }
        return randomness.draw {
            var e0 = Encryption.errorPlusScaledMessage(context: context, level: plaintext.level, message: nil, delta: [],
                                                       noise: &$0)
            PolynomialArithmetic.add(&e0, plaintext.polynomial) { context.ciphertextTables[$0].modulus }
            return encrypt(e0, scale: plaintext.scale, using: &$0)
        }
    }

    /// The rest of an encryption: u, e_1 and the products with the public key.
    private func encrypt(_ e0: RnsPolynomial, scale: Double, using randomness: inout CSPRNG) -> Ciphertext {
        let context = publicKey.context, levels = context.maximumLevel, n = context.polynomialSize
        let modulus = { (i: Int) in context.ciphertextTables[i].modulus }
        var u = Sampling.lift(Sampling.ternary(count: n, using: &randomness).map(Int64.init), limbs: levels, moduli: modulus)
        PolynomialArithmetic.forward(&u) { context.ciphertextTables[$0] }
        var c0 = e0
        PolynomialArithmetic.multiplyAdd(&c0, publicKey.body, u, moduli: modulus)
        var c1 = Encryption.errorPlusScaledMessage(context: context, level: levels, message: nil, delta: [], noise: &randomness)
        PolynomialArithmetic.multiplyAdd(&c1, publicKey.mask, u, moduli: modulus)
        return Ciphertext(context: context, components: [c0, c1], scale: scale)
    }
}

enum Encryption {
    /// NTT(e + Δ·m) at level ℓ: e Gaussian, m (if any) a BFV message with [Δ]_(q_i) per limb.
    static func errorPlusScaledMessage(context: RlweContext, level: Int, message: [UInt64]?, delta: [UInt64],
                                       noise: inout CSPRNG) -> RnsPolynomial {
        let n = context.polynomialSize
        let error = Sampling.gaussian(count: n, using: &noise)
        var poly = RnsPolynomial(degree: n, limbs: level)
        poly.words.withUnsafeMutableBufferPointer { out in
            for i in 0..<level {
                let m = context.ciphertextTables[i].modulus
                if let message {
                    let d = delta[i], dShoup = m.shoup(d)
                    for k in 0..<n {
                        out[i * n + k] = m.add(m.reduce(signed: error[k]), m.multiply(message[k], by: d, shoup: dShoup))
                    }
                } else {
                    for k in 0..<n { out[i * n + k] = m.reduce(signed: error[k]) }
                }
            }
        }
        PolynomialArithmetic.forward(&poly) { context.ciphertextTables[$0] }
        return poly
    }
}

func checkedLevel(_ level: Int?, _ context: RlweContext) throws(RlweError) -> Int {
    let l = level ?? context.maximumLevel
    guard (1...context.maximumLevel).contains(l) else { throw .levelMismatch(l, context.maximumLevel) }
    return l
}
