/// A word-sized prime modulus q < 2^62 with the constants that make reduction cheap.
///
/// Two reductions are used:
/// - **Barrett** for products of two variables: r = ⌊2^128 / q⌋ is kept as two words, and
///   x mod q for x < 2^128 is x − ⌊x·r / 2^128⌋·q followed by at most one subtraction.
/// - **Shoup** for products with a constant w known in advance (NTT twiddles, CRT constants):
///   with w′ = ⌊w·2^64 / q⌋, x·w mod q ∈ {x·w − ⌊x·w′ / 2^64⌋·q, … − q} for any 64-bit x
///   (Harvey, "Faster arithmetic for number-theoretic transforms", arXiv 1205.2926, Alg. 2).
///
/// q < 2^62 lets the NTT keep values lazily in [0, 4q) without overflowing a word.
public struct Modulus: Sendable, Hashable, CustomStringConvertible {
    /// q.
    public let value: UInt64
    /// The high word of ⌊2^128 / q⌋ (which is also ⌊2^64 / q⌋).
    @usableFromInline let ratioHigh: UInt64
    /// The low word of ⌊2^128 / q⌋.
    @usableFromInline let ratioLow: UInt64

    /// The modulus q, which must be odd and below 2^62.
    public init(_ value: UInt64) {
        precondition(value > 2 && value & 1 == 1 && value < 1 << 62, "moduli are odd and below 2^62")
        self.value = value
        // ⌊2^128 / q⌋: the high word is ⌊2^64 / q⌋ (q odd, so 2^64 is not a multiple), the low
        // word divides the remainder·2^64 by q.
        let (high, remainder) = value.dividingFullWidth((high: 1, low: 0))
        let (low, _) = value.dividingFullWidth((high: remainder, low: 0))
        ratioHigh = high
        ratioLow = low
    }

    public var description: String { "\(value)" }

    /// The number of bits of q.
    public var bitWidth: Int { 64 - value.leadingZeroBitCount }

    /// x mod q for any 64-bit x.
    @inlinable @inline(__always)
    public func reduce(_ x: UInt64) -> UInt64 {
        let estimate = x.multipliedFullWidth(by: ratioHigh).high
        let r = x &- estimate &* value
        return Swift.min(r, r &- value)
    }

    /// (high·2^64 + low) mod q.
    @inlinable @inline(__always)
    public func reduce(high: UInt64, low: UInt64) -> UInt64 {
        // ⌊x·r / 2^128⌋ modulo 2^64, dropping the lowest partial product's carry (the
        // estimate is then at most 1 below the true quotient, fixed by one subtraction).
        let lowHigh = low.multipliedFullWidth(by: ratioHigh)
        let highLow = high.multipliedFullWidth(by: ratioLow)
        let carryIn = low.multipliedFullWidth(by: ratioLow).high
        let (middle, c1) = lowHigh.low.addingReportingOverflow(highLow.low)
        let (_, c2) = middle.addingReportingOverflow(carryIn)
        let estimate = high &* ratioHigh &+ lowHigh.high &+ highLow.high
            &+ (c1 ? 1 : 0) &+ (c2 ? 1 : 0)
        let r = low &- estimate &* value
        return Swift.min(r, r &- value)
    }

    /// a·b mod q for a, b < 2^64 whose product is below 2^128.
    @inlinable @inline(__always)
    public func multiply(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let p = a.multipliedFullWidth(by: b)
        return reduce(high: p.high, low: p.low)
    }

    /// (a + b) mod q for a, b < q.
    @inlinable @inline(__always)
    public func add(_ a: UInt64, _ b: UInt64) -> UInt64 {
        // For s < 2q, s − q wraps above s exactly when s < q: min picks the reduced value
        // without a branch (as everywhere below).
        let s = a &+ b
        return Swift.min(s, s &- value)
    }

    /// (a − b) mod q for a, b < q.
    @inlinable @inline(__always)
    public func subtract(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let d = a &- b
        return Swift.min(d, d &+ value)
    }

    /// −a mod q for a < q.
    @inlinable @inline(__always)
    public func negate(_ a: UInt64) -> UInt64 {
        let d = value &- a
        return Swift.min(d, d &- value)
    }

    /// The Shoup constant ⌊w·2^64 / q⌋ of a constant w < q.
    @inlinable @inline(__always)
    public func shoup(_ w: UInt64) -> UInt64 {
        // w·2^64/q = w·⌊2^128/q⌋/2^64 + (a fraction below w/2^64·… < 2): estimate from the
        // Barrett ratio, then correct with the remainder −w′·q mod 2^64 (no division).
        var estimate = w &* ratioHigh &+ w.multipliedFullWidth(by: ratioLow).high
        var remainder = 0 &- estimate &* value
        while remainder >= value {
            estimate &+= 1
            remainder &-= value
        }
        return estimate
    }

    /// x·w mod q, lazily in [0, 2q), for any 64-bit x and a constant w < q with Shoup constant w′.
    @inlinable @inline(__always)
    public func multiplyLazy(_ x: UInt64, by w: UInt64, shoup wPrime: UInt64) -> UInt64 {
        let estimate = x.multipliedFullWidth(by: wPrime).high
        return x &* w &- estimate &* value
    }

    /// x·w mod q in [0, q) for any 64-bit x and a constant w < q with Shoup constant w′.
    @inlinable @inline(__always)
    public func multiply(_ x: UInt64, by w: UInt64, shoup wPrime: UInt64) -> UInt64 {
        let r = multiplyLazy(x, by: w, shoup: wPrime)
        return Swift.min(r, r &- value)
    }

    /// The residue of a signed integer.
    @inlinable @inline(__always)
    public func reduce(signed x: Int64) -> UInt64 {
        // Without a branch on the sign: these are secret, noise and ternary coefficients.
        let negative = UInt64(bitPattern: x >> 63)             // all ones when x < 0
        let r = reduce((UInt64(bitPattern: x) ^ negative) &- negative)   // |x| mod q
        return (negate(r) & negative) | (r & ~negative)
    }

    /// The representative of a < q in (−q/2, q/2].
    @inlinable @inline(__always)
    public func centered(_ a: UInt64) -> Int64 {
        a > value >> 1 ? -Int64(value &- a) : Int64(a)
    }

    /// base^exponent mod q.
    public func power(_ base: UInt64, _ exponent: UInt64) -> UInt64 {
        var result: UInt64 = 1, b = reduce(base), e = exponent
        while e > 0 {
            if e & 1 == 1 { result = multiply(result, b) }
            b = multiply(b, b)
            e >>= 1
        }
        return result
    }

    /// a^-1 mod q (q prime, a not a multiple of q).
    public func inverse(_ a: UInt64) -> UInt64 {
        precondition(reduce(a) != 0, "zero has no inverse")
        return power(a, value - 2)
    }
}
