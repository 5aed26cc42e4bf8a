import TFHE

/// Which design of a circuit to use: the main paper's, reproduced as published (with its
/// typos fixed), or Obscura's faster one. Both compute the same function.
public enum CircuitMethod: String, Sendable, CaseIterable {
    /// The paper's design (Zhou et al. 2020, section III.B).
    case paper
    /// Fewer bootstraps: majority carries, majority comparators, carry-save sums, canonical
    /// signed digits, no bootstrap on a bit whose value is known.
    case fast
}

extension CircuitEvaluator {
    /// ep() (Algorithm 1): widens the 1-bit result t of an h-xnor to the n-bit two's-complement
    /// ±1 (t = 1 ↦ +1, t = 0 ↦ -1). Bit 0 is the clear constant 1 and the others are ¬t: free.
    public func extend(_ t: HybridBit, width: Int) -> EncryptedInteger {
        precondition(width >= 2)
        let notT = not(t)
        return EncryptedInteger(bits: [.plain(true)] + Array(repeating: notT, count: width - 1))
    }

    /// One full adder: (sum, carry out).
    ///
    /// Paper (eqs. 9-10): sum = x ⊕ y ⊕ c, carry = (x ∧ y) ⊕ ((x ⊕ y) ∧ c): five bootstraps.
    /// Fast: carry = majority(x, y, c), then sum = sign(x + y + c - 2·carry), one threshold
    /// bootstrap: two in all. With a clear operand the gates reduce to one XOR and one AND or OR.
    func fullAdder(_ x: HybridBit, _ y: HybridBit, _ c: HybridBit, method: CircuitMethod,
                   needCarry: Bool) -> (sum: HybridBit, carry: HybridBit) {
        switch method {
        case .paper:
            let t = xor(x, y)
            return (xor(t, c), xor(and(x, y), and(t, c)))
        case .fast:
            if case .encrypted(let a) = x, case .encrypted(let b) = y, case .encrypted(let d) = c {
                let carry = gates.majority(a, b, d)
                let sum = gates.threshold([(a, 1), (b, 1), (d, 1), (carry, -2)])
                return (.encrypted(sum), .encrypted(carry))
            }
            let sum = xor(xor(x, y), c)
            return (sum, needCarry ? majority(x, y, c) : .plain(false))
        }
    }

    /// x + y + carryIn modulo 2^n, ripple carry. The paper computes the carry out of the top
    /// bit too; the fast design does not, since it is discarded.
    public func add(_ x: EncryptedInteger, _ y: EncryptedInteger, carryIn: HybridBit = .plain(false),
                    method: CircuitMethod = .fast) -> EncryptedInteger {
        precondition(x.width == y.width, "operand widths differ")
        var carry = carryIn
        var bits: [HybridBit] = []
        bits.reserveCapacity(x.width)
        for i in 0..<x.width {
            let last = i == x.width - 1
            let (sum, out) = fullAdder(x.bits[i], y.bits[i], carry, method: method, needCarry: !last || method == .paper)
            bits.append(sum)
            carry = out
        }
        return EncryptedInteger(bits: bits)
    }

    /// x - y = x + ¬y + 1.
    public func subtract(_ x: EncryptedInteger, _ y: EncryptedInteger, method: CircuitMethod = .fast) -> EncryptedInteger {
        add(x, EncryptedInteger(bits: y.bits.map(not)), carryIn: .plain(true), method: method)
    }

    /// -x = ¬x + 1.
    public func negate(_ x: EncryptedInteger, method: CircuitMethod = .fast) -> EncryptedInteger {
        add(EncryptedInteger(bits: x.bits.map(not)), .plain(0, width: x.width), carryIn: .plain(true), method: method)
    }

    /// The sum of many integers of one width, modulo 2^width.
    ///
    /// Paper: one ripple addition after another. Fast: a carry-save tree (three rows become a
    /// sum row and a shifted majority row, bit by bit and in parallel) and one final ripple
    /// addition; clear zeros, as in a popcount's high bits, cost nothing.
    public func sum(_ terms: [EncryptedInteger], method: CircuitMethod = .fast) -> EncryptedInteger {
        precondition(!terms.isEmpty)
        var rows = terms
        if method == .paper {
            return rows.dropFirst().reduce(rows[0]) { add($0, $1, method: .paper) }
        }
        while rows.count > 2 {
            var next: [EncryptedInteger] = []
            var index = 0
            while index + 2 < rows.count {
                let (a, b, c) = (rows[index], rows[index + 1], rows[index + 2])
                var sums: [HybridBit] = [], carries: [HybridBit] = [.plain(false)]
                for i in 0..<a.width {
                    let (s, carry) = fullAdder(a.bits[i], b.bits[i], c.bits[i], method: .fast, needCarry: i < a.width - 1)
                    sums.append(s)
                    if i < a.width - 1 { carries.append(carry) }
                }
                next.append(EncryptedInteger(bits: sums))
                next.append(EncryptedInteger(bits: carries))
                index += 3
            }
            next += rows[index...]
            rows = next
        }
        return rows.count == 1 ? rows[0] : add(rows[0], rows[1], method: .fast)
    }

