import ObscuraMath

/// BFV's ciphertext product, HPS style (Halevi, Polyakov and Shoup, eprint 2018/117), with
/// exact floating-point-corrected base conversions:
/// 1. extend each component, centered, from Q to Q·R (R > 2^(log2 Q + log2 N + 2));
/// 2. tensor in the NTT domain over Q·R: x = (a_0b_0, a_0b_1 + a_1b_0, a_1b_1), exact integers;
/// 3. scale each coefficient by t/Q: write x = Q·y + z with z the centered remainder mod Q,
///    so round(t·x/Q) = t·y + round(t·z/Q); y = (x − z)/Q is computed in R (|y| < R/2), brought
///    back to Q exactly, and round(t·z/Q) = round(t·frac(Σ u_i/q_i)) from the same conversion.
enum BFVMultiplication {
    static func multiply(_ a: Ciphertext, _ b: Ciphertext, constants bfv: BFVConstants) -> Ciphertext {
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
        let b0 = extended(b.components[0]), b1 = extended(b.components[1])

        // 2. The tensor product.
        var e0 = a0, e1 = a0, e2 = a1
        PolynomialArithmetic.multiply(&e0, b0, moduli: modulus)
        PolynomialArithmetic.multiply(&e1, b1, moduli: modulus)
        PolynomialArithmetic.multiplyAdd(&e1, a1, b0, moduli: modulus)
        PolynomialArithmetic.multiply(&e2, b1, moduli: modulus)

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

    /// round(t·x/Q) mod Q for x over Q·R in the coefficient domain (step 3).
    private static func scaleDown(_ x: RnsPolynomial, level: Int, width: Int, constants bfv: BFVConstants) -> RnsPolynomial {
        let n = x.degree, k = width - level
        let toR = bfv.toExtension[level - 1], fromR = bfv.fromExtension[level - 1]
        let qInverse = bfv.productInverseModExtension[level - 1]
        let t = bfv.plaintextModulus.value, tDouble = Double(t)
        var out = RnsPolynomial(degree: n, limbs: level)
        x.words.withUnsafeBufferPointer { input in
            out.words.withUnsafeMutableBufferPointer { output in
                let source = UnsafeSendablePointer(input.baseAddress!)
                let destination = UnsafeMutableSendablePointer(output.baseAddress!)
                let parts = ParallelWork.threads
                ParallelWork.forEach(parts) { part in
                    let range = chunk(n, part: part, of: parts)
                    withUnsafeTemporaryAllocation(of: UInt64.self, capacity: level + 2 * k) { scratch in
                        let u = scratch.baseAddress!, y = u + level, w = y + k
                        for c in range {
                            let (v, fraction) = toR.split(source.pointer + c, stride: n, into: u)
                            let rounded = Int64((fraction * tDouble).rounded())
                            // y = (x − z)/Q in R.
                            for j in 0..<k {
                                let r = toR.target[j]
                                let z = toR.combine(u, v: v, target: j)
                                y[j] = r.multiply(r.subtract(source.pointer[(level + j) * n + c], z), qInverse[j])
                            }
                            // y back to Q exactly, then t·y + round(t·z/Q).
                            let (vy, _) = fromR.split(y, stride: 1, into: w)
                            for i in 0..<level {
                                let q = fromR.target[i]
                                let yi = fromR.combine(w, v: vy, target: i)
                                destination.pointer[i * n + c] = q.add(q.multiply(yi, q.reduce(t)), q.reduce(signed: rounded))
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    private static func chunk(_ n: Int, part: Int, of parts: Int) -> Range<Int> {
        (n * part / parts)..<(n * (part + 1) / parts)
    }
}
