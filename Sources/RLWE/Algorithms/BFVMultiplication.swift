import ObscuraMath

/// BFV's ciphertext product, HPS style (Halevi, Polyakov and Shoup, eprint 2018/117), with
/// exact floating-point-corrected base conversions:
/// 1. extend each component, centered, from Q to Q·R (R > 2^(log2 Q + log2 N + 2));
/// 2. tensor in the NTT domain over Q·R: x = (a_0b_0, a_0b_1 + a_1b_0, a_1b_1), exact integers;
/// 3. scale each coefficient by t/Q: write x = Q·y + z with z the centered remainder mod Q,
///    so round(t·x/Q) = t·y + round(t·z/Q); y = (x − z)/Q is computed in R (|y| < R/2), brought
///    back to Q exactly, and round(t·z/Q) = round(t·frac(Σ u_i/q_i)) from the same conversion.
enum BFVMultiplication {
    /// a·b, or a² when `b` is nil (one operand to extend, one product fewer: about a quarter
    /// fewer NTTs).
    static func multiply(_ a: Ciphertext, _ b: Ciphertext?, constants bfv: BFVConstants) -> Ciphertext {
        let context = a.context, n = context.polynomialSize, level = a.level
        let k = bfv.extensionTables.count, width = level + k
        let tables = { (i: Int) in i < level ? context.ciphertextTables[i] : bfv.extensionTables[i - level] }
        let modulus = { (i: Int) in tables(i).modulus }
        let toR = bfv.toExtension[level - 1]

        // 1. Q → Q·R, NTT domain.
        func extended(_ c: RnsPolynomial) -> RnsPolynomial {
            var coefficients = c
            PolynomialArithmetic.inverse(&coefficients) { context.ciphertextTables[$0] }
            var ext = RnsPolynomial(degree: n, limbs: k) { y in
                coefficients.words.withUnsafeBufferPointer { x in toR.convert(x.baseAddress!, into: y, count: n) }
            }
            PolynomialArithmetic.forward(&ext) { bfv.extensionTables[$0] }
            return RnsPolynomial(degree: n, words: c.words + ext.words)
        }
        let a0 = extended(a.components[0]), a1 = extended(a.components[1])

        // 2. The tensor product.
        var e0 = a0, e1 = a0, e2 = a1
        if let b {
            let b0 = extended(b.components[0]), b1 = extended(b.components[1])
            PolynomialArithmetic.multiply(&e0, b0, moduli: modulus)
            PolynomialArithmetic.multiply(&e1, b1, moduli: modulus)
            PolynomialArithmetic.multiplyAdd(&e1, a1, b0, moduli: modulus)
            PolynomialArithmetic.multiply(&e2, b1, moduli: modulus)
        } else {
            PolynomialArithmetic.multiply(&e0, a0, moduli: modulus)
            PolynomialArithmetic.multiply(&e1, a1, moduli: modulus)
            let cross = e1
            PolynomialArithmetic.add(&e1, cross, moduli: modulus)
            PolynomialArithmetic.multiply(&e2, a1, moduli: modulus)
        }

        // 3. Scale by t/Q back to Q, then to the NTT domain.
        let components = [e0, e1, e2].map { e -> RnsPolynomial in
            var x = e
            PolynomialArithmetic.inverse(&x, tables: tables)
            var y = scaleDown(x, level: level, width: width, constants: bfv)
            PolynomialArithmetic.forward(&y) { context.ciphertextTables[$0] }
            return y
        }
        return Ciphertext(context: context, components: components, scale: 1)
    }

    /// round(t·x/Q) mod Q for x over Q·R in the coefficient domain (step 3), coefficients in
    /// blocks so that the splits stay in cache.
    private static func scaleDown(_ x: RnsPolynomial, level: Int, width: Int, constants bfv: BFVConstants) -> RnsPolynomial {
        let n = x.degree, k = width - level
        let toR = bfv.toExtension[level - 1], fromR = bfv.fromExtension[level - 1]
        let qInverse = bfv.productInverseModExtension[level - 1]
        let t = bfv.plaintextModulus.value, tDouble = Double(t)
        let tModQ = (0..<level).map { fromR.target[$0].reduce(t) }
        let block = 512
        return RnsPolynomial(degree: n, limbs: level) { output in
            x.words.withUnsafeBufferPointer { input in
                let source = UnsafeSendablePointer(input.baseAddress!), destination = UnsafeMutableSendablePointer(output)
                let blocks = (n + block - 1) / block
                ParallelWork.forEach(blocks) { b in
                    let start = b * block, count = Swift.min(block, n - start)
                    withUnsafeTemporaryAllocation(of: UInt64.self, capacity: (level + 3 * k + 2) * block) { scratch in
                        withUnsafeTemporaryAllocation(of: Int.self, capacity: 2 * block) { multiples in
                            withUnsafeTemporaryAllocation(of: Double.self, capacity: block) { fractions in
                                let u = scratch.baseAddress!, y = u + level * block, w = y + k * block
                                let z = w + k * block, r = z + block
                                let v = multiples.baseAddress!, vy = v + block, f = fractions.baseAddress!
                                // x = Q·y + z with z the centered remainder mod Q: split the Q limbs.
                                toR.splitAll(source.pointer + start, stride: n, count: count, u: u, v: v, fraction: f)
                                // y = (x − z)/Q in R.
                                for j in 0..<k {
                                    let m = toR.target[j], inverse = qInverse[j], inverseShoup = m.shoup(inverse)
                                    toR.combineAll(u: u, v: v, count: count, target: j, into: z)
                                    let xj = source.pointer + (level + j) * n + start, yj = y + j * count
                                    for c in 0..<count {
                                        yj[c] = m.multiply(m.subtract(xj[c], z[c]), by: inverse, shoup: inverseShoup)
                                    }
                                }
                                // round(t·z/Q) = round(t·(Σ u_i/q_i − v)), a small signed integer.
                                for c in 0..<count { r[c] = UInt64(bitPattern: Int64((f[c] * tDouble).rounded())) }
                                // y back to Q exactly, then t·y + round(t·z/Q).
                                fromR.splitAll(y, stride: count, count: count, u: w, v: vy)
                                for i in 0..<level {
                                    let q = fromR.target[i], tq = tModQ[i], tShoup = q.shoup(tq)
                                    let out = destination.pointer + i * n + start
                                    fromR.combineAll(u: w, v: vy, count: count, target: i, into: out)
                                    for c in 0..<count {
                                        out[c] = q.add(q.multiply(out[c], by: tq, shoup: tShoup), q.reduce(signed: Int64(bitPattern: r[c])))
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
