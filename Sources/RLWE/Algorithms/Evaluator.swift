import ObscuraMath

/// The server's operations on ciphertexts. Built from the context and, for multiplication and
/// rotations, the client's ``EvaluationKey``; it never sees a secret key.
public struct Evaluator: Sendable {
    public let context: RlweContext
    public let key: EvaluationKey?

    /// An evaluator for `context`; the key, if any, must belong to it.
    public init(context: RlweContext, key: EvaluationKey? = nil) throws(RlweError) {
        guard key.map({ $0.context === context }) ?? true else { throw .contextMismatch }
        self.context = context
        self.key = key
    }

    private var modulus: (Int) -> Modulus { { [context] in context.ciphertextTables[$0].modulus } }

    private func check(_ ct: Ciphertext) throws(RlweError) {
        guard ct.context === context else { throw .contextMismatch }
    }

    /// Same context and level; for sums (not products) also the same CKKS scale.
    private func checkPair(_ a: Ciphertext, _ b: Ciphertext, sameScale: Bool) throws(RlweError) {
        try check(a)
        try check(b)
        guard a.level == b.level else { throw .levelMismatch(a.level, b.level) }
        if sameScale && !context.isBFV { try checkScales(a.scale, b.scale) }
    }

    private func checkScales(_ a: Double, _ b: Double) throws(RlweError) {
        guard abs(a / b - 1) < 1e-9 else { throw .scaleMismatch(a, b) }
    }

    // MARK: Linear operations

    /// a + b (sizes may differ: the result has the larger).
    public func add(_ a: Ciphertext, _ b: Ciphertext) throws(RlweError) -> Ciphertext {
        try checkPair(a, b, sameScale: true)
        var (long, short) = a.size >= b.size ? (a, b) : (b, a)
        for i in 0..<short.size { PolynomialArithmetic.add(&long.components[i], short.components[i], moduli: modulus) }
        return long
    }

    /// a − b.
    public func subtract(_ a: Ciphertext, _ b: Ciphertext) throws(RlweError) -> Ciphertext {
        try add(a, negate(b))
    }

    /// −a.
    public func negate(_ a: Ciphertext) throws(RlweError) -> Ciphertext {
        try check(a)
        var out = a
        for i in 0..<out.size { PolynomialArithmetic.negate(&out.components[i], moduli: modulus) }
        return out
    }

    /// BFV: ct + m.
    public func add(_ ct: Ciphertext, _ message: BFVPlaintext) throws(RlweError) -> Ciphertext {
        try check(ct)
        let bfv = try context.bfvConstants(checking: message)
        let n = context.polynomialSize, level = ct.level
        var scaled = RnsPolynomial(degree: n, limbs: level)
        scaled.words.withUnsafeMutableBufferPointer { out in
            for i in 0..<level {
                let m = context.ciphertextTables[i].modulus, d = bfv.delta[level - 1][i], dShoup = m.shoup(d)
                for k in 0..<n { out[i * n + k] = m.multiply(message.coefficients[k], by: d, shoup: dShoup) }
            }
        }
        PolynomialArithmetic.forward(&scaled) { context.ciphertextTables[$0] }
        var out = ct
        PolynomialArithmetic.add(&out.components[0], scaled, moduli: modulus)
        return out
    }

    /// BFV: ct + c in every slot. The constant polynomial c is c at every NTT point, so this adds
    /// Δ·c mod q_i to every word of c_0's limb i: no encoding and no NTT.
    public func add(_ ct: Ciphertext, constant c: Int64) throws(RlweError) -> Ciphertext {
        try check(ct)
        guard let bfv = context.bfv else { throw .wrongScheme("constants are added to BFV ciphertexts") }
        let message = bfv.plaintextModulus.reduce(signed: c)
        let n = context.polynomialSize, level = ct.level
        var out = ct
        out.components[0].words.withUnsafeMutableBufferPointer { words in
            for i in 0..<level {
                let m = modulus(i), shift = m.multiply(message, bfv.delta[level - 1][i])
                for k in (i * n)..<((i + 1) * n) { words[k] = m.add(words[k], shift) }
            }
        }
        return out
    }

