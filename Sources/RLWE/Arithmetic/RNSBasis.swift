#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A residue number system: Q = q_0·q_1·…·q_(L−1) for distinct word-sized primes, so that an
/// integer mod Q is the tuple of its residues (the CRT) and ring arithmetic runs limb by limb.
///
/// With Q̂_i = Q/q_i, every x mod Q is x = Σ u_i·Q̂_i − v·Q where u_i = [x_i·Q̂_i^-1]_(q_i) and
/// v = ⌊Σ u_i/q_i⌋ — the identity behind exact base conversion. The mixed-radix digits
/// (x = a_0 + a_1·q_0 + a_2·q_0·q_1 + …, Garner's algorithm) give the centered value of x
/// without multi-word arithmetic.
public struct RNSBasis: Sendable {
    /// The primes.
    public let moduli: [Modulus]
    /// [Q̂_i^-1]_(q_i) and its Shoup constant.
    @usableFromInline let hatInverse: [UInt64]
    @usableFromInline let hatInverseShoup: [UInt64]
    /// 1/q_i.
    @usableFromInline let reciprocal: [Double]
    /// Garner: garner[i][j] = q_j^-1 mod q_i for j < i (and Shoup constants).
    @usableFromInline let garner: [[UInt64]]
    @usableFromInline let garnerShoup: [[UInt64]]
    /// The mixed-radix digits of ⌊Q/2⌋, most significant last.
    @usableFromInline let halfDigits: [UInt64]
    /// Q.
    public let product: BigUInt

    public init(_ moduli: [Modulus]) {
        precondition(!moduli.isEmpty && Set(moduli.map(\.value)).count == moduli.count, "distinct primes")
        self.moduli = moduli
        let values = moduli.map(\.value)
        let q = BigUInt.product(values)
        product = q
        var inverse: [UInt64] = [], inverseShoup: [UInt64] = []
        for (i, m) in moduli.enumerated() {
            var hat: UInt64 = 1
            for (j, other) in values.enumerated() where j != i { hat = m.multiply(hat, m.reduce(other)) }
            let h = m.inverse(hat)
            inverse.append(h)
            inverseShoup.append(m.shoup(h))
        }
        hatInverse = inverse
        hatInverseShoup = inverseShoup
        reciprocal = values.map { 1 / Double($0) }
        let garnerConstants = moduli.enumerated().map { i, m in (0..<i).map { m.inverse(m.reduce(values[$0])) } }
        garner = garnerConstants
        garnerShoup = moduli.enumerated().map { i, m in garnerConstants[i].map { m.shoup($0) } }
        // ⌊Q/2⌋ = (Q−1)/2 (Q odd) in mixed radix.
        var half = q.shifted(right: 1)
        var digits: [UInt64] = []
        for value in values {
            let (quotient, remainder) = half.quotientAndRemainder(dividingBy: value)
            digits.append(remainder)
            half = quotient
        }
        halfDigits = digits
    }

    /// The number of primes.
    public var count: Int { moduli.count }

    /// log2 Q.
    public var logProduct: Double { moduli.reduce(0) { $0 + log2(Double($1.value)) } }

    /// The residues of x mod Q as the integer in [0, Q).
    public func compose(_ residues: [UInt64]) -> BigUInt {
        var digits = residues
        mixedRadixDigits(&digits)
        var x = BigUInt()
        for i in stride(from: count - 1, through: 0, by: -1) {
            x = x.multiplied(by: moduli[i].value) + BigUInt(digits[i])
        }
        return x
    }

    /// Turns residues into mixed-radix digits in place (Garner).
    @inlinable
    public func mixedRadixDigits(_ x: inout [UInt64]) {
        x.withUnsafeMutableBufferPointer { mixedRadixDigits($0.baseAddress!) }
    }

    @inlinable
    func mixedRadixDigits(_ x: UnsafeMutablePointer<UInt64>) {
        for i in 1..<count {
            let m = moduli[i]
            var t = x[i]
            for j in 0..<i {
                // (t − a_j)·q_j^-1 mod q_i; a_j < q_j may exceed q_i, so reduce it first.
                t = m.multiply(m.subtract(t, m.reduce(x[j])), by: garner[i][j], shoup: garnerShoup[i][j])
            }
            x[i] = t
        }
    }

    /// The centered value (in (−Q/2, Q/2]) of the residues at `x` (one per limb, stride `stride`),
    /// as a double: exact in sign and to 2^-52 relative. Clobbers `scratch` (count words).
    @inlinable
    public func centeredValue(_ x: UnsafePointer<UInt64>, stride limbStride: Int, scratch: UnsafeMutablePointer<UInt64>) -> Double {
        for i in 0..<count { scratch[i] = x[i * limbStride] }
        mixedRadixDigits(scratch)
        // Compare with ⌊Q/2⌋ from the most significant digit.
        var negative = false
        for i in stride(from: count - 1, through: 0, by: -1) where scratch[i] != halfDigits[i] {
            negative = scratch[i] > halfDigits[i]
            break
        }
        var value = 0.0
        if negative {
            // Q − 1 − x has digits q_i − 1 − a_i (no borrows); −x = −(that + 1).
            for i in stride(from: count - 1, through: 0, by: -1) {
                value = value * Double(moduli[i].value) + Double(moduli[i].value - 1 - scratch[i])
            }
            return -(value + 1)
        }
        for i in stride(from: count - 1, through: 0, by: -1) {
            value = value * Double(moduli[i].value) + Double(scratch[i])
        }
        return value
    }
}

