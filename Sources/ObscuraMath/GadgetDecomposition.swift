/// Signed, rounded, balanced gadget decomposition of 2^64-torus elements.
///
/// x is first rounded to its top `levels·baseLog` bits, then written as
/// x ≈ Σ_{j=1..levels} d_j · 2^(64 - j·baseLog) with digits d_j ∈ [-B/2, B/2], B = 2^baseLog.
/// A digit equal to B/2 is carried upward when the next digit is itself at least B/2, which
/// keeps the digits' mean at zero (balanced decomposition, ePrint 2021/1161).
public struct GadgetDecomposition: Sendable, Hashable {
    /// log2 of the base B.
    public let baseLog: Int
    /// The number of levels l.
    public let levels: Int

    /// A decomposition with base 2^baseLog and `levels` levels (baseLog·levels ≤ 64).
    public init(baseLog: Int, levels: Int) {
        precondition(baseLog >= 1 && levels >= 1 && baseLog * levels <= 64)
        self.baseLog = baseLog
        self.levels = levels
    }

    /// x rounded to the nearest value that the decomposition represents exactly.
    @inlinable
    public func closestRepresentable(_ x: UInt64) -> UInt64 {
        let dropped = 64 - baseLog * levels
        if dropped == 0 { return x }
        let rounded = (x >> UInt64(dropped)) &+ ((x >> UInt64(dropped - 1)) & 1)
        return rounded << UInt64(dropped)
    }

    /// The digits of x, most significant level first, written to `digits[j * stride]`.
    /// With a single level the digit is the rounded top β bits read as signed, in [-B/2, B/2).
    @inlinable @inline(__always)
    public func decompose(_ x: UInt64, into digits: UnsafeMutablePointer<Int64>, stride: Int) {
        if levels == 1 {
            digits[0] = Int64(bitPattern: x &+ (UInt64(1) << UInt64(63 - baseLog))) >> UInt64(64 - baseLog)
            return
        }
        let dropped = UInt64(64 - baseLog * levels)
        var state = dropped == 0 ? x : (x >> dropped) &+ ((x >> (dropped &- 1)) & 1)
        let base = UInt64(1) << UInt64(baseLog)
        let mask = base &- 1
        let half = base >> 1
        var level = levels - 1
        while level >= 0 {
            let digit = state & mask
            state >>= UInt64(baseLog)
            let carry: UInt64 = (digit > half || (digit == half && (state & mask) >= half)) ? 1 : 0
            digits[level &* stride] = Int64(bitPattern: digit) &- Int64(bitPattern: carry << UInt64(baseLog))
            state &+= carry
            level -= 1
        }
    }

    /// Decomposes `count` torus elements into `levels` digit arrays, level-major:
    /// `output[j * count + c]` is digit j of `input[c]`.
    @inlinable
    public func decompose(_ input: UnsafePointer<UInt64>, count: Int, into output: UnsafeMutablePointer<Int64>) {
        for c in 0..<count {
            decompose(input[c], into: output + c, stride: count)
        }
    }

    /// Decomposes `count` torus elements into 32-bit digits, level-major (the layout the
    /// external product transforms row by row). Requires baseLog ≤ 31.
    @inlinable
    public func decompose(_ input: UnsafePointer<UInt64>, count: Int, into output: UnsafeMutablePointer<Int32>) {
        if levels == 1 {
            let roundBit = UInt64(1) << UInt64(63 - baseLog), shift = UInt64(64 - baseLog)
            for c in 0..<count {
                output[c] = Int32(truncatingIfNeeded: Int64(bitPattern: input[c] &+ roundBit) >> shift)
            }
            return
        }
        // Several levels: the scalar algorithm above, four coefficients per step, branch-free.
        let dropped = UInt64(64 - baseLog * levels), beta = UInt64(baseLog)
        let mask = SIMD4<UInt64>(repeating: (UInt64(1) << beta) &- 1)
        let half = SIMD4<UInt64>(repeating: UInt64(1) << (beta &- 1))
        let one = SIMD4<UInt64>(repeating: 1), zero = SIMD4<UInt64>()
        let raw = UnsafeRawPointer(input)
        var c = 0
        while c + 4 <= count {
            let x = raw.loadUnaligned(fromByteOffset: c * 8, as: SIMD4<UInt64>.self)
            var state = dropped == 0 ? x : (x &>> dropped) &+ ((x &>> (dropped &- 1)) & one)
            var level = levels - 1
            while level >= 0 {
                let digit = state & mask
                state = state &>> beta
                let carryMask = (digit .> half) .| ((digit .== half) .& ((state & mask) .>= half))
                let carry = zero.replacing(with: one, where: carryMask)
                let signed = digit &- (carry &<< beta)
                let out = output + level * count + c
                for lane in 0..<4 { out[lane] = Int32(truncatingIfNeeded: Int64(bitPattern: signed[lane])) }
                state &+= carry
                level -= 1
            }
            c += 4
        }
        withUnsafeTemporaryAllocation(of: Int64.self, capacity: levels) { digits in
            while c < count {
                decompose(input[c], into: digits.baseAddress!, stride: 1)
                for j in 0..<levels { output[j * count + c] = Int32(truncatingIfNeeded: digits[j]) }
                c += 1
            }
        }
    }

    /// Recomposes digits (most significant first) into a torus element.
    public func recompose(_ digits: [Int64]) -> UInt64 {
        var value: UInt64 = 0
        for (index, digit) in digits.enumerated() {
            value &+= UInt64(bitPattern: digit) << UInt64(64 - (index + 1) * baseLog)
        }
        return value
    }
}
