#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An RLWE parameter set: the ring Z_Q[X]/(X^N + 1) with Q a product of word-sized NTT primes,
/// special primes P = p_0·…·p_(α−1) for key switching, the scheme and its plaintext space.
///
/// Key switching is hybrid (Han and Ki, eprint 2019/688): Q splits into digits of α primes, as
/// many as P has, so P — whose primes are at least as large as any ciphertext prime — exceeds
/// every digit. α = 1 is SEAL's construction (every prime a digit); a larger α trades modulus
/// for fewer NTTs per key switch. BFV may have no special prime: BV key switching (OpenFHE's
/// BFV default), every prime a digit and no division by P, which adds about q_i·√N·σ of noise
/// per key switch — affordable for BFV's budget, never for CKKS's precision.
///
/// **Security.** Secrets are uniform ternary, errors a discrete Gaussian of σ = 3.2 (bounded at
/// 6σ). A set is accepted only if log2(Q·P) is within the Homomorphic Encryption Standard's
/// 128-bit classical bound for ternary secrets at its N (Albrecht et al., "Homomorphic
/// Encryption Standard", 2018, Table 1; the same numbers as SEAL `util/hestdparms.h` and OpenFHE
/// `stdlatticeparms.cpp`): P counts, because key-switching keys are RLWE samples modulo Q·P.
/// The one exception is ``insecureTestOnly(scheme:polynomialSize:ciphertextModulusBits:specialModulusBits:)``,
/// which nothing selects by default.
public struct RlweParameters: Sendable, Hashable, CustomStringConvertible {
    /// The scheme and its plaintext space.
    public enum Scheme: Sendable, Hashable {
        /// BFV: exact arithmetic mod t in N slots (t prime, t ≡ 1 mod 2N).
        case bfv(plaintextModulus: UInt64)
        /// CKKS: approximate complex arithmetic in N/2 slots, fresh values scaled by 2^logScale.
        case ckks(logScale: Int)
    }

    /// Whether the set meets the 128-bit bound or is the named insecure test set.
    public enum Security: Sendable, Hashable {
        /// log2(QP) ≤ `maximumLogModulus`, the standard's 128-bit bound at this N.
        case classical128(maximumLogModulus: Int)
        /// Too small to be secure: for fast tests only.
        case insecureTestOnly
    }

    /// The standard's largest log2(QP) for 128-bit classical security, ternary secrets.
    public static let maximumLogModulus128: [Int: Int] = [
        1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881,
    ]

    /// The error's standard deviation (the standard's σ ≈ 3.2, as in SEAL and Lattigo).
    public static let errorStandardDeviation = 3.2

    public let scheme: Scheme
    /// N.
    public let polynomialSize: Int
    /// The ciphertext primes q_0 … q_(L−1); a rescale or modulus switch drops the last.
    public let ciphertextModuli: [UInt64]
    /// The key-switching primes, each at least as large as every ciphertext prime; their count
    /// is the number of ciphertext primes per key-switching digit (BFV: may be empty).
    public let specialModuli: [UInt64]
    public let security: Security

    /// A 128-bit set from explicit primes; throws if a prime is unfit or log2(QP) exceeds the bound.
    public init(scheme: Scheme, polynomialSize n: Int, ciphertextModuli: [UInt64], specialModuli: [UInt64]) throws(RlweError) {
        guard let bound = Self.maximumLogModulus128[n], (4096...32768).contains(n) else {
            throw .insecureParameters("N = \(n): 128-bit sets have N from 4096 to 32768")
        }
        try self.init(scheme: scheme, polynomialSize: n, ciphertextModuli: ciphertextModuli,
                      specialModuli: specialModuli, security: .classical128(maximumLogModulus: bound))
        let logQP = logKeySwitchingModulus
        guard logQP <= Double(bound) else {
            throw .insecureParameters("log2(QP) = \(logQP.formatted1) exceeds \(bound), the HE standard's 128-bit bound at N = \(n)")
        }
    }

