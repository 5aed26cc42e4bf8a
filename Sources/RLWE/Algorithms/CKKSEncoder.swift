#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A complex number, for CKKS slots.
public struct Complex: Sendable, Hashable {
    public var real: Double
    public var imaginary: Double

    public init(_ real: Double, _ imaginary: Double = 0) {
        self.real = real
        self.imaginary = imaginary
    }

    @inlinable static func + (a: Complex, b: Complex) -> Complex { Complex(a.real + b.real, a.imaginary + b.imaginary) }
    @inlinable static func - (a: Complex, b: Complex) -> Complex { Complex(a.real - b.real, a.imaginary - b.imaginary) }
    @inlinable static func * (a: Complex, b: Complex) -> Complex {
        Complex(a.real * b.real - a.imaginary * b.imaginary, a.real * b.imaginary + a.imaginary * b.real)
    }
    /// The complex conjugate.
    public var conjugate: Complex { Complex(real, -imaginary) }
    /// |z|.
    public var magnitude: Double { (real * real + imaginary * imaginary).squareRoot() }
}

/// CKKS's canonical embedding: N/2 complex slots z_j = m(ζ^(5^j)), ζ = e^(iπ/N), for a real
/// polynomial m (the values at ζ^(−5^j) are their conjugates). For odd e = 2r + 1,
/// m(ζ^e) = Σ_k (m_k·ζ^k)·ω^(rk) with ω = ζ², so encoding is one inverse complex FFT of length N
/// and a twist, decoding a twist and one forward FFT. X → X^(5^k) rotates the slots left by k;
/// X → X^(2N−1) conjugates them.
public struct CKKSEncoder: Sendable {
    public let context: RlweContext
    /// ζ^k, k = 0..<N.
    let twist: [Complex]
    /// ω^j, j = 0..<N/2.
    let roots: [Complex]
    /// The FFT index r of slot j, and of its conjugate.
    let slotIndex: [Int]
    let conjugateIndex: [Int]

    public init(context: RlweContext) throws(RlweError) {
        guard case .ckks = context.parameters.scheme else { throw .wrongScheme("CKKS encoding needs a CKKS parameter set") }
        self.context = context
        let n = context.polynomialSize
        twist = (0..<n).map { Complex(cos(Double.pi * Double($0) / Double(n)), sin(Double.pi * Double($0) / Double(n))) }
        roots = (0..<(n / 2)).map { Complex(cos(2 * Double.pi * Double($0) / Double(n)), sin(2 * Double.pi * Double($0) / Double(n))) }
        var slots: [Int] = [], conjugates: [Int] = []
        var e = 1
        for _ in 0..<(n / 2) {
            slots.append((e - 1) / 2)
            conjugates.append((2 * n - e - 1) / 2)
            e = e * 5 % (2 * n)
        }
        slotIndex = slots
        conjugateIndex = conjugates
    }

    /// N/2.
    public var slotCount: Int { context.polynomialSize / 2 }

    /// The default scale 2^logScale.
    public var defaultScale: Double {
        guard case .ckks(let s) = context.parameters.scheme else { return 1 }
        return Double(sign: .plus, exponent: s, significand: 1)
    }

    /// Real slot values (missing slots are zero).
    public func encode(_ values: [Double], scale: Double? = nil, level: Int? = nil) throws(RlweError) -> Plaintext {
        try encode(values.map { Complex($0) }, scale: scale, level: level)
    }

    /// Complex slot values, scaled and rounded to an integer polynomial at level ℓ.
    public func encode(_ values: [Complex], scale: Double? = nil, level: Int? = nil) throws(RlweError) -> Plaintext {
        let n = context.polynomialSize
        let level = try checkedLevel(level, context)
        let scale = scale ?? defaultScale
        guard values.count <= slotCount else { throw .invalidEncoding("\(values.count) values for \(slotCount) slots") }
        // A scale below 1 is valid: large integer values (a network's late layers) sit at Δ < 1.
        guard scale > 0, scale.isNormal else { throw .invalidEncoding("scale \(scale)") }
        var v = [Complex](repeating: Complex(0), count: n)
        for (j, z) in values.enumerated() {
            guard z.real.isFinite, z.imaginary.isFinite else { throw .invalidEncoding("slot \(j) is not finite") }
            v[slotIndex[j]] = z
            v[conjugateIndex[j]] = z.conjugate
        }
        transform(&v, inverse: true)
        var coefficients = [Int64](repeating: 0, count: n)
        // A coefficient must stay below Q_ℓ/2 (or it wraps) and fit the 62-bit lift.
        let bound = Swift.min(0x1p62, exp2(context.levelBases[level - 1].logProduct - 1))
        for k in 0..<n {
            let c = ((v[k] * twist[k].conjugate).real / Double(n) * scale).rounded()
            guard abs(c) < bound else {
                throw .invalidEncoding("a value times the scale 2^\(scale.exponent) exceeds the level's modulus (2^\(Int(log2(bound))))")
            }
            coefficients[k] = Int64(c)
        }
        var poly = Sampling.lift(coefficients, limbs: level) { context.ciphertextTables[$0].modulus }
        PolynomialArithmetic.forward(&poly) { context.ciphertextTables[$0] }
        return Plaintext(context: context, polynomial: poly, scale: scale)
    }

    /// The slots of a real polynomial (decrypted and divided by its scale).
    public func decode(_ coefficients: [Double]) -> [Complex] {
        let n = context.polynomialSize
        precondition(coefficients.count == n)
        var v = (0..<n).map { Complex(coefficients[$0]) * twist[$0] }
        transform(&v, inverse: false)
        return slotIndex.map { v[$0] }
    }

    /// In-place radix-2 FFT of length N: v[r] ← Σ_k v[k]·ω^(±rk) (no 1/N).
    func transform(_ v: inout [Complex], inverse: Bool) {
        let n = v.count, logN = n.trailingZeroBitCount
        for i in 0..<n {
            let j = NTTTables.reverse(i, bits: logN)
            if i < j { v.swapAt(i, j) }
        }
        var length = 2
        while length <= n {
            let step = n / length
            for start in stride(from: 0, to: n, by: length) {
                for j in 0..<(length / 2) {
                    let w = inverse ? roots[j * step].conjugate : roots[j * step]
                    let u = v[start + j], t = v[start + j + length / 2] * w
                    v[start + j] = u + t
                    v[start + j + length / 2] = u - t
                }
            }
            length <<= 1
        }
    }
}
