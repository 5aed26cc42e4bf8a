import ObscuraMath

/// Client-side encryption and decryption under a ``SecretKey``.
///
/// Holds two generators seeded from operating-system entropy: one draws the seeds of the
/// public masks, the other the secret noise. Both are buffered AES-CTR streams, so an
/// encryption makes no system call. They are ``LockedCSPRNG``s: every holder of an `Encryptor`
/// (or of a copy of a struct holding one) shares the one stream, which no copy can replay.
public final class Encryptor: Sendable {
    /// The key.
    public let secretKey: SecretKey
    private let seeds: LockedCSPRNG
    private let noise: LockedCSPRNG

    /// An encryptor with fresh generators.
    public init(secretKey: SecretKey) {
        self.secretKey = secretKey
        seeds = LockedCSPRNG(.fromSystemEntropy(domain: "encryptor.seeds"))
        noise = LockedCSPRNG(.fromSystemEntropy(domain: "encryptor.noise"))
    }

    /// An encryptor whose every output is determined by `seed`, for known-answer tests only
    /// (internal: a caller-chosen seed is not secret).
    init(secretKey: SecretKey, deterministicSeed seed: Seed128) {
        self.secretKey = secretKey
        seeds = LockedCSPRNG(CSPRNG(seed: seed, domain: "encryptor.seeds"))
        noise = LockedCSPRNG(CSPRNG(seed: seed, domain: "encryptor.noise"))
    }

    var parameters: TFHEParameters { secretKey.parameters }

    /// Encrypts an encoded torus plaintext, seeded (24 bytes to upload), under the big key with
    /// the GLWE noise, or under the small key with the key-switching key's noise: the two kinds
    /// of LWE samples the parameter set's security estimate covers.
    public func encryptSeeded(plaintext: UInt64, key: LweKey = .big) -> SeededLweCiphertext {
        let noiseLaw = key == .big ? parameters.glweNoise : parameters.lweNoise
        let seed = seeds.seed(), error = noise.draw { noiseLaw.sample(using: &$0) }
        let dimension = key.dimension(parameters)
        let mask = SeededLweCiphertext.mask(seed: seed, dimension: dimension)
        let dot = mask.withUnsafeBufferPointer { SecretKey.dot($0.baseAddress!, key == .big ? secretKey.bigKey : secretKey.smallKey) }
        return SeededLweCiphertext(seed: seed, body: dot &+ plaintext &+ error, dimension: dimension)
    }

    /// Encrypts an encoded torus plaintext under the big key.
    public func encrypt(plaintext: UInt64) -> LweCiphertext {
        encryptSeeded(plaintext: plaintext).expanded()
    }

    /// Encrypts a boolean as ±1/8.
    public func encrypt(bit: Bool) -> LweCiphertext {
        encrypt(plaintext: BooleanEncoding.encode(bit))
    }

    /// Encrypts an integer m ∈ [0, P) as m·Δ (one padding bit above the message).
    public func encrypt(integer m: Int) -> LweCiphertext {
        precondition(m >= 0 && m < parameters.plaintextModulus, "message outside [0, P)")
        return encrypt(plaintext: UInt64(m) &* parameters.delta)
    }

    /// Decrypts a boolean.
    public func decryptBit(_ ciphertext: LweCiphertext) -> Bool {
        BooleanEncoding.decode(secretKey.phase(ciphertext))
    }

    /// Decrypts an integer in [0, P), rounding the phase to the nearest multiple of Δ.
    public func decryptInteger(_ ciphertext: LweCiphertext) -> Int {
        IntegerEncoding.decode(secretKey.phase(ciphertext), plaintextModulus: parameters.plaintextModulus)
    }

    /// Decrypts a signed integer encoded with scale `delta` (the phase divided by Δ, rounded).
    public func decryptSigned(_ ciphertext: LweCiphertext, delta: UInt64) -> Int64 {
        IntegerEncoding.decodeSigned(secretKey.phase(ciphertext), delta: delta)
    }


}

/// Booleans as ±1/8 of the torus, the encoding of gate bootstrapping.
public enum BooleanEncoding {
    /// 1/8 of the torus.
    public static let eighth: UInt64 = 1 << 61

    /// true ↦ +1/8, false ↦ -1/8.
    public static func encode(_ bit: Bool) -> UInt64 { bit ? eighth : 0 &- eighth }

    /// A phase in (0, 1/2) is true.
    public static func decode(_ phase: UInt64) -> Bool { Int64(bitPattern: phase) > 0 }
}

/// Integers as multiples of Δ.
public enum IntegerEncoding {
    /// The nearest m with m·Δ ≈ phase, reduced modulo 2P (so a set padding bit shows as m ≥ P).
    public static func decode(_ phase: UInt64, plaintextModulus: Int) -> Int {
        let delta = (UInt64(1) << 63) / UInt64(plaintextModulus)
        let rounded = (phase &+ delta / 2) / delta
        return Int(rounded % UInt64(2 * plaintextModulus))
    }

    /// The nearest signed integer v with v·delta ≈ phase.
    public static func decodeSigned(_ phase: UInt64, delta: UInt64) -> Int64 {
        let signed = Double(Int64(bitPattern: phase)) / Double(delta)
        return Int64(signed.rounded())
    }
}
