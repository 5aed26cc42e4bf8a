/// A negacyclic number-theoretic transform over the word-sized prime p = 2^64 - 2^32 + 1.
///
/// Obscura's bootstrapping runs on the double-precision ``NegacyclicFFT``, which was measured
/// faster (`obscura bench tfhe` prints both); this exact transform is kept as the measured
/// alternative and as an independent check of negacyclic products in tests.
public struct NegacyclicNTT: Sendable {
    /// The prime modulus 2^64 - 2^32 + 1.
    public static let prime: UInt64 = 0xFFFF_FFFF_0000_0001
    /// N.
    public let polynomialSize: Int
    @usableFromInline let psiPowers: [UInt64]        // ψ^j, ψ a primitive 2N-th root
    @usableFromInline let psiInversePowers: [UInt64] // ψ^-j · N^-1
    @usableFromInline let roots: [UInt64] // ω^j for the cyclic stages
    @usableFromInline let inverseRoots: [UInt64]
    @usableFromInline let bitReversal: [Int]

    /// A plan for size `polynomialSize`, a power of two up to 2^31.
    public init(polynomialSize n: Int) {
        precondition(n >= 2 && n & (n - 1) == 0 && n <= 1 << 31)
        polynomialSize = n
        // 7 generates the multiplicative group; ψ = 7^((p-1)/2N).
        let psi = Self.power(7, (Self.prime - 1) / UInt64(2 * n))
        let psiInverse = Self.power(psi, Self.prime - 2)
        let nInverse = Self.power(UInt64(n), Self.prime - 2)
        var powers = [UInt64](repeating: 1, count: n), inverse = powers
        var current: UInt64 = 1, currentInverse = nInverse
        for j in 0..<n {
            powers[j] = current
            inverse[j] = currentInverse
            current = Self.multiply(current, psi)
            currentInverse = Self.multiply(currentInverse, psiInverse)
        }
        psiPowers = powers
        psiInversePowers = inverse
        let logN = n.trailingZeroBitCount
        var reversal = [Int](repeating: 0, count: n)
        for j in 0..<n {
            var r = 0
            for b in 0..<logN where j & (1 << b) != 0 { r |= 1 << (logN - 1 - b) }
            reversal[j] = r
        }
        bitReversal = reversal
        let omega = Self.multiply(psi, psi)
        let omegaInverse = Self.power(omega, Self.prime - 2)
        var forwardRoots = [UInt64](repeating: 1, count: n), backwardRoots = forwardRoots
        for j in 1..<n {
            forwardRoots[j] = Self.multiply(forwardRoots[j - 1], omega)
            backwardRoots[j] = Self.multiply(backwardRoots[j - 1], omegaInverse)
        }
        roots = forwardRoots
        inverseRoots = backwardRoots
    }

    /// a·b mod p.
    @inlinable @inline(__always)
    public static func multiply(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (high, low) = a.multipliedFullWidth(by: b)
        return reduce(high: high, low: low)
    }

    /// (high·2^64 + low) mod p, using 2^64 ≡ 2^32 - 1 and 2^96 ≡ -1.
    @inlinable @inline(__always)
    static func reduce(high: UInt64, low: UInt64) -> UInt64 {
        let epsilon: UInt64 = 0xFFFF_FFFF
        let highHigh = high >> 32, highLow = high & epsilon
        var (t0, borrow) = low.subtractingReportingOverflow(highHigh)
        if borrow { t0 &-= epsilon }
        let t1 = highLow &* epsilon
        var (result, carry) = t0.addingReportingOverflow(t1)
        if carry { result &+= epsilon }
        return result >= prime ? result &- prime : result
    }

    @inlinable @inline(__always)
    static func add(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (sum, carry) = a.addingReportingOverflow(b)
        let s = carry ? sum &+ 0xFFFF_FFFF : sum
        return s >= prime ? s &- prime : s
    }

    @inlinable @inline(__always)
    static func subtract(_ a: UInt64, _ b: UInt64) -> UInt64 {
        a >= b ? a &- b : a &+ (prime &- b)
    }

    static func power(_ base: UInt64, _ exponent: UInt64) -> UInt64 {
        var result: UInt64 = 1, b = base, e = exponent
        while e > 0 {
            if e & 1 == 1 { result = multiply(result, b) }
            b = multiply(b, b)
            e >>= 1
        }
        return result
    }

    /// In-place forward transform of residues mod p (natural order in and out).
    @inlinable
    public func forward(_ a: inout [UInt64]) {
        let n = polynomialSize
        a.withUnsafeMutableBufferPointer { x in
            psiPowers.withUnsafeBufferPointer { psi in
                for j in 0..<n { x[j] = Self.multiply(x[j], psi[j]) }
            }
            transform(x, roots: roots)
        }
    }

    /// In-place inverse transform, including the 1/N scaling and the negacyclic untwist.
    @inlinable
    public func inverse(_ a: inout [UInt64]) {
        let n = polynomialSize
        a.withUnsafeMutableBufferPointer { x in
            transform(x, roots: inverseRoots)
            psiInversePowers.withUnsafeBufferPointer { psi in
                for j in 0..<n { x[j] = Self.multiply(x[j], psi[j]) }
            }
        }
    }

    @inlinable
    func transform(_ x: UnsafeMutableBufferPointer<UInt64>, roots: [UInt64]) {
        let n = polynomialSize
        bitReversal.withUnsafeBufferPointer { reversal in
            for j in 0..<n where j < reversal[j] { x.swapAt(j, reversal[j]) }
        }
        roots.withUnsafeBufferPointer { w in
            var length = 2
            while length <= n {
                let step = n / length
                var start = 0
                while start < n {
                    for j in 0..<(length / 2) {
                        let u = x[start + j]
                        let v = Self.multiply(x[start + j + length / 2], w[j * step])
                        x[start + j] = Self.add(u, v)
                        x[start + j + length / 2] = Self.subtract(u, v)
                    }
                    start += length
                }
                length <<= 1
            }
        }
    }

    /// The exact negacyclic product of two polynomials with coefficients in (-p/2, p/2), when
    /// the true product's coefficients are also in that range.
    public func multiply(_ a: [Int64], _ b: [Int64]) -> [Int64] {
        func lift(_ v: Int64) -> UInt64 { v >= 0 ? UInt64(v) : Self.prime &- UInt64(-v) }
        var x = a.map(lift), y = b.map(lift)
        forward(&x)
        forward(&y)
        for j in 0..<polynomialSize { x[j] = Self.multiply(x[j], y[j]) }
        inverse(&x)
        return x.map { $0 > Self.prime / 2 ? -Int64(Self.prime &- $0) : Int64($0) }
    }
}