    /// CKKS: ct + c in every slot (real c): round(c·scale) added to every NTT value of c_0, the
    /// constant polynomial's transform. |c·scale| must stay below 2^126.
    public func add(_ ct: Ciphertext, approximately c: Double) throws(RlweError) -> Ciphertext {
        try check(ct)
        guard !context.isBFV else { throw .wrongScheme("BFV constants are integers: add(_:constant:)") }
        let scaled = (c * ct.scale).rounded()
        guard scaled.isFinite, abs(scaled) < 0x1p126 else { throw .invalidEncoding("constant \(c) at scale \(ct.scale)") }
        let value = Int128(scaled)
        let n = context.polynomialSize, level = ct.level
        var out = ct
        out.components[0].words.withUnsafeMutableBufferPointer { words in
            for i in 0..<level {
                let m = modulus(i), q = Int128(m.value)
                let shift = UInt64((value % q + q) % q)
                for k in (i * n)..<((i + 1) * n) { words[k] = m.add(words[k], shift) }
            }
        }
        return out
    }

    /// CKKS: ct + p (same level and scale).
    public func add(_ ct: Ciphertext, _ plaintext: Plaintext) throws(RlweError) -> Ciphertext {
        try check(ct)
        guard plaintext.context === context else { throw .contextMismatch }
        guard !context.isBFV else { throw .wrongScheme("add BFV messages as BFVPlaintext values") }
        guard plaintext.level >= ct.level else { throw .levelMismatch(ct.level, plaintext.level) }
        try checkScales(ct.scale, plaintext.scale)
        var out = ct
        PolynomialArithmetic.add(&out.components[0], plaintext.polynomial, moduli: modulus)
        return out
    }

    /// ct ⊙ p: one pointwise product per limb and component. The scales multiply (CKKS).
    public func multiply(_ ct: Ciphertext, _ plaintext: Plaintext) throws(RlweError) -> Ciphertext {
        try check(ct)
        guard plaintext.context === context else { throw .contextMismatch }
        guard plaintext.level >= ct.level else { throw .levelMismatch(ct.level, plaintext.level) }
        let components = ct.components.map {
            plaintext.isPrepared
                ? PolynomialArithmetic.product($0, plaintext.polynomial, shoup: plaintext.shoup, limbs: ct.level, moduli: modulus)
                : PolynomialArithmetic.product($0, plaintext.polynomial, limbs: ct.level, moduli: modulus)
        }
        return Ciphertext(context: context, components: components, scale: ct.scale * plaintext.scale)
    }

    /// ct·w for an integer w (the same in every slot; the noise grows by |w|, the scale stays).
    public func multiply(_ ct: Ciphertext, byInteger w: Int64) throws(RlweError) -> Ciphertext {
        try check(ct)
        var out = ct
        let constants = (0..<ct.level).map { context.ciphertextTables[$0].modulus.reduce(signed: w) }
        for i in 0..<out.size { PolynomialArithmetic.multiply(&out.components[i], constants: constants, moduli: modulus) }
        return out
    }

    /// CKKS: the message times a real c ≠ 0, exactly and without touching the residues: a
    /// phase Δ·m + e is also (Δ/|c|)·(c·m) + e, so the scale is divided by |c| (and the
    /// ciphertext negated when c < 0). The precision, relative to the message, stays.
    public func multiply(_ ct: Ciphertext, byRescaling c: Double) throws(RlweError) -> Ciphertext {
        try check(ct)
        guard !context.isBFV else { throw .wrongScheme("BFV messages are integers mod t: multiply(_:byInteger:)") }
        guard c.isFinite, c != 0, (ct.scale / abs(c)).isNormal else { throw .invalidEncoding("factor \(c) at scale \(ct.scale)") }
        var out = c < 0 ? try negate(ct) : ct
        out.scale = ct.scale / abs(c)
        return out
    }

    // MARK: Multiplication

    /// a·b without relinearization: three components. BFV scales the tensor product by t/Q
    /// exactly (HPS); CKKS multiplies the scales.
    public func multiply(_ a: Ciphertext, _ b: Ciphertext) throws(RlweError) -> Ciphertext {
        try checkPair(a, b, sameScale: false)
        guard a.size == 2, b.size == 2 else { throw .notRelinearized }
        if let bfv = context.bfv {
            return BFVMultiplication.multiply(a, b, constants: bfv)
        }
        let m = modulus
        var c0 = a.components[0], c1 = a.components[0], c2 = a.components[1]
        PolynomialArithmetic.multiply(&c0, b.components[0], moduli: m)
        PolynomialArithmetic.multiply(&c1, b.components[1], moduli: m)
        PolynomialArithmetic.multiplyAdd(&c1, a.components[1], b.components[0], moduli: m)
        PolynomialArithmetic.multiply(&c2, b.components[1], moduli: m)
        return Ciphertext(context: context, components: [c0, c1, c2], scale: a.scale * b.scale)
    }

