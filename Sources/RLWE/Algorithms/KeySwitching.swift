import ObscuraMath

/// The digits of a polynomial c at level ℓ: d_j = [c]_(D_j), the centered value of c modulo
/// digit j's primes, lifted to every prime of Q_ℓ·P and transformed. Digit j occupies
/// words[j·w·N ..< (j+1)·w·N] with w = ℓ + α limbs (special primes last). Computed once, they
/// serve any number of key switches of c or of its rotations (hoisting).
struct DecomposedPolynomial: Sendable {
    let level: Int
    let digitCount: Int
    let words: [UInt64]
}

/// Hybrid key switching (see ``KeySwitchingKey``), split in the three steps that hoisting reuses
/// (BV key switching, without special primes, skips the third):
/// 1. **decompose** (mod up) c at level ℓ, NTT domain, into ⌈ℓ/α⌉ digits, each converted
///    exactly from its α primes to the other ℓ + α − α primes and transformed there;
/// 2. **inner product** Σ_j d_j·(b_j, a_j) over Q_ℓ·P, optionally reading the digits through
///    a Galois permutation (the digits of σ_g(c) are σ_g of the digits of c);
/// 3. **mod down**: divide by P with rounding, back to Q_ℓ.
enum KeySwitching {
    static func decompose(_ c: RnsPolynomial, context: RlweContext) -> DecomposedPolynomial {
        let level = c.limbCount, n = context.polynomialSize, width = level + context.specialCount
        let digits = (level + context.digitSize - 1) / context.digitSize
        var coefficients = c
        PolynomialArithmetic.inverse(&coefficients) { context.ciphertextTables[$0] }
        // Each digit's split (u_i and v of the exact conversion) once, then every target.
        let alpha = context.digitSize
        var splits = [UInt64](repeating: 0, count: digits * alpha * n)
        var multiples = [Int](repeating: 0, count: digits * n)
        coefficients.words.withUnsafeBufferPointer { coefficientWords in
            splits.withUnsafeMutableBufferPointer { u in
                multiples.withUnsafeMutableBufferPointer { v in
                    let source = UnsafeSendablePointer(coefficientWords.baseAddress!)
                    let us = UnsafeMutableSendablePointer(u.baseAddress!), vs = UnsafeMutableSendablePointer(v.baseAddress!)
                    ParallelWork.forEach(digits) { j in
                        let primes = context.digitPrimes(j, level: level)
                        context.digitConverters[j][primes.count - 1].splitAll(
                            source.pointer + primes.lowerBound * n, stride: n, count: n,
                            u: us.pointer + j * alpha * n, v: vs.pointer + j * n)
                    }
                }
            }
        }
        let words = [UInt64](unsafeUninitializedCapacity: digits * width * n) { output, initialized in
            initialized = digits * width * n
            splits.withUnsafeBufferPointer { u in
                multiples.withUnsafeBufferPointer { v in
                    c.words.withUnsafeBufferPointer { nttWords in
                        let destination = UnsafeMutableSendablePointer(output.baseAddress!)
                        let ntt = UnsafeSendablePointer(nttWords.baseAddress!)
                        let us = UnsafeSendablePointer(u.baseAddress!), vs = UnsafeSendablePointer(v.baseAddress!)
                        ParallelWork.forEach(digits * width) { pair in
                            let j = pair / width, t = pair % width
                            let out = destination.pointer + pair * n
                            let primes = context.digitPrimes(j, level: level)
                            if primes.contains(t) {
                                out.update(from: ntt.pointer + t * n, count: n)
                                return
                            }
                            context.digitConverters[j][primes.count - 1].combineAll(
                                u: us.pointer + j * alpha * n, v: vs.pointer + j * n, count: n,
                                target: context.primeIndex(limb: t, level: level), into: out)
                            context.tables(limb: t, level: level).forward(out)
                        }
                    }
                }
            }
        }
        return DecomposedPolynomial(level: level, digitCount: digits, words: words)
    }

