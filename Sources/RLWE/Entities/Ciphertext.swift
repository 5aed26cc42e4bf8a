#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ObscuraMath

/// An RLWE ciphertext (c_0, c_1[, c_2]) at level ℓ, in the NTT domain mod q_0…q_(ℓ−1):
/// c_0 + c_1·s (+ c_2·s²) is Δ·m + e (BFV, Δ = ⌊Q_ℓ/t⌋) or m·scale + e (CKKS).
public struct Ciphertext: Sendable {
    public let context: RlweContext
    /// Two components, or three after a multiplication that was not relinearized.
    public internal(set) var components: [RnsPolynomial]
    /// CKKS: the scale of the message; BFV: 1.
    public internal(set) var scale: Double

    init(context: RlweContext, components: [RnsPolynomial], scale: Double) {
        self.context = context
        self.components = components
        self.scale = scale
    }

    /// ℓ, the number of ciphertext primes.
    public var level: Int { components[0].limbCount }

    /// 2, or 3 before relinearization.
    public var size: Int { components.count }

    /// log2 of the message's scale (CKKS; 0 for BFV).
    public var logScale: Double { log2(scale) }

    /// CKKS: log2(Q_ℓ) − log2(scale), the room left above the scaled message: a product needs
    /// about log2(scale) more bits before its rescale, and decryption needs the scaled values
    /// (plus noise) below Q_ℓ/2. Needs no secret key.
    public var headroomBits: Double { context.levelBases[level - 1].logProduct - logScale }
}

/// A ciphertext as the client uploads it: c_0 and the seed of c_1 = a (uniform in the NTT
/// domain), about half the bytes. Only secret-key encryptions have a seed.
public struct SeededCiphertext: Sendable {
    public let context: RlweContext
    public let seed: Seed128
    let body: RnsPolynomial
    public let scale: Double

    init(context: RlweContext, seed: Seed128, body: RnsPolynomial, scale: Double) {
        self.context = context
        self.seed = seed
        self.body = body
        self.scale = scale
    }

    public var level: Int { body.limbCount }

    static func mask(context: RlweContext, seed: Seed128, level: Int) -> RnsPolynomial {
        var generator = CSPRNG(seed: seed, domain: "rlwe.ct.mask")
        return Sampling.uniform(limbs: level, degree: context.polynomialSize,
                                moduli: { context.ciphertextTables[$0].modulus }, using: &generator)
    }

    /// The full ciphertext, its mask re-derived from the seed.
    public func expanded() -> Ciphertext {
        Ciphertext(context: context, components: [body, Self.mask(context: context, seed: seed, level: level)], scale: scale)
    }
}

/// A ring element in the NTT domain at level ℓ, ready to multiply or add into ciphertexts:
/// a CKKS encoding (values·scale), or a BFV plaintext lifted to (−t/2, t/2] for
/// multiplication (scale 1). Weights multiplied many times are ``prepared()`` once: Shoup
/// constants make each ct × pt product a third of the work of a 128-bit reduction.
public struct Plaintext: Sendable {
    public let context: RlweContext
    let polynomial: RnsPolynomial
    /// The Shoup constant of every word once prepared (empty before).
    let shoup: [UInt64]
    /// CKKS: the scale of the values; BFV: 1.
    public let scale: Double

    init(context: RlweContext, polynomial: RnsPolynomial, scale: Double) {
        self.context = context
        self.polynomial = polynomial
        self.scale = scale
        shoup = []
    }

    /// With the Shoup constants of every word, for repeated ct × pt products.
    public func prepared() -> Plaintext {
        isPrepared ? self : Plaintext(preparing: self)
    }

    /// Whether ``prepared()`` was applied.
    public var isPrepared: Bool { !shoup.isEmpty }

    private init(preparing plaintext: Plaintext) {
        let polynomial = plaintext.polynomial, context = plaintext.context
        self.context = context
        self.polynomial = polynomial
        scale = plaintext.scale
        let n = polynomial.degree, count = polynomial.words.count
        shoup = [UInt64](unsafeUninitializedCapacity: count) { constants, initialized in
            polynomial.words.withUnsafeBufferPointer { words in
                for i in 0..<polynomial.limbCount {
                    let m = context.ciphertextTables[i].modulus
                    for k in (i * n)..<((i + 1) * n) { constants[k] = m.shoup(words[k]) }
                }
            }
            initialized = count
        }
    }

    public var level: Int { polynomial.limbCount }
}

/// A BFV message: N coefficients mod t (what the batch encoder produces from N slots).
public struct BFVPlaintext: Sendable, Equatable {
    /// The coefficients, each in [0, t).
    public let coefficients: [UInt64]

    public init(coefficients: [UInt64]) { self.coefficients = coefficients }
}