    /// a², cheaper than `multiply(a, a)`: BFV extends one operand instead of two.
    public func square(_ a: Ciphertext) throws(RlweError) -> Ciphertext {
        try check(a)
        guard a.size == 2 else { throw .notRelinearized }
        if let bfv = context.bfv { return BFVMultiplication.multiply(a, nil, constants: bfv) }
        return try multiply(a, a)
    }

    /// a², relinearized.
    public func squareRelinearize(_ a: Ciphertext) throws(RlweError) -> Ciphertext {
        try relinearize(square(a))
    }

    /// (c_0, c_1, c_2) → (c_0, c_1) + KeySwitch_(s²→s)(c_2).
    public func relinearize(_ ct: Ciphertext) throws(RlweError) -> Ciphertext {
        try check(ct)
        guard ct.size == 3 else { return ct }
        guard let relin = key?.relinearization else { throw .missingRelinearizationKey }
        let (d0, d1) = KeySwitching.switchKey(ct.components[2], key: relin)
        var c0 = ct.components[0], c1 = ct.components[1]
        PolynomialArithmetic.add(&c0, d0, moduli: modulus)
        PolynomialArithmetic.add(&c1, d1, moduli: modulus)
        return Ciphertext(context: context, components: [c0, c1], scale: ct.scale)
    }

    /// a·b, relinearized.
    public func multiplyRelinearize(_ a: Ciphertext, _ b: Ciphertext) throws(RlweError) -> Ciphertext {
        try relinearize(multiply(a, b))
    }

    /// CKKS: a·b, relinearized and rescaled, with key switching's division by P and the
    /// rescale's division by the last prime done as one division by q_(ℓ−1)·P: (P·(c_0, c_1) +
    /// Σ_j d_j·(b_j, a_j)) / (P·q_(ℓ−1)), rounded once. Saves a pass of inverse and forward
    /// NTTs over the separate relinearize and rescale.
    public func multiplyRelinearizeRescale(_ a: Ciphertext, _ b: Ciphertext) throws(RlweError) -> Ciphertext {
        guard !context.isBFV else { throw .wrongScheme("BFV has no rescale; use multiplyRelinearize") }
        return try relinearizeRescale(multiply(a, b))
    }

    /// CKKS: a three-component ciphertext (a product, or a sum of products) relinearized and
    /// rescaled in one division by P·q_(ℓ−1), as in ``multiplyRelinearizeRescale(_:_:)``.
    public func relinearizeRescale(_ product: Ciphertext) throws(RlweError) -> Ciphertext {
        try check(product)
        guard !context.isBFV else { throw .wrongScheme("BFV has no rescale; use relinearize") }
        guard product.size == 3 else { throw .invalidParameters("relinearizeRescale takes a three-component ciphertext") }
        let level = product.level
        guard level > 1 else { throw .endOfModulusChain }
        guard let relin = key?.relinearization else { throw .missingRelinearizationKey }
        let digits = KeySwitching.decompose(product.components[2], context: context)
        var (x0, x1) = KeySwitching.innerProduct(digits, key: relin, permutation: nil)
        // + P·(c_0, c_1) on the ciphertext primes (P·c ≡ 0 mod P).
        let n = context.polynomialSize
        for (x, c) in [(0, product.components[0]), (1, product.components[1])] {
            var target = x == 0 ? x0 : x1
            target.words.withUnsafeMutableBufferPointer { out in
                c.words.withUnsafeBufferPointer { input in
                    for i in 0..<level {
                        let q = context.ciphertextTables[i].modulus, p = context.specialModQ[i], pShoup = q.shoup(p)
                        for k in (i * n)..<((i + 1) * n) { out[k] = q.add(out[k], q.multiply(input[k], by: p, shoup: pShoup)) }
                    }
                }
            }
            if x == 0 { x0 = target } else { x1 = target }
        }
        let tables = { [context] (i: Int) in context.tables(limb: i, level: level) }
        let components = [x0, x1].map {
            KeySwitching.divideRounding($0, keeping: level - 1, tables: tables,
                                        converter: context.fusedDropConverters[level - 2],
                                        inverses: context.fusedDropInverses[level - 2])
        }
        let last = Double(context.ciphertextTables[level - 1].modulus.value)
        return Ciphertext(context: context, components: components, scale: product.scale / last)
    }

    /// Drops the last ciphertext prime q: every component becomes round(c/q). CKKS: the scale
    /// is divided by q (a rescale). BFV: a modulus switch, the message unchanged.
    public func dropLastModulus(_ ct: Ciphertext) throws(RlweError) -> Ciphertext {
        try check(ct)
        let level = ct.level
        guard level > 1 else { throw .endOfModulusChain }
        let last = context.ciphertextTables[level - 1].modulus
        let components = ct.components.map {
            KeySwitching.divideRounding($0, keeping: level - 1, tables: { context.ciphertextTables[$0] },
                                        converter: context.dropConverters[level - 2], inverses: context.dropInverses[level - 2])
        }
        return Ciphertext(context: context, components: components,
                          scale: context.isBFV ? 1 : ct.scale / Double(last.value))
    }

