import TFHE

extension CircuitEvaluator {
    /// [x > y] for two's-complement integers.
    ///
    /// Paper (eqs. 13-15): from the least significant bit, v_i = x_i ⊕ y_i and
    /// t_{i+1} = (¬v_i ∧ t_i) ⊕ (x_i ∧ ¬y_i), which is [x > y] read as unsigned; then
    /// t ⊕= x_{n-1} ⊕ y_{n-1} for the sign. About four bootstraps per bit.
    /// Fast: t_{i+1} = majority(x_i, ¬y_i, t_i), one bootstrap per bit (if the bits differ the
    /// majority is x_i, otherwise t_i); the sign bit enters with its roles swapped.
    public func greaterThan(_ x: EncryptedInteger, _ y: EncryptedInteger, method: CircuitMethod = .fast) -> HybridBit {
        precondition(x.width == y.width, "operand widths differ")
        let n = x.width
        switch method {
        case .paper:
            var t = HybridBit.plain(false)
            for i in 0..<n {
                let v = xor(x.bits[i], y.bits[i])
                t = xor(and(not(v), t), and(x.bits[i], not(y.bits[i])))
            }
            return xor(t, xor(x.signBit, y.signBit))
        case .fast:
            var t = HybridBit.plain(false)
            for i in 0..<(n - 1) { t = majority(x.bits[i], not(y.bits[i]), t) }
            return majority(not(x.signBit), y.signBit, t)
        }
    }

    /// [x < y].
    public func lessThan(_ x: EncryptedInteger, _ y: EncryptedInteger, method: CircuitMethod = .fast) -> HybridBit {
        greaterThan(y, x, method: method)
    }

    /// [x = y]: an AND tree over the bitwise XNORs.
    public func equal(_ x: EncryptedInteger, _ y: EncryptedInteger) -> HybridBit {
        precondition(x.width == y.width, "operand widths differ")
        var level = zip(x.bits, y.bits).map { xnor($0, $1) }
        while level.count > 1 {
            var next: [HybridBit] = []
            for i in stride(from: 0, to: level.count - 1, by: 2) { next.append(and(level[i], level[i + 1])) }
            if level.count % 2 == 1 { next.append(level[level.count - 1]) }
            level = next
        }
        return level[0]
    }

    /// max(x, y).
    ///
    /// Paper (eq. 16, with its second h-and read as the XOR the paper's code uses):
    /// R_i = (t ∧ x_i) ⊕ (¬t ∧ y_i), three bootstraps per bit after the comparison.
    /// Fast: R_i = t ? x_i : y_i, two per bit.
    public func maximum(_ x: EncryptedInteger, _ y: EncryptedInteger, method: CircuitMethod = .fast) -> EncryptedInteger {
        let t = greaterThan(x, y, method: method)
        switch method {
        case .paper:
            return EncryptedInteger(bits: zip(x.bits, y.bits).map { xor(and(t, $0), and(not(t), $1)) })
        case .fast:
            return EncryptedInteger(bits: zip(x.bits, y.bits).map { mux(t, $0, $1) })
        }
    }

    /// The maximum of a 2×2 pooling window.
    public func maximum(ofWindow window: [EncryptedInteger], method: CircuitMethod = .fast) -> EncryptedInteger {
        precondition(window.count == 4, "a 2×2 window has four values")
        return maximum(maximum(window[0], window[1], method: method), maximum(window[2], window[3], method: method),
                       method: method)
    }

    /// max(x, 0).
    ///
    /// Paper (Algorithm 2, with the loop body b_i = and(temp, a_i)): temp = ¬a_{n-1}, then every
    /// bit ANDed with temp: n bootstraps. Fast: the sign bit of a ReLU is known to be 0, so
    /// n - 1 bootstraps.
    public func relu(_ x: EncryptedInteger, method: CircuitMethod = .fast) -> EncryptedInteger {
        let keep = not(x.signBit)
        switch method {
        case .paper:
            return EncryptedInteger(bits: x.bits.map { and(keep, $0) })
        case .fast:
            return EncryptedInteger(bits: x.bits.dropLast().map { and(keep, $0) } + [.plain(false)])
        }
    }
}