    /// Σ_j d_j ⊙ (b_j, a_j) over Q_ℓ·P (ℓ + α limbs), reading digit values at perm[k] if given.
    /// Products of reduced values are below 2^122, so up to 64 digits sum in 128 bits; the sums
    /// are kept for a block of coefficients at a time, on the stack.
    static func innerProduct(_ digits: DecomposedPolynomial, key: KeySwitchingKey, permutation: [Int]?)
        -> (RnsPolynomial, RnsPolynomial) {
        let context = key.context, n = context.polynomialSize
        let level = digits.level, width = level + context.specialCount
        let keyWidth = context.maximumLevel + context.specialCount
        let perm = permutation ?? context.identityPermutation
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
                                ParallelWork.forEach(width) { t in
                                    let m = context.tables(limb: t, level: level).modulus
                                    let keyLimb = context.primeIndex(limb: t, level: level)
                                    withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 4 * block) { accumulator in
                                        let acc = accumulator.baseAddress!
                                        for start in stride(from: 0, to: n, by: block) {
                                            let count = Swift.min(block, n - start)
                                            acc.initialize(repeating: 0, count: 4 * count)
                                            for j in 0..<digits.digitCount {
                                                let dj = digit.pointer + (j * width + t) * n
                                                let bj = body.pointer + (j * keyWidth + keyLimb) * n + start
                                                let aj = mask.pointer + (j * keyWidth + keyLimb) * n + start
                                                let indices = index.pointer + start
                                                for k in 0..<count {
                                                    let x = dj[indices[k]]
                                                    let p0 = x.multipliedFullWidth(by: bj[k]), p1 = x.multipliedFullWidth(by: aj[k])
                                                    let (l0, c0) = acc[4 * k].addingReportingOverflow(p0.low)
                                                    acc[4 * k] = l0
                                                    acc[4 * k + 1] &+= p0.high &+ (c0 ? 1 : 0)
                                                    let (l1, c1) = acc[4 * k + 2].addingReportingOverflow(p1.low)
                                                    acc[4 * k + 2] = l1
                                                    acc[4 * k + 3] &+= p1.high &+ (c1 ? 1 : 0)
                                                }
                                            }
                                            for k in 0..<count {
                                                r0.pointer[t * n + start + k] = m.reduce(high: acc[4 * k + 1], low: acc[4 * k])
                                                r1.pointer[t * n + start + k] = m.reduce(high: acc[4 * k + 3], low: acc[4 * k + 2])
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

    /// round(x/D) for the product D of x's limbs `kept…` (NTT domain): with y the centered
    /// value of x mod D (converted exactly to the kept primes by `converter`, whose target i is
    /// limb i), (x − y)·D^-1 mod each kept prime. CKKS rescaling (D = q_(ℓ−1)), BFV modulus
    /// switching (the same) and key switching's mod down (D = P) are all this one operation.
    static func divideRounding(_ x: RnsPolynomial, keeping kept: Int, tables: (Int) -> NTTTables,
                               converter: BaseConverter, inverses: [UInt64]) -> RnsPolynomial {
        let n = x.degree, dropped = x.limbCount - kept
        // The dropped limbs in the coefficient domain.
        var remainder = RnsPolynomial(degree: n, words: Array(x.words[(kept * n)...]))
        PolynomialArithmetic.inverse(&remainder) { tables(kept + $0) }
        // The split of the remainder; one dropped prime (a rescale) needs only its centered value.
        var u = [UInt64](repeating: 0, count: dropped * n), v = [Int](repeating: 0, count: n)
        if dropped == 1 {
            let last = converter.source.moduli[0].value, half = last >> 1
            remainder.words.withUnsafeBufferPointer { r in
                for k in 0..<n { u[k] = r[k]; v[k] = r[k] > half ? 1 : 0 }
            }
        } else {
            remainder.words.withUnsafeBufferPointer { r in
                converter.splitAll(r.baseAddress!, stride: n, count: n, u: &u, v: &v)
            }
        }
        return RnsPolynomial(degree: n, limbs: kept) { output in
            x.words.withUnsafeBufferPointer { input in
                u.withUnsafeBufferPointer { us in
                    v.withUnsafeBufferPointer { vs in
                        let split = UnsafeSendablePointer(us.baseAddress!), multiples = UnsafeSendablePointer(vs.baseAddress!)
                        let source = UnsafeSendablePointer(input.baseAddress!), destination = UnsafeMutableSendablePointer(output)
                        ParallelWork.forEach(kept) { i in
                            let t = tables(i), m = t.modulus
                            let inverse = inverses[i], inverseShoup = m.shoup(inverses[i])
                            let fourQ = 4 &* m.value
                            let lifted = destination.pointer + i * n, limb = source.pointer + i * n
                            // y mod q_i, transformed (lazily) in place …
                            converter.combineAll(u: split.pointer, v: multiples.pointer, count: n, target: i, into: lifted)
                            t.forwardLazy(lifted)
                            // … then (x − y)·D^-1, the difference kept positive below 5q.
                            for k in 0..<n { lifted[k] = m.multiply(limb[k] &+ fourQ &- lifted[k], by: inverse, shoup: inverseShoup) }
                        }
                    }
                }
            }
        }
    }

    /// c·s′ → (Δc_0, Δc_1) at c's level: the full key switch of one polynomial.
    static func switchKey(_ c: RnsPolynomial, key: KeySwitchingKey) -> (RnsPolynomial, RnsPolynomial) {
        finish(decompose(c, context: key.context), key: key, permutation: nil)
    }

    /// Inner product and mod down of already decomposed digits.
    static func finish(_ digits: DecomposedPolynomial, key: KeySwitchingKey, permutation: [Int]?) -> (RnsPolynomial, RnsPolynomial) {
        let context = key.context, level = digits.level
        let (x0, x1) = innerProduct(digits, key: key, permutation: permutation)
        // Without special primes (BV key switching) the sums are already mod Q_ℓ.
        guard let specialToCiphertext = context.specialToCiphertext else { return (x0, x1) }
        let tables = { (i: Int) in context.tables(limb: i, level: level) }
        func modDown(_ x: RnsPolynomial) -> RnsPolynomial {
            divideRounding(x, keeping: level, tables: tables, converter: specialToCiphertext,
                           inverses: context.specialInverse)
        }
        return (modDown(x0), modDown(x1))
    }
}