    /// The ciphertext at a lower level ℓ′, its message unchanged: CKKS keeps the residues mod
    /// q_0…q_(ℓ′−1) (exact: the scaled message stays below Q_ℓ′/2 while ℓ′ has headroom), BFV
    /// switches the modulus down prime by prime. Operands of a sum or product must share a level.
    public func dropToLevel(_ ct: Ciphertext, _ level: Int) throws(RlweError) -> Ciphertext {
        try check(ct)
        guard (1...ct.level).contains(level) else { throw .levelMismatch(ct.level, level) }
        if context.isBFV {
            var out = ct
            while out.level > level { out = try dropLastModulus(out) }
            return out
        }
        return Ciphertext(context: context, components: ct.components.map { $0.prefix(limbs: level) }, scale: ct.scale)
    }

    /// CKKS: divides by the last prime (after a multiplication).
    public func rescale(_ ct: Ciphertext) throws(RlweError) -> Ciphertext {
        guard !context.isBFV else { throw .wrongScheme("BFV has no rescale; dropLastModulus switches the modulus") }
        return try dropLastModulus(ct)
    }

    // MARK: Rotations

    /// σ_g then a key switch from σ_g(s) back to s.
    public func applyGalois(_ ct: Ciphertext, element g: Int) throws(RlweError) -> Ciphertext {
        try check(ct)
        guard ct.size == 2 else { throw .notRelinearized }
        guard let galoisKey = key?.galois[g] else { throw .missingGaloisKey(element: g) }
        let perm = context.galoisPermutation(g)
        let c0 = PolynomialArithmetic.permute(ct.components[0], perm)
        let c1 = PolynomialArithmetic.permute(ct.components[1], perm)
        let (d0, d1) = KeySwitching.switchKey(c1, key: galoisKey)
        var out0 = c0
        PolynomialArithmetic.add(&out0, d0, moduli: modulus)
        return Ciphertext(context: context, components: [out0, d1], scale: ct.scale)
    }

    /// Rotates the slots left by `steps` (BFV: each row of N/2 slots; negative: right).
    public func rotate(_ ct: Ciphertext, by steps: Int) throws(RlweError) -> Ciphertext {
        let g = context.galoisElement(rotatingBy: steps)
        return g == 1 ? ct : try applyGalois(ct, element: g)
    }

    /// CKKS: the complex conjugate of every slot.
    public func conjugate(_ ct: Ciphertext) throws(RlweError) -> Ciphertext {
        guard !context.isBFV else { throw .wrongScheme("conjugation is CKKS's; BFV swaps rows with swapRows") }
        return try applyGalois(ct, element: context.conjugationElement)
    }

    /// BFV: swaps the two rows of slots.
    public func swapRows(_ ct: Ciphertext) throws(RlweError) -> Ciphertext {
        guard context.isBFV else { throw .wrongScheme("row swaps are BFV's; CKKS conjugates") }
        return try applyGalois(ct, element: context.conjugationElement)
    }

    /// Several rotations of one ciphertext sharing one decomposition of c_1 (hoisting, Halevi
    /// and Shoup eprint 2018/244 §5): each further rotation costs a permutation, an inner
    /// product and a mod down instead of a full key switch.
    public func rotations(of ct: Ciphertext, by steps: [Int]) throws(RlweError) -> [Ciphertext] {
        try check(ct)
        guard ct.size == 2 else { throw .notRelinearized }
        let elements = steps.map { context.galoisElement(rotatingBy: $0) }
        var keys: [Int: KeySwitchingKey] = [:]
        for g in elements where g != 1 {
            guard let k = key?.galois[g] else { throw .missingGaloisKey(element: g) }
            keys[g] = k
        }
        guard !keys.isEmpty else { return steps.map { _ in ct } }
        let digits = KeySwitching.decompose(ct.components[1], context: context)
        return elements.map { g in
            guard g != 1, let galoisKey = keys[g] else { return ct }
            let perm = context.galoisPermutation(g)
            let (d0, d1) = KeySwitching.finish(digits, key: galoisKey, permutation: perm)
            var c0 = PolynomialArithmetic.permute(ct.components[0], perm)
            PolynomialArithmetic.add(&c0, d0, moduli: modulus)
            return Ciphertext(context: context, components: [c0, d1], scale: ct.scale)
        }
    }
}
