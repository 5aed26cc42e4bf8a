#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ObscuraMath
import Testing
@testable import RLWE

/// The distributions, the measured noise against the predicted, and the 128-bit rule.
struct NoiseAndSecurityTests {
    @Test("The discrete Gaussian has σ = 3.2, mean 0 and support within 6σ; ternary is uniform")
    func distributions() {
        var generator = CSPRNG(seed: Seed128(low: 1, high: 2), domain: "test")
        let count = 400_000
        let samples = Sampling.gaussian(count: count, using: &generator)
        let mean = Double(samples.reduce(0, +)) / Double(count)
        let variance = samples.reduce(0.0) { $0 + Double($1 * $1) } / Double(count) - mean * mean
        let sigma2 = RlweParameters.errorStandardDeviation * RlweParameters.errorStandardDeviation
        // Five standard errors: σ/√n for the mean, σ²·√(2/n) for the variance.
        #expect(abs(mean) < 5 * 3.2 / Double(count).squareRoot())
        #expect(abs(variance - sigma2) < 5 * sigma2 * (2 / Double(count)).squareRoot(), "variance \(variance)")
        #expect(samples.allSatisfy { abs($0) <= 19 })
        // Every value within ±12 is drawn (|x| = 12 has probability ≈ 2·10^-4 each side).
        #expect(Set(samples).isSuperset(of: -12...12))
        let ternary = Sampling.ternary(count: count, using: &generator)
        for v: Int8 in [-1, 0, 1] {
            let share = Double(ternary.filter { $0 == v }.count) / Double(count)
            #expect(abs(share - 1.0 / 3) < 5 * (2.0 / 9 / Double(count)).squareRoot())
        }
    }

    /// The variance of the phase coefficients of an encryption of zero.
    static func phaseVariance(_ ct: Ciphertext, _ decryptor: Decryptor) throws -> Double {
        let phase = try decryptor.decryptApproximate(ct).map { $0 * ct.scale }
        return phase.reduce(0) { $0 + $1 * $1 } / Double(phase.count)
    }

    @Test("Fresh and key-switched noise match the predicted variance (digits of one and of two primes)",
          arguments: [RlweParameters.ckksN8192, .ckksN16384])
    func keySwitchingNoise(parameters: RlweParameters) throws {
        let context = RlweContext(parameters: parameters)
        let secret = SecretKey(context: context)
        let decryptor = Decryptor(secretKey: secret)
        let keys = KeyGenerator(secretKey: secret).makeEvaluationKey(rotations: [1])
        let evaluator = try Evaluator(context: context, key: keys)
        let n = context.polynomialSize
        let zero = Plaintext(context: context, polynomial: RnsPolynomial(degree: n, limbs: context.maximumLevel), scale: 1)
        let fresh = try Encryptor(secretKey: secret).encrypt(zero).expanded()
        let sigma2 = 3.2 * 3.2
        let freshVariance = try Self.phaseVariance(fresh, decryptor)
        // N coefficients: the sample variance's relative standard error is √(2/N), 1.1-1.6%.
        #expect(abs(freshVariance / sigma2 - 1) < 0.08, "fresh variance \(freshVariance)")
        // A rotation adds Σ_j [c_1]_(D_j)·e_j / P (digit j uniform modulo its primes' product
        // D_j: variance D_j²/12) and the rounding of the division by P in both components
        // (ε_0 + ε_1·s, s ternary: variance 2/3 a coefficient).
        let logP = parameters.specialModuli.reduce(0.0) { $0 + log2(Double($1)) }
        var digitTerm = 0.0
        for j in 0..<context.digitCount {
            let logD = context.digitPrimes(j).reduce(0.0) { $0 + log2(Double(parameters.ciphertextModuli[$1])) }
            digitTerm += Double(n) * sigma2 / 12 * exp2(2 * (logD - logP))
        }
        let rounding = (1 + Double(n) * 2 / 3) / 12
        let predicted = sigma2 + digitTerm + rounding
        let rotated = try Self.phaseVariance(evaluator.rotate(fresh, by: 1), decryptor)
        print("noise variance at N = \(n): fresh \(freshVariance) (σ² = \(sigma2)); after a key switch \(rotated), predicted \(predicted)")
        #expect(abs(rotated / predicted - 1) < 0.1)
    }