    private init(scheme: Scheme, polynomialSize n: Int, ciphertextModuli: [UInt64], specialModuli: [UInt64],
                 security: Security) throws(RlweError) {
        guard n >= 8, n & (n - 1) == 0 else { throw .invalidParameters("N = \(n) is not a power of two ≥ 8") }
        guard !ciphertextModuli.isEmpty, ciphertextModuli.count <= 30 else {
            throw .invalidParameters("1 to 30 ciphertext primes")
        }
        guard specialModuli.count <= ciphertextModuli.count else { throw .invalidParameters("at most L special primes") }
        if case .ckks = scheme, specialModuli.isEmpty {
            throw .invalidParameters("CKKS needs a special prime: key switching without one would swamp the scaled message")
        }
        let all = ciphertextModuli + specialModuli
        guard Set(all).count == all.count else { throw .invalidParameters("the primes are not distinct") }
        for q in all {
            guard q < 1 << 61, NTTPrimes.isPrime(q), q % UInt64(2 * n) == 1 else {
                throw .invalidParameters("\(q) is not a prime ≡ 1 mod 2N below 2^61")
            }
        }
        guard specialModuli.allSatisfy({ $0 >= ciphertextModuli.max()! }) else {
            throw .invalidParameters("the special primes must be at least the largest ciphertext prime")
        }
        switch scheme {
        case .bfv(let t):
            guard t >= 2, t < 1 << 61, NTTPrimes.isPrime(t), t % UInt64(2 * n) == 1, !all.contains(t) else {
                throw .invalidParameters("the plaintext modulus \(t) is not a batching prime (t ≡ 1 mod 2N)")
            }
            guard t < ciphertextModuli[0] else {
                throw .invalidParameters("the plaintext modulus \(t) must be below the first ciphertext prime (Δ = ⌊q_0/t⌋ at level 1)")
            }
        case .ckks(let logScale):
            guard logScale >= 10, Double(logScale) < log2(Double(ciphertextModuli[0])) else {
                throw .invalidParameters("the scale 2^\(logScale) must be below the first prime")
            }
        }
        self.scheme = scheme
        polynomialSize = n
        self.ciphertextModuli = ciphertextModuli
        self.specialModuli = specialModuli
        self.security = security
    }

    /// log2 Q.
    public var logModulus: Double { ciphertextModuli.reduce(0) { $0 + log2(Double($1)) } }

    /// log2(Q·P), what the security bound limits.
    public var logKeySwitchingModulus: Double { specialModuli.reduce(logModulus) { $0 + log2(Double($1)) } }

    /// α, the ciphertext primes per key-switching digit.
    public var digitSize: Int { Swift.max(1, specialModuli.count) }

    /// The claimed security in bits (0 for the insecure test set).
    public var securityBits: Int {
        if case .insecureTestOnly = security { return 0 }
        return 128
    }

    /// The number of slots: N (BFV) or N/2 (CKKS).
    public var slotCount: Int {
        switch scheme {
        case .bfv: polynomialSize
        case .ckks: polynomialSize / 2
        }
    }

    public var description: String {
        let scheme = switch self.scheme {
        case .bfv(let t): "BFV t=\(t)"
        case .ckks(let s): "CKKS scale=2^\(s)"
        }
        let bits = ciphertextModuli.map { String(64 - $0.leadingZeroBitCount) }.joined(separator: "+")
        let level = securityBits == 0 ? "INSECURE test set" : "128-bit"
        let special = specialModuli.isEmpty ? "no P (BV key switching)"
            : "P=" + specialModuli.map { String(64 - $0.leadingZeroBitCount) }.joined(separator: "+") + " bits"
        return "\(scheme) N=\(polynomialSize) Q=\(bits) bits \(special) (\(level))"
    }

    // MARK: Named sets