/// Exact conversion of centered values from one RNS basis to another (HPS: Halevi, Polyakov and
/// Shoup, eprint 2018/117 §2.3): with u_i = [x_i·Q̂_i^-1]_(q_i) and v = round(Σ u_i/q_i), the
/// centered x is Σ u_i·Q̂_i − v·Q, reduced modulo each target prime. Exact for |x| < Q/2
/// minus the double rounding of Σ u_i/q_i (about L·2^-53·Q), far from where it is used.
public struct BaseConverter: Sendable {
    public let source: RNSBasis
    public let target: [Modulus]
    /// [Q̂_i]_(p_j) and its Shoup constant, indexed [j][i].
    @usableFromInline let hatModTarget: [[UInt64]]
    @usableFromInline let hatModTargetShoup: [[UInt64]]
    /// [v·Q]_(p_j) for v = 0…L, indexed [j][v].
    @usableFromInline let multiplesOfProduct: [[UInt64]]

    public init(from source: RNSBasis, to target: [Modulus]) {
        self.source = source
        self.target = target
        let values = source.moduli.map(\.value)
        let hats = target.map { p in
            values.indices.map { i in
                values.enumerated().reduce(UInt64(1)) { acc, e in e.offset == i ? acc : p.multiply(acc, p.reduce(e.element)) }
            }
        }
        hatModTarget = hats
        hatModTargetShoup = zip(target, hats).map { p, row in row.map { p.shoup($0) } }
        multiplesOfProduct = target.map { p in
            let qModP = values.reduce(UInt64(1)) { p.multiply($0, p.reduce($1)) }
            return (0...values.count).map { p.multiply(qModP, UInt64($0)) }
        }
    }

    /// The split of `count` coefficients held as source limbs at stride `limbStride`: u_i of
    /// coefficient k at u[i·count + k], v at v[k] (and Σ u_i/q_i − v, if asked). Done once, it
    /// serves every target.
    @inlinable
    func splitAll(_ x: UnsafePointer<UInt64>, stride limbStride: Int, count: Int,
                  u: UnsafeMutablePointer<UInt64>, v: UnsafeMutablePointer<Int>,
                  fraction: UnsafeMutablePointer<Double>? = nil) {
        withUnsafeTemporaryAllocation(of: Double.self, capacity: count) { sums in
            let sum = sums.baseAddress!
            sum.initialize(repeating: 0, count: count)
            for i in 0..<source.count {
                let m = source.moduli[i], h = source.hatInverse[i], hShoup = source.hatInverseShoup[i]
                let r = source.reciprocal[i]
                let xi = x + i * limbStride, ui = u + i * count
                for k in 0..<count {
                    let value = m.multiply(xi[k], by: h, shoup: hShoup)
                    ui[k] = value
                    sum[k] += Double(value) * r
                }
            }
            for k in 0..<count {
                let rounded = sum[k].rounded()
                v[k] = Int(rounded)
                fraction?[k] = sum[k] - rounded
            }
        }
    }

    /// Target j of `count` coefficients split by ``splitAll(_:stride:count:u:v:)``.
    @inlinable
    func combineAll(u: UnsafePointer<UInt64>, v: UnsafePointer<Int>, count: Int, target j: Int,
                    into output: UnsafeMutablePointer<UInt64>) {
        let p = target[j], twoP = 2 &* p.value
        for k in 0..<count { output[k] = 0 }
        hatModTarget[j].withUnsafeBufferPointer { hats in
            hatModTargetShoup[j].withUnsafeBufferPointer { shoups in
                for i in 0..<source.count {
                    let h = hats[i], hShoup = shoups[i], ui = u + i * count
                    for k in 0..<count {
                        let s = output[k] &+ p.multiplyLazy(ui[k], by: h, shoup: hShoup)
                        output[k] = Swift.min(s, s &- twoP)
                    }
                }
            }
        }
        multiplesOfProduct[j].withUnsafeBufferPointer { multiples in
            for k in 0..<count {
                let s = output[k]
                output[k] = p.subtract(Swift.min(s, s &- p.value), multiples[v[k]])
            }
        }
    }

    /// Converts `n` coefficients held as source limbs (limb i at `input + i·n`) into target
    /// limbs (limb j at `output + j·n`).
    public func convert(_ input: UnsafePointer<UInt64>, into output: UnsafeMutablePointer<UInt64>, count n: Int) {
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: source.count * n) { u in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: n) { v in
                splitAll(input, stride: n, count: n, u: u.baseAddress!, v: v.baseAddress!)
                for j in 0..<target.count {
                    combineAll(u: u.baseAddress!, v: v.baseAddress!, count: n, target: j, into: output + j * n)
                }
            }
        }
    }
}