    @Test("Parameter sets above the HE standard's 128-bit bound are refused")
    func securityBounds() throws {
        for set in [RlweParameters.bfvN8192, .bfvN16384, .ckksN8192, .ckksN16384] {
            #expect(set.securityBits == 128)
            guard case .classical128(let bound) = set.security else { Issue.record("\(set)"); continue }
            #expect(set.logKeySwitchingModulus <= Double(bound))
        }
        // N = 8192 holds 218 bits: four 60-bit primes (Q + P = 240) are refused …
        #expect(throws: RlweError.self) {
            try RlweParameters.generated(scheme: .ckks(logScale: 40), polynomialSize: 8192,
                                         ciphertextModulusBits: [60, 60, 60], specialModulusBits: [60])
        }
        // … as is any N below 4096, whatever the modulus.
        #expect(throws: RlweError.self) {
            try RlweParameters.generated(scheme: .bfv(plaintextModulus: 12289), polynomialSize: 2048,
                                         ciphertextModulusBits: [20], specialModulusBits: [21])
        }
        let insecure = try RlweParameters.insecureTestOnly(scheme: .ckks(logScale: 30), polynomialSize: 64,
                                                           ciphertextModulusBits: [40], specialModulusBits: [41])
        #expect(insecure.securityBits == 0 && insecure.security == .insecureTestOnly)
        #expect(insecure.description.contains("INSECURE"))
        // Impossible prime sizes and Galois elements are errors, not traps.
        for bits in [[62], [1], [12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12]] {
            #expect(throws: RlweError.self) {
                try RlweParameters.insecureTestOnly(scheme: .ckks(logScale: 10), polynomialSize: 1024,
                                                    ciphertextModulusBits: bits, specialModulusBits: [13])
            }
        }
        let small = RlweContext(parameters: insecure)
        for g in [0, 1, 2, 128, -3] {
            #expect(throws: RlweError.self) { try KeyGenerator(secretKey: SecretKey(context: small)).makeGaloisKey(element: g) }
        }
        // Unfit primes and plaintext moduli are named.
        #expect(throws: RlweError.self) {
            try RlweParameters(scheme: .bfv(plaintextModulus: 65537), polynomialSize: 8192,
                               ciphertextModuli: [(1 << 50) + 1], specialModuli: [(1 << 61) - 1])
        }
        #expect(throws: RlweError.self) {
            try RlweParameters.generated(scheme: .bfv(plaintextModulus: 65539), polynomialSize: 8192,
                                         ciphertextModulusBits: [54], specialModulusBits: [55])
        }
    }

    @Test("Known answers: fixed seeds give fixed bytes, and the bytes decrypt")
    func knownAnswers() throws {
        let context = RlweContext(parameters: try .insecureTestOnly(
            scheme: .bfv(plaintextModulus: 65537), polynomialSize: 64, ciphertextModulusBits: [50, 50], specialModulusBits: [51]))
        var stream = CSPRNG(seed: Seed128(low: 0x0b5c_0a7a, high: 17), domain: "kat")
        let secret = SecretKey(context: context, coefficients: Sampling.ternary(count: 64, using: &stream))
        let encryptor = Encryptor(secretKey: secret, randomness: CSPRNG(seed: Seed128(low: 3, high: 4), domain: "kat.encrypt"))
        let encoder = try BatchEncoder(context: context)
        let ct = try encryptor.encrypt(encoder.encode((0..<64).map { Int64($0 * $0) - 1000 }))
        let bytes = ct.serialized()
        #expect(bytes.count == 16 + 1 + 8 + 16 + 2 * 64 * 50 / 8)
        #expect(Array(bytes.suffix(8)) == Self.knownTail, "tail \(Array(bytes.suffix(8)))")
        #expect(try encoder.decodeSigned(Decryptor(secretKey: secret).decrypt(ct.expanded())) == (0..<64).map { Int64($0 * $0) - 1000 })
    }

    static let knownTail: [UInt8] = [42, 97, 182, 226, 23, 14, 220, 40]
}

extension NoiseAndSecurityTests {
    @Test("Review findings: any NTT prime gets its root, CKKS refuses values that would wrap at a low level, keys must match the evaluator's context, t must be below q_0")
    func reviewFindings() throws {
        // 18014398485135361 is a 54-bit NTT prime whose smallest quadratic non-residue is 37.
        let q = Modulus(18_014_398_485_135_361)
        let tables = NTTTables(polynomialSize: 8192, modulus: q)
        #expect(q.power(tables.root, 8192) == q.value - 1)
        let ckks = RlweContext(parameters: .ckksN8192)
        let encoder = try CKKSEncoder(context: ckks)
        #expect(throws: RlweError.self) { try encoder.encode([Double](repeating: 1e6, count: encoder.slotCount), level: 1) }
        #expect(throws: Never.self) { try encoder.encode([Double](repeating: 1e6, count: encoder.slotCount), level: 3) }
        let other = RlweContext(parameters: try .insecureTestOnly(scheme: .ckks(logScale: 30), polynomialSize: 64,
                                                                  ciphertextModulusBits: [50, 35], specialModulusBits: [51]))
        let foreignKey = KeyGenerator(secretKey: SecretKey(context: other)).makeEvaluationKey(rotations: [1])
        #expect(throws: RlweError.contextMismatch) { try Evaluator(context: ckks, key: foreignKey) }
        #expect(throws: RlweError.self) {
            try RlweParameters.insecureTestOnly(scheme: .bfv(plaintextModulus: 12289), polynomialSize: 16,
                                                ciphertextModulusBits: [12], specialModulusBits: [])
        }
        // Signed reduction without a branch agrees with the obvious one at the extremes.
        for x: Int64 in [.min, .min + 1, -1, 0, 1, .max, -Int64(q.value), Int64(q.value)] {
            let expected = x >= 0 ? UInt64(x) % q.value : (q.value - x.magnitude % q.value) % q.value
            #expect(q.reduce(signed: x) == expected)
        }
    }
}