    /// Σ (2·b_i − 1) over the bits b_i (true ↦ +1, false ↦ −1) as a `width`-bit two's-complement
    /// integer: the heart of a binarized neuron.
    ///
    /// Paper: each bit widened by ep() (free) and accumulated by ripple additions at the full
    /// width. Fast: the bits are counted by a carry-save tree on a popcount only as wide as it
    /// needs, 2·popcount − count is formed two bits wider, and the result is resized for free
    /// (`width` must hold ±count).
    public func sumOfSigns(_ bits: [HybridBit], width: Int, method: CircuitMethod) -> EncryptedInteger {
        precondition(!bits.isEmpty && width >= 2)
        switch method {
        case .paper:
            return sum(bits.map { extend($0, width: width) }, method: .paper)
        case .fast:
            let count = bits.count
            let countWidth = count.bitWidth - count.leadingZeroBitCount
            let ones = bits.map { EncryptedInteger(bits: [$0] + Array(repeating: .plain(false), count: countWidth)) }
            let popcount = sum(ones, method: .fast)       // countWidth + 1 bits, non-negative
            let doubled = popcount.shiftedLeft(1).resized(to: countWidth + 2, signed: false)
            return add(doubled, .plain(Int64(-count), width: countWidth + 2), method: .fast).resized(to: width)
        }
    }

    /// x · y modulo 2^n, signed (two's complement multiplication modulo 2^n is unsigned
    /// multiplication of the same bits): partial products x·2^i ∧ y_i (eq. 12), then summed.
    public func multiply(_ x: EncryptedInteger, _ y: EncryptedInteger, method: CircuitMethod = .fast) -> EncryptedInteger {
        precondition(x.width == y.width, "operand widths differ")
        let rows = (0..<y.width).map { i in
            EncryptedInteger(bits: x.shiftedLeft(i).bits.map { and($0, y.bits[i]) })
        }
        return sum(rows, method: method)
    }

    /// x · c modulo 2^n for a clear integer c.
    ///
    /// Paper: shift and add, skipping the zero bits of c (its multiplier with the clear operand's
    /// partial products made free by h-and). Fast: c in canonical signed digits (non-adjacent
    /// form, at most ⌈n/2⌉ non-zero digits), each digit adding or subtracting x·2^i, summed by
    /// a carry-save tree.
    public func multiply(_ x: EncryptedInteger, byPlain c: Int64, method: CircuitMethod = .fast) -> EncryptedInteger {
        let n = x.width
        let c = EncryptedInteger.signExtend(c, width: n)
        switch method {
        case .paper:
            var terms: [EncryptedInteger] = []
            for i in 0..<n where (c >> Int64(i)) & 1 == 1 { terms.append(x.shiftedLeft(i)) }
            return terms.isEmpty ? .plain(0, width: n) : sum(terms, method: .paper)
        case .fast:
            var terms: [EncryptedInteger] = []
            var corrections = 0 as Int64
            for (i, digit) in Self.nonAdjacentForm(c, width: n) {
                if digit > 0 {
                    terms.append(x.shiftedLeft(i))
                } else {
                    // -(x·2^i) = ¬(x·2^i) + 1; the +1s are gathered into one clear term.
                    terms.append(EncryptedInteger(bits: x.shiftedLeft(i).bits.map(not)))
                    corrections += 1
                }
            }
            if terms.isEmpty { return .plain(0, width: n) }
            if corrections != 0 { terms.append(.plain(corrections, width: n)) }
            return sum(terms, method: .fast)
        }
    }

    /// The non-zero digits (position, ±1) of c's non-adjacent form, modulo 2^width.
    static func nonAdjacentForm(_ c: Int64, width: Int) -> [(Int, Int)] {
        var digits: [(Int, Int)] = []
        var value = UInt64(bitPattern: c) & (width == 64 ? ~0 : (UInt64(1) << UInt64(width)) - 1)
        var position = 0
        while value != 0 && position < width {
            if value & 1 == 1 {
                let digit = value & 3 == 3 ? -1 : 1
                digits.append((position, digit))
                value = digit == 1 ? value - 1 : value &+ 1
            }
            value >>= 1
            position += 1
        }
        return digits
    }
}
