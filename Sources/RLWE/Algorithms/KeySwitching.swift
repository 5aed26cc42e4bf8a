import ObscuraMath

/// The digits of a polynomial c at level ℓ: d_i = [c]_(q_i) (centered) lifted to every prime of
/// Q_ℓ·P and transformed, digit i at words[i·(ℓ+1)·N ..< (i+1)·(ℓ+1)·N], limb P last.
/// Computed once, they serve any number of key switches of c or of its rotations (hoisting).
struct DecomposedPolynomial: Sendable {
    let level: Int
    let words: [UInt64]
}

/// Key switching with one special prime P and every ciphertext prime a digit (SEAL's
/// construction, see ``KeySwitchingKey``), split in the three steps that hoisting reuses:
/// 1. **decompose** c (level ℓ, NTT) into digits: ℓ inverse NTTs and ℓ·ℓ forward ones;
/// 2. **inner product** Σ_i d_i·(b_i, a_i) over Q_ℓ·P, optionally reading the digits through
///    a Galois permutation (the digits of σ_g(c) are σ_g of the digits of c);
/// 3. **mod down**: divide by P with rounding, back to Q_ℓ.
enum KeySwitching {
    static func decompose(_ c: RnsPolynomial, context: RlweContext) -> DecomposedPolynomial {
        let level = c.limbCount, n = context.polynomialSize, width = level + 1
        var coefficients = c
        PolynomialArithmetic.inverse(&coefficients) { context.ciphertextTables[$0] }
        let words = [UInt64](unsafeUninitializedCapacity: level * width * n) { output, initialized in
            initialized = level * width * n
            coefficients.words.withUnsafeBufferPointer { coefficientWords in
                c.words.withUnsafeBufferPointer { nttWords in
                    let destination = UnsafeMutableSendablePointer(output.baseAddress!)
                    let source = UnsafeSendablePointer(coefficientWords.baseAddress!)
                    let ntt = UnsafeSendablePointer(nttWords.baseAddress!)
                    ParallelWork.forEach(level * width) { pair in
                        let i = pair / width, j = pair % width
                        let out = destination.pointer + pair * n
                        if j == i {
                            out.update(from: ntt.pointer + i * n, count: n)
                            return
                        }
                        let qi = context.ciphertextTables[i].modulus
                        let target = context.tables(limb: j, level: level)
                        let m = target.modulus
                        let digit = source.pointer + i * n
                        if m.value > qi.value {
                            // q_i < m: the centered digit is d or d + (m − q_i).
                            let half = qi.value >> 1, shift = m.value &- qi.value
                            for k in 0..<n { let d = digit[k]; out[k] = d > half ? d &+ shift : d }
                        } else {
                            for k in 0..<n { out[k] = m.reduce(signed: qi.centered(digit[k])) }
                        }
                        target.forward(out)
                    }
                }
            }
        }
        return DecomposedPolynomial(level: level, words: words)
    }

