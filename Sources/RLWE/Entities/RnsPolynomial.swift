import ObscuraMath

/// A polynomial of Z_Q[X]/(X^N + 1) as residues: limb i holds the N coefficients (or NTT values)
/// mod the i-th prime of whatever basis the owner says (ciphertext primes, then P or R).
public struct RnsPolynomial: Sendable, Equatable {
    /// N.
    public let degree: Int
    /// limbCount × N words, limb-major.
    public internal(set) var words: [UInt64]

    /// Zero, with `limbs` limbs.
    public init(degree: Int, limbs: Int) {
        self.degree = degree
        words = [UInt64](repeating: 0, count: degree * limbs)
    }

    /// `limbs` limbs written by `body`, which must set every word (no zero fill first).
    init(degree: Int, limbs: Int, initializingWith body: (UnsafeMutablePointer<UInt64>) -> Void) {
        self.degree = degree
        words = [UInt64](unsafeUninitializedCapacity: degree * limbs) { buffer, count in
            body(buffer.baseAddress!)
            count = degree * limbs
        }
    }

    init(degree: Int, words: [UInt64]) {
        precondition(words.count % degree == 0)
        self.degree = degree
        self.words = words
    }

    /// The number of limbs.
    public var limbCount: Int { words.count / degree }

    /// Limb i's words.
    public func limb(_ i: Int) -> ArraySlice<UInt64> { words[(i * degree)..<((i + 1) * degree)] }

    /// The first `count` limbs (dropping the others).
    func prefix(limbs count: Int) -> RnsPolynomial {
        RnsPolynomial(degree: degree, words: Array(words[0..<(count * degree)]))
    }
}

/// Limb-wise arithmetic on NTT-domain (or coefficient) polynomials, each limb with its prime.
enum PolynomialArithmetic {
    /// Runs `body(limb, modulus, pointer)` on every limb of `a`, in parallel.
    static func forEachLimb(_ a: inout RnsPolynomial, tables: (Int) -> NTTTables,
                            _ body: (Int, NTTTables, UnsafeMutablePointer<UInt64>) -> Void) {
        let n = a.degree, limbs = a.limbCount
        a.words.withUnsafeMutableBufferPointer { buffer in
            let base = UnsafeMutableSendablePointer(buffer.baseAddress!)
            ParallelWork.forEach(limbs) { i in body(i, tables(i), base.pointer + i * n) }
        }
    }

    /// a ← a + b.
    static func add(_ a: inout RnsPolynomial, _ b: RnsPolynomial, moduli: (Int) -> Modulus) {
        elementwise(&a, b, limbs: a.limbCount, moduli: moduli) { m, x, y in m.add(x, y) }
    }

    /// a ← a − b.
    static func subtract(_ a: inout RnsPolynomial, _ b: RnsPolynomial, moduli: (Int) -> Modulus) {
        elementwise(&a, b, limbs: a.limbCount, moduli: moduli) { m, x, y in m.subtract(x, y) }
    }

    /// a ← a ⊙ b (pointwise: the ring product in the NTT domain).
    static func multiply(_ a: inout RnsPolynomial, _ b: RnsPolynomial, moduli: (Int) -> Modulus) {
        elementwise(&a, b, limbs: a.limbCount, moduli: moduli) { m, x, y in m.multiply(x, y) }
    }

    /// a ⊙ b over the first `limbs` limbs, into a new polynomial.
    static func product(_ a: RnsPolynomial, _ b: RnsPolynomial, limbs: Int, moduli: (Int) -> Modulus) -> RnsPolynomial {
        let n = a.degree
        return RnsPolynomial(degree: n, limbs: limbs) { out in
            a.words.withUnsafeBufferPointer { x in
                b.words.withUnsafeBufferPointer { y in
                    for i in 0..<limbs {
                        let m = moduli(i)
                        for k in (i * n)..<((i + 1) * n) { out[k] = m.multiply(x[k], y[k]) }
                    }
                }
            }
        }
    }

