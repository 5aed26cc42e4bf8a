import Crypto
import ObscuraMath

/// Everything precomputed for one parameter set: NTT tables for every prime, the RNS bases of
/// every level, base converters, and the scheme's constants. Built once, shared by reference
/// (immutable, `Sendable`); keys, plaintexts and ciphertexts carry the context they belong to.
///
/// Limb layout: a polynomial at level ℓ (ℓ = 1…L ciphertext primes) holds the residues mod
/// q_0…q_(ℓ−1); key-switching work appends the special primes p_0…p_(α−1) as limbs ℓ…ℓ+α−1;
/// BFV's multiplication appends the extension primes r_0…r_(K−1) (HPS, see ``BFVMultiplication``).
public final class RlweContext: Sendable {
    public let parameters: RlweParameters
    /// N.
    public let polynomialSize: Int
    /// L, the number of ciphertext primes (the top level).
    public let maximumLevel: Int
    /// The NTT tables of the ciphertext primes.
    public let ciphertextTables: [NTTTables]
    /// The NTT tables of the special primes.
    public let specialTables: [NTTTables]
    /// The RNS basis q_0…q_(ℓ−1) of every level ℓ (index ℓ − 1).
    public let levelBases: [RNSBasis]
    /// α, the primes per key-switching digit (the number of special primes, or 1 without any).
    public let digitSize: Int
    /// The number of special primes (0: BV key switching).
    public let specialCount: Int
    /// P^-1 mod q_i and [P]_(q_i).
    let specialInverse: [UInt64]
    let specialModQ: [UInt64]
    /// Key switching's mod down: [x]_P, centered, to every ciphertext prime (nil without P).
    let specialToCiphertext: BaseConverter?
    /// Key switching's mod up: digit j's first `count` primes to every prime of Q·P
    /// (limb order: q_0…q_(L−1), p_0…p_(α−1)), indexed [j][count − 1].
    let digitConverters: [[BaseConverter]]
    /// Rescaling from level ℓ (index ℓ − 2): q_(ℓ−1) to q_0…q_(ℓ−2), and q_(ℓ−1)^-1 mod each.
    let dropConverters: [BaseConverter]
    let dropInverses: [[UInt64]]
    /// CKKS's relinearize-and-rescale in one division (index ℓ − 2): q_(ℓ−1)·P to
    /// q_0…q_(ℓ−2), and (q_(ℓ−1)·P)^-1 mod each.
    let fusedDropConverters: [BaseConverter]
    let fusedDropInverses: [[UInt64]]
    /// bit reversal of log2 N bits.
    let bitReversal: [Int]
    /// 0..<N: the inner product's reading order when no Galois permutation applies.
    let identityPermutation: [Int]
    /// A 64-bit fingerprint of the parameters, written in every serialized object.
    public let fingerprint: UInt64
    /// BFV-only precomputation.
    let bfv: BFVConstants?

