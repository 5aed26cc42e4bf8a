/// A small non-negative multi-word integer (little-endian 64-bit words), for what RNS does not
/// give cheaply: CRT reconstruction of a coefficient, Δ = ⌊Q/t⌋, and exact checks in tests.
/// Not constant time; used on decrypted values and public constants only.
public struct BigUInt: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The words, least significant first, without leading zero words.
    public private(set) var words: [UInt64]

    public init(_ value: UInt64 = 0) {
        words = value == 0 ? [] : [value]
        normalize()
    }

    public init(words: [UInt64]) {
        self.words = words
        normalize()
    }

    private mutating func normalize() {
        while let last = words.last, last == 0 { words.removeLast() }
    }

    /// The product of the values.
    public static func product(_ values: [UInt64]) -> BigUInt {
        values.reduce(BigUInt(1)) { $0.multiplied(by: $1) }
    }

    public var isZero: Bool { words.isEmpty }

    /// The number of significant bits.
    public var bitWidth: Int { words.isEmpty ? 0 : words.count * 64 - words.last!.leadingZeroBitCount }

    /// The nearest double.
    public var doubleValue: Double {
        var result = 0.0
        for word in words.reversed() { result = result * 0x1p64 + Double(word) }
        return result
    }

    public func multiplied(by m: UInt64) -> BigUInt {
        var result = [UInt64](repeating: 0, count: words.count + 1)
        var carry: UInt64 = 0
        for (i, w) in words.enumerated() {
            let p = w.multipliedFullWidth(by: m)
            let (low, overflow) = p.low.addingReportingOverflow(carry)
            result[i] = low
            carry = p.high &+ (overflow ? 1 : 0)
        }
        result[words.count] = carry
        return BigUInt(words: result)
    }

    public static func + (a: BigUInt, b: BigUInt) -> BigUInt {
        let count = max(a.words.count, b.words.count) + 1
        var result = [UInt64](repeating: 0, count: count)
        var carry = false
        for i in 0..<count {
            let x = i < a.words.count ? a.words[i] : 0, y = i < b.words.count ? b.words[i] : 0
            let (s1, o1) = x.addingReportingOverflow(y)
            let (s2, o2) = s1.addingReportingOverflow(carry ? 1 : 0)
            result[i] = s2
            carry = o1 || o2
        }
        return BigUInt(words: result)
    }

    /// a − b for a ≥ b.
    public static func - (a: BigUInt, b: BigUInt) -> BigUInt {
        precondition(a >= b, "BigUInt subtraction below zero")
        var result = a.words
        var borrow = false
        for i in 0..<result.count {
            let y = i < b.words.count ? b.words[i] : 0
            let (d1, o1) = result[i].subtractingReportingOverflow(y)
            let (d2, o2) = d1.subtractingReportingOverflow(borrow ? 1 : 0)
            result[i] = d2
            borrow = o1 || o2
        }
        return BigUInt(words: result)
    }

    /// The quotient and remainder of a division by a word.
    public func quotientAndRemainder(dividingBy d: UInt64) -> (quotient: BigUInt, remainder: UInt64) {
        precondition(d != 0)
        var quotient = [UInt64](repeating: 0, count: words.count)
        var remainder: UInt64 = 0
        for i in stride(from: words.count - 1, through: 0, by: -1) {
            let (q, r) = d.dividingFullWidth((high: remainder, low: words[i]))
            quotient[i] = q
            remainder = r
        }
        return (BigUInt(words: quotient), remainder)
    }

    /// The value mod a word.
    public func remainder(dividingBy d: UInt64) -> UInt64 { quotientAndRemainder(dividingBy: d).remainder }

    /// The value shifted right by `bits`.
    public func shifted(right bits: Int) -> BigUInt {
        let wordShift = bits / 64, bitShift = bits % 64
        guard wordShift < words.count else { return BigUInt() }
        var result = [UInt64](repeating: 0, count: words.count - wordShift)
        for i in 0..<result.count {
            let low = words[i + wordShift] >> UInt64(bitShift)
            let high = bitShift == 0 || i + wordShift + 1 >= words.count ? 0 : words[i + wordShift + 1] << UInt64(64 - bitShift)
            result[i] = low | high
        }
        return BigUInt(words: result)
    }

    /// The value mod m, by shift-and-subtract (for tests and precomputation, not hot paths).
    public func remainder(dividingBy m: BigUInt) -> BigUInt {
        precondition(!m.isZero)
        if self < m { return self }
        var r = self
        var shift = bitWidth - m.bitWidth
        while shift >= 0 {
            let shiftedM = m.shifted(left: shift)
            if r >= shiftedM { r = r - shiftedM }
            shift -= 1
        }
        return r
    }

    /// The value shifted left by `bits`.
    public func shifted(left bits: Int) -> BigUInt {
        let wordShift = bits / 64, bitShift = bits % 64
        var result = [UInt64](repeating: 0, count: words.count + wordShift + 1)
        for (i, w) in words.enumerated() {
            result[i + wordShift] |= w << UInt64(bitShift)
            if bitShift != 0 { result[i + wordShift + 1] |= w >> UInt64(64 - bitShift) }
        }
        return BigUInt(words: result)
    }

    public static func < (a: BigUInt, b: BigUInt) -> Bool {
        if a.words.count != b.words.count { return a.words.count < b.words.count }
        for i in stride(from: a.words.count - 1, through: 0, by: -1) where a.words[i] != b.words[i] {
            return a.words[i] < b.words[i]
        }
        return false
    }

    public var description: String {
        if words.isEmpty { return "0" }
        var digits: [String] = []
        var value = self
        while !value.isZero {
            let (q, r) = value.quotientAndRemainder(dividingBy: 10_000_000_000_000_000_000)
            digits.append(String(r))
            value = q
        }
        return digits.enumerated().map { i, d in
            i == digits.count - 1 ? d : String(repeating: "0", count: 19 - d.count) + d
        }.reversed().joined()
    }
}