    /// a ⊙ b for b with Shoup constants (a prepared plaintext): one high and two low products
    /// a coefficient instead of a 128-bit Barrett reduction.
    static func product(_ a: RnsPolynomial, _ b: RnsPolynomial, shoup: [UInt64], limbs: Int, moduli: (Int) -> Modulus) -> RnsPolynomial {
        let n = a.degree
        return RnsPolynomial(degree: n, limbs: limbs) { out in
            a.words.withUnsafeBufferPointer { x in
                b.words.withUnsafeBufferPointer { y in
                    shoup.withUnsafeBufferPointer { ys in
                        for i in 0..<limbs {
                            let m = moduli(i)
                            for k in (i * n)..<((i + 1) * n) { out[k] = m.multiply(x[k], by: y[k], shoup: ys[k]) }
                        }
                    }
                }
            }
        }
    }

    /// a ← a + b ⊙ c.
    static func multiplyAdd(_ a: inout RnsPolynomial, _ b: RnsPolynomial, _ c: RnsPolynomial, moduli: (Int) -> Modulus) {
        let n = a.degree, limbs = a.limbCount
        a.words.withUnsafeMutableBufferPointer { x in
            b.words.withUnsafeBufferPointer { y in
                c.words.withUnsafeBufferPointer { z in
                    for i in 0..<limbs {
                        let m = moduli(i)
                        for k in (i * n)..<((i + 1) * n) { x[k] = m.add(x[k], m.multiply(y[k], z[k])) }
                    }
                }
            }
        }
    }

    /// a ← −a.
    static func negate(_ a: inout RnsPolynomial, moduli: (Int) -> Modulus) {
        let n = a.degree, limbs = a.limbCount
        a.words.withUnsafeMutableBufferPointer { x in
            for i in 0..<limbs {
                let m = moduli(i)
                for k in (i * n)..<((i + 1) * n) { x[k] = m.negate(x[k]) }
            }
        }
    }

    /// a ← a·c for one constant per limb.
    static func multiply(_ a: inout RnsPolynomial, constants: [UInt64], moduli: (Int) -> Modulus) {
        let n = a.degree, limbs = a.limbCount
        a.words.withUnsafeMutableBufferPointer { x in
            for i in 0..<limbs {
                let m = moduli(i), c = constants[i], cShoup = m.shoup(constants[i])
                for k in (i * n)..<((i + 1) * n) { x[k] = m.multiply(x[k], by: c, shoup: cShoup) }
            }
        }
    }

    @inline(__always)
    private static func elementwise(_ a: inout RnsPolynomial, _ b: RnsPolynomial, limbs: Int, moduli: (Int) -> Modulus,
                                    _ op: (Modulus, UInt64, UInt64) -> UInt64) {
        precondition(b.limbCount >= limbs && a.degree == b.degree)
        let n = a.degree
        a.words.withUnsafeMutableBufferPointer { x in
            b.words.withUnsafeBufferPointer { y in
                for i in 0..<limbs {
                    let m = moduli(i)
                    for k in (i * n)..<((i + 1) * n) { x[k] = op(m, x[k], y[k]) }
                }
            }
        }
    }

    /// Forward NTT of every limb.
    static func forward(_ a: inout RnsPolynomial, tables: (Int) -> NTTTables) {
        forEachLimb(&a, tables: tables) { _, t, p in t.forward(p) }
    }

    /// Inverse NTT of every limb.
    static func inverse(_ a: inout RnsPolynomial, tables: (Int) -> NTTTables) {
        forEachLimb(&a, tables: tables) { _, t, p in t.inverse(p) }
    }

    /// σ_g in the NTT domain: out[i] = a[perm[i]] in every limb.
    static func permute(_ a: RnsPolynomial, _ perm: [Int]) -> RnsPolynomial {
        let n = a.degree
        return RnsPolynomial(degree: n, limbs: a.limbCount) { o in
            a.words.withUnsafeBufferPointer { x in
                perm.withUnsafeBufferPointer { p in
                    for limb in 0..<a.limbCount {
                        let base = limb * n
                        for i in 0..<n { o[base + i] = x[base + p[i]] }
                    }
                }
            }
        }
    }
}