    /// Precomputes everything for `parameters` (a few milliseconds at N = 16384); build one per
    /// parameter set and share it.
    public init(parameters: RlweParameters) {
        self.parameters = parameters
        let n = parameters.polynomialSize
        polynomialSize = n
        maximumLevel = parameters.ciphertextModuli.count
        let moduli = parameters.ciphertextModuli.map(Modulus.init)
        ciphertextTables = moduli.map { NTTTables(polynomialSize: n, modulus: $0) }
        let special = parameters.specialModuli.map(Modulus.init)
        specialTables = special.map { NTTTables(polynomialSize: n, modulus: $0) }
        levelBases = (1...moduli.count).map { RNSBasis(Array(moduli.prefix($0))) }
        let alpha = Swift.max(1, special.count)
        digitSize = alpha
        specialCount = special.count
        let pModQ = moduli.map { q in special.reduce(UInt64(1)) { q.multiply($0, q.reduce($1.value)) } }
        specialModQ = pModQ
        specialInverse = zip(moduli, pModQ).map { $0.inverse($1) }
        specialToCiphertext = special.isEmpty ? nil : BaseConverter(from: RNSBasis(special), to: moduli)
        let everyPrime = moduli + special
        digitConverters = stride(from: 0, to: moduli.count, by: alpha).map { first in
            (1...Swift.min(alpha, moduli.count - first)).map { count in
                BaseConverter(from: RNSBasis(Array(moduli[first..<(first + count)])), to: everyPrime)
            }
        }
        dropConverters = (1..<moduli.count).map { last in BaseConverter(from: RNSBasis([moduli[last]]), to: Array(moduli[..<last])) }
        dropInverses = (1..<moduli.count).map { last in moduli[..<last].map { $0.inverse($0.reduce(moduli[last].value)) } }
        fusedDropConverters = special.isEmpty ? [] : (1..<moduli.count).map { last in
            BaseConverter(from: RNSBasis([moduli[last]] + special), to: Array(moduli[..<last]))
        }
        fusedDropInverses = special.isEmpty ? [] : (1..<moduli.count).map { last in
            moduli[..<last].enumerated().map { i, q in q.inverse(q.multiply(q.reduce(moduli[last].value), pModQ[i])) }
        }
        let logN = n.trailingZeroBitCount
        bitReversal = (0..<n).map { NTTTables.reverse($0, bits: logN) }
        identityPermutation = Array(0..<n)
        fingerprint = Self.fingerprint(of: parameters)
        if case .bfv(let t) = parameters.scheme {
            bfv = BFVConstants(plaintextModulus: t, moduli: moduli, levelBases: levelBases, polynomialSize: n)
        } else {
            bfv = nil
        }
    }

    /// The tables of limb i at level ℓ when the special primes follow as limbs ℓ….
    func tables(limb i: Int, level: Int) -> NTTTables {
        i < level ? ciphertextTables[i] : specialTables[i - level]
    }

    /// dnum, the number of key-switching digits at the top level.
    public var digitCount: Int { (maximumLevel + digitSize - 1) / digitSize }

    /// The ciphertext primes of digit j (at level ℓ, those below ℓ).
    func digitPrimes(_ j: Int, level: Int? = nil) -> Range<Int> {
        (j * digitSize)..<Swift.min((j + 1) * digitSize, level ?? maximumLevel)
    }

    /// The position of limb i of a level-ℓ key-switching polynomial among all L + α primes.
    func primeIndex(limb i: Int, level: Int) -> Int {
        i < level ? i : maximumLevel + i - level
    }

    /// Whether this is BFV.
    public var isBFV: Bool { bfv != nil }

    /// BFV's constants, once `message` is checked to be N coefficients below t.
    func bfvConstants(checking message: BFVPlaintext) throws(RlweError) -> BFVConstants {
        guard let bfv else { throw .wrongScheme("a BFV plaintext needs a BFV parameter set") }
        guard message.coefficients.count == polynomialSize,
              message.coefficients.allSatisfy({ $0 < bfv.plaintextModulus.value }) else {
            throw .invalidEncoding("a BFV plaintext has N coefficients below t")
        }
        return bfv
    }

    /// SHA-256 of a canonical description, first 8 bytes.
    public static func fingerprint(of p: RlweParameters) -> UInt64 {
        var words: [UInt64] = [UInt64(p.polynomialSize), UInt64(p.securityBits), UInt64(p.specialModuli.count)]
        words += p.specialModuli
        switch p.scheme {
        case .bfv(let t): words += [1, t]
        case .ckks(let s): words += [2, UInt64(s)]
        }
        words += p.ciphertextModuli
        var hasher = SHA256()
        hasher.update(data: Array("obscura.rlwe.parameters.v1".utf8))
        for w in words { withUnsafeBytes(of: w.littleEndian) { hasher.update(bufferPointer: $0) } }
        return hasher.finalize().withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }

    /// The permutation of NTT-domain indices that applies X → X^g: σ_g(a) at output index i is
    /// a at index perm[i], because a(X^g) at ψ^e is a at ψ^(g·e).
    func galoisPermutation(_ g: Int) -> [Int] {
        let n = polynomialSize, twoN = 2 * n
        var perm = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let e = 2 * bitReversal[i] + 1
            let image = (g * e) % twoN
            perm[i] = bitReversal[(image - 1) / 2]
        }
        return perm
    }

    /// The Galois element of a rotation of the slots by `steps` to the left: 5^steps mod 2N
    /// (BFV: within each of the two rows of N/2 slots).
    public func galoisElement(rotatingBy steps: Int) -> Int {
        let half = polynomialSize / 2, twoN = 2 * polynomialSize
        var k = steps % half
        if k < 0 { k += half }
        var g = 1
        for _ in 0..<k { g = g * 5 % twoN }
        return g
    }

    /// The Galois element of conjugation (CKKS) or of swapping the two rows (BFV): 2N − 1.
    public var conjugationElement: Int { 2 * polynomialSize - 1 }
}

/// BFV's constants: Δ = ⌊Q_ℓ/t⌋ per level, the HPS extension basis and converters.
struct BFVConstants: Sendable {
    let plaintextModulus: Modulus
    let plaintextTables: NTTTables
    /// [Δ_ℓ]_(q_i) for level ℓ (index ℓ − 1).
    let delta: [[UInt64]]
    /// The extension primes R (61 bits, R > 2N·Q) and their tables.
    let extensionTables: [NTTTables]
    let extensionBasis: RNSBasis
    /// Per level: Q_ℓ → R and R → Q_ℓ converters, [Q_ℓ^-1]_(r_j).
    let toExtension: [BaseConverter]
    let fromExtension: [BaseConverter]
    let productInverseModExtension: [[UInt64]]
    /// The slot of each NTT-domain index mod t: slot s holds the value at index slotIndex[s].
    let slotIndex: [Int]

    init(plaintextModulus t: UInt64, moduli: [Modulus], levelBases: [RNSBasis], polynomialSize n: Int) {
        let tm = Modulus(t)
        plaintextModulus = tm
        plaintextTables = NTTTables(polynomialSize: n, modulus: tm)
        delta = levelBases.map { basis in
            let d = basis.product.quotientAndRemainder(dividingBy: t).quotient
            return basis.moduli.map { d.remainder(dividingBy: $0.value) }
        }
        // R must hold a = (x − [x]_Q)/Q for tensor products x of centered ciphertexts:
        // |x| ≤ N·Q²/2, so |a| ≤ N·Q/2 + 1 and R > 2^(log2 Q + log2 N + 2) suffices.
        let needed = levelBases.last!.logProduct + Double(n.trailingZeroBitCount) + 2
        let count = Int((needed / 60.5).rounded(.up))
        let used = Set(moduli.map(\.value) + [t])
        let extensionPrimes = NTTPrimes.generate(count: count, bits: 61, polynomialSize: n, excluding: used)
            .map(Modulus.init)
        extensionTables = extensionPrimes.map { NTTTables(polynomialSize: n, modulus: $0) }
        let r = RNSBasis(extensionPrimes)
        precondition(r.logProduct >= needed, "extension basis too small")
        extensionBasis = r
        toExtension = levelBases.map { BaseConverter(from: $0, to: extensionPrimes) }
        fromExtension = levelBases.map { BaseConverter(from: r, to: $0.moduli) }
        productInverseModExtension = levelBases.map { basis in
            extensionPrimes.map { p in p.inverse(basis.moduli.reduce(UInt64(1)) { p.multiply($0, p.reduce($1.value)) }) }
        }
        // Slot s < N/2 sits at exponent 5^s, slot N/2 + s at −5^s (mod 2N).
        let logN = n.trailingZeroBitCount
        var indexOfExponent = [Int](repeating: 0, count: 2 * n)
        for i in 0..<n { indexOfExponent[2 * NTTTables.reverse(i, bits: logN) + 1] = i }
        var slots = [Int](repeating: 0, count: n)
        var e = 1
        for s in 0..<(n / 2) {
            slots[s] = indexOfExponent[e]
            slots[n / 2 + s] = indexOfExponent[2 * n - e]
            e = e * 5 % (2 * n)
        }
        slotIndex = slots
    }
}