    /// Σ_i d_i ⊙ (b_i, a_i) over Q_ℓ·P (ℓ + 1 limbs), reading digit values at perm[k] if given.
    /// Products of reduced values are below 2^122, so up to 64 digits sum in 128 bits; the sums
    /// are kept for a block of coefficients at a time, on the stack.
    static func innerProduct(_ digits: DecomposedPolynomial, key: KeySwitchingKey, permutation: [Int]?)
        -> (RnsPolynomial, RnsPolynomial) {
        let context = key.context, n = context.polynomialSize
        let level = digits.level, width = level + 1, top = context.maximumLevel, keyWidth = top + 1
        let perm = permutation ?? Array(0..<n)
        let block = 256
        var out1 = RnsPolynomial(degree: n, limbs: width)
        let out0 = RnsPolynomial(degree: n, limbs: width) { o0 in
            out1.words.withUnsafeMutableBufferPointer { o1 in
                digits.words.withUnsafeBufferPointer { d in
                    key.bodyWords.withUnsafeBufferPointer { b in
                        key.maskWords.withUnsafeBufferPointer { a in
                            perm.withUnsafeBufferPointer { p in
                                let r0 = UnsafeMutableSendablePointer(o0), r1 = UnsafeMutableSendablePointer(o1.baseAddress!)
                                let digit = UnsafeSendablePointer(d.baseAddress!)
                                let body = UnsafeSendablePointer(b.baseAddress!), mask = UnsafeSendablePointer(a.baseAddress!)
                                let index = UnsafeSendablePointer(p.baseAddress!)
                                ParallelWork.forEach(width) { j in
                                    let m = context.tables(limb: j, level: level).modulus
                                    let keyLimb = j < level ? j : top
                                    withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 4 * block) { accumulator in
                                        let acc = accumulator.baseAddress!
                                        for start in stride(from: 0, to: n, by: block) {
                                            let count = Swift.min(block, n - start)
                                            acc.initialize(repeating: 0, count: 4 * count)
                                            for i in 0..<level {
                                                let dij = digit.pointer + (i * width + j) * n
                                                let bij = body.pointer + (i * keyWidth + keyLimb) * n + start
                                                let aij = mask.pointer + (i * keyWidth + keyLimb) * n + start
                                                let indices = index.pointer + start
                                                for k in 0..<count {
                                                    let x = dij[indices[k]]
                                                    let p0 = x.multipliedFullWidth(by: bij[k]), p1 = x.multipliedFullWidth(by: aij[k])
                                                    let (l0, c0) = acc[4 * k].addingReportingOverflow(p0.low)
                                                    acc[4 * k] = l0
                                                    acc[4 * k + 1] &+= p0.high &+ (c0 ? 1 : 0)
                                                    let (l1, c1) = acc[4 * k + 2].addingReportingOverflow(p1.low)
                                                    acc[4 * k + 2] = l1
                                                    acc[4 * k + 3] &+= p1.high &+ (c1 ? 1 : 0)
                                                }
                                            }
                                            for k in 0..<count {
                                                r0.pointer[j * n + start + k] = m.reduce(high: acc[4 * k + 1], low: acc[4 * k])
                                                r1.pointer[j * n + start + k] = m.reduce(high: acc[4 * k + 3], low: acc[4 * k + 2])
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (out0, out1)
    }

    /// (x − [x]_last)/last, rounded (the remainder taken centered): drops the last limb of an
    /// NTT-domain polynomial whose limb i is mod `tables(i)`, given last^-1 mod every other
    /// prime. CKKS rescaling, BFV modulus switching and key switching's division by P are all
    /// this one operation.
    static func divideRoundingByLastLimb(_ x: RnsPolynomial, tables: (Int) -> NTTTables, lastInverse: [UInt64]) -> RnsPolynomial {
        let n = x.degree, limbs = x.limbCount
        let lastTables = tables(limbs - 1), last = lastTables.modulus
        var remainder = Array(x.limb(limbs - 1))
        remainder.withUnsafeMutableBufferPointer { lastTables.inverse($0.baseAddress!) }
        let half = last.value >> 1
        let out = RnsPolynomial(degree: n, limbs: limbs - 1) { output in
            x.words.withUnsafeBufferPointer { input in
                remainder.withUnsafeBufferPointer { r in
                    let rPointer = UnsafeSendablePointer(r.baseAddress!)
                    let source = UnsafeSendablePointer(input.baseAddress!), destination = UnsafeMutableSendablePointer(output)
                    ParallelWork.forEach(limbs - 1) { j in
                        let t = tables(j), m = t.modulus
                        let offset = m.reduce(last.value)
                        let inverse = lastInverse[j], inverseShoup = m.shoup(lastInverse[j])
                        let fourQ = 4 &* m.value
                        let l = destination.pointer + j * n, limb = source.pointer + j * n
                        // The centered remainder mod q_j, transformed (lazily) in place …
                        for k in 0..<n {
                            let v = rPointer.pointer[k]
                            l[k] = v > half ? m.subtract(m.reduce(v), offset) : m.reduce(v)
                        }
                        t.forwardLazy(l)
                        // … then (limb − lifted)·last^-1, the difference kept positive below 5q.
                        for k in 0..<n { l[k] = m.multiply(limb[k] &+ fourQ &- l[k], by: inverse, shoup: inverseShoup) }
                    }
                }
            }
        }
        return out
    }

    /// c·s′ → (Δc_0, Δc_1) at c's level: the full key switch of one polynomial.
    static func switchKey(_ c: RnsPolynomial, key: KeySwitchingKey) -> (RnsPolynomial, RnsPolynomial) {
        finish(decompose(c, context: key.context), key: key, permutation: nil)
    }

    /// Inner product and mod down of already decomposed digits.
    static func finish(_ digits: DecomposedPolynomial, key: KeySwitchingKey, permutation: [Int]?) -> (RnsPolynomial, RnsPolynomial) {
        let context = key.context, level = digits.level
        let (x0, x1) = innerProduct(digits, key: key, permutation: permutation)
        let inverse = Array(context.specialInverse.prefix(level))
        let tables = { (i: Int) in context.tables(limb: i, level: level) }
        return (divideRoundingByLastLimb(x0, tables: tables, lastInverse: inverse),
                divideRoundingByLastLimb(x1, tables: tables, lastInverse: inverse))
    }
}