    /// A 128-bit set with primes generated for N: `bits` gives each ciphertext prime's size.
    public static func generated(scheme: Scheme, polynomialSize n: Int, ciphertextModulusBits bits: [Int],
                                 specialModulusBits: [Int]) throws(RlweError) -> RlweParameters {
        let (q, p) = try primes(bits: bits, special: specialModulusBits, n: n, scheme: scheme)
        return try RlweParameters(scheme: scheme, polynomialSize: n, ciphertextModuli: q, specialModuli: p)
    }

    /// BFV, N = 8192, t = 65537: Q = 3 × 54 bits (162 ≤ 218), BV key switching; depth 3.
    public static let bfvN8192: RlweParameters = {
        try! generated(scheme: .bfv(plaintextModulus: 65537), polynomialSize: 8192,
                       ciphertextModulusBits: [54, 54, 54], specialModulusBits: [])
    }()

    /// BFV, N = 16384, t = 65537: Q = 6 × 54 bits, P = 2 × 55 bits (434 ≤ 438), digits of two primes.
    public static let bfvN16384: RlweParameters = {
        try! generated(scheme: .bfv(plaintextModulus: 65537), polynomialSize: 16384,
                       ciphertextModulusBits: [54, 54, 54, 54, 54, 54], specialModulusBits: [55, 55])
    }()

    /// CKKS, N = 8192, scale 2^40: Q = 60 + 2 × 40 bits, P = 60 bits (200 ≤ 218); depth 2.
    public static let ckksN8192: RlweParameters = {
        try! generated(scheme: .ckks(logScale: 40), polynomialSize: 8192,
                       ciphertextModulusBits: [60, 40, 40], specialModulusBits: [60])
    }()

    /// CKKS, N = 16384, scale 2^40: Q = 60 + 5 × 40 bits, P = 2 × 60 bits (380 ≤ 438), digits of
    /// two primes; depth 5, OpenFHE's benchmark shape (which also uses three digits).
    public static let ckksN16384: RlweParameters = {
        try! generated(scheme: .ckks(logScale: 40), polynomialSize: 16384,
                       ciphertextModulusBits: [60, 40, 40, 40, 40, 40], specialModulusBits: [60, 60])
    }()

    /// A small, **insecure** set for fast tests: any N ≥ 8, generated primes. Never a default.
    public static func insecureTestOnly(scheme: Scheme, polynomialSize n: Int, ciphertextModulusBits bits: [Int],
                                        specialModulusBits: [Int]) throws(RlweError) -> RlweParameters {
        let (q, p) = try primes(bits: bits, special: specialModulusBits, n: n, scheme: scheme)
        return try RlweParameters(scheme: scheme, polynomialSize: n, ciphertextModuli: q, specialModuli: p,
                                  security: .insecureTestOnly)
    }

    /// Generated primes: the largest of each size ≡ 1 mod 2N, distinct from each other and t.
    private static func primes(bits: [Int], special: [Int], n: Int, scheme: Scheme) throws(RlweError) -> ([UInt64], [UInt64]) {
        guard n >= 8, n & (n - 1) == 0, n <= 1 << 17 else { throw .invalidParameters("N = \(n) is not a power of two from 8 to 2^17") }
        guard bits.count <= 30, special.count <= 30 else { throw .invalidParameters("at most 30 primes of each kind") }
        var used: Set<UInt64> = []
        if case .bfv(let t) = scheme { used.insert(t) }
        func next(_ b: Int) throws(RlweError) -> UInt64 {
            guard let prime = NTTPrimes.generate(count: 1, bits: b, polynomialSize: n, excluding: used).first else {
                throw .invalidParameters("no further \(b)-bit prime ≡ 1 mod \(2 * n); sizes run up to 61 bits")
            }
            used.insert(prime)
            return prime
        }
        var p: [UInt64] = [], q: [UInt64] = []
        for b in special { p.append(try next(b)) }
        for b in bits { q.append(try next(b)) }
        return (q, p)
    }
}

extension Double {
    var formatted1: String { String(Double(Int((self * 10).rounded())) / 10) }
}
