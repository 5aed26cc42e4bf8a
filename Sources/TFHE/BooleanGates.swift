import ObscuraMath

/// Bootstrapped boolean gates on ±1/8-encoded bits (TFHE's gate bootstrapping).
///
/// Each binary gate forms a public linear combination of its inputs, then runs one bootstrap
/// whose constant table returns +1/8 on a positive phase and -1/8 otherwise. NOT is a
/// negation and costs nothing; MUX costs two bootstraps and no third: its two halves are
/// fresh and their sum is returned as it is (noise √2 times a fresh gate's, which the next
/// gate's margin absorbs; see ``NoiseModel``).
extension Evaluator {
    /// The bootstrapped gates, named as in TFHE and tfhe-rs.
    public enum Gate: String, CaseIterable, Sendable {
        case and, nand, or, nor, xor, xnor, andNY, andYN, orNY, orYN

        /// The plaintext truth function.
        public func evaluate(_ a: Bool, _ b: Bool) -> Bool {
            switch self {
            case .and: a && b
            case .nand: !(a && b)
            case .or: a || b
            case .nor: !(a || b)
            case .xor: a != b
            case .xnor: a == b
            case .andNY: !a && b
            case .andYN: a && !b
            case .orNY: !a || b
            case .orYN: a || !b
            }
        }

        /// (constant in eighths of the torus, weight of a, weight of b).
        var combination: (constant: Int64, a: Int64, b: Int64) {
            switch self {
            case .and: (-1, 1, 1)
            case .nand: (1, -1, -1)
            case .or: (1, 1, 1)
            case .nor: (-1, -1, -1)
            case .xor: (2, 2, 2)
            case .xnor: (-2, -2, -2)
            case .andNY: (-1, -1, 1)
            case .andYN: (-1, 1, -1)
            case .orNY: (1, -1, 1)
            case .orYN: (1, 1, -1)
            }
        }
    }

    /// One bootstrapped gate.
    public func gate(_ gate: Gate, _ a: LweCiphertext, _ b: LweCiphertext) -> LweCiphertext {
        let (constant, wa, wb) = gate.combination
        var combination = a
        combination.multiply(by: wa)
        combination.add(b, times: wb)
        combination.addToBody(UInt64(bitPattern: constant) &* BooleanEncoding.eighth)
        return bootstrap(combination, table: gateTable)
    }

    /// a ∧ b.
    public func and(_ a: LweCiphertext, _ b: LweCiphertext) -> LweCiphertext { gate(.and, a, b) }
    /// ¬(a ∧ b).
    public func nand(_ a: LweCiphertext, _ b: LweCiphertext) -> LweCiphertext { gate(.nand, a, b) }
    /// a ∨ b.
    public func or(_ a: LweCiphertext, _ b: LweCiphertext) -> LweCiphertext { gate(.or, a, b) }
    /// ¬(a ∨ b).
    public func nor(_ a: LweCiphertext, _ b: LweCiphertext) -> LweCiphertext { gate(.nor, a, b) }
    /// a ⊕ b.
    public func xor(_ a: LweCiphertext, _ b: LweCiphertext) -> LweCiphertext { gate(.xor, a, b) }
    /// ¬(a ⊕ b).
    public func xnor(_ a: LweCiphertext, _ b: LweCiphertext) -> LweCiphertext { gate(.xnor, a, b) }

    /// ¬a, free: the negation of ±1/8 is ∓1/8.
    public func not(_ a: LweCiphertext) -> LweCiphertext { a.negated() }

    /// A public constant bit as a noiseless trivial ciphertext (false is -1/8, never (0, 0)).
    public func constant(_ bit: Bool) -> LweCiphertext {
        .trivial(dimension: parameters.bigLweDimension, body: BooleanEncoding.encode(bit))
    }

    /// The majority of three bits with one bootstrap: the sign of a + b + c, which is ±1/8 or
    /// ±3/8. Its input noise has 2-norm √3, covered by the gate set's margin
    /// (``NoiseModel/failureLog2(inputNorm:margin:)`` at norm √3 and margin 1/8).
    public func majority(_ a: LweCiphertext, _ b: LweCiphertext, _ c: LweCiphertext) -> LweCiphertext {
        bootstrap(a + b + c, table: gateTable)
    }

    /// The sign of a public integer combination of ±1/8 bits plus a constant (in eighths of the
    /// torus), with one bootstrap: any threshold function whose values stay at least 1/8 from
    /// 0 and 1/2. A full adder's sum bit is sign(a + b + c - 2·majority(a, b, c)), whose phase is
    /// ±1/8 in all eight cases, so it costs one bootstrap after the carry. The caller keeps the
    /// noise 2-norm √(Σ w²) within what ``NoiseModel`` allows (√7 for the sum bit).
    public func threshold(_ terms: [(LweCiphertext, Int64)], constantEighths: Int64 = 0) -> LweCiphertext {
        precondition(!terms.isEmpty)
        var combination = LweCiphertext.trivial(dimension: parameters.bigLweDimension,
                                                body: UInt64(bitPattern: constantEighths) &* BooleanEncoding.eighth)
        for (ciphertext, weight) in terms { combination.add(ciphertext, times: weight) }
        return bootstrap(combination, table: gateTable)
    }

    /// condition ? whenTrue : whenFalse, with two bootstraps:
    /// (condition ∧ whenTrue) + (¬condition ∧ whenFalse) + 1/8.
    public func mux(_ condition: LweCiphertext, _ whenTrue: LweCiphertext, _ whenFalse: LweCiphertext) -> LweCiphertext {
        var selected = gate(.and, condition, whenTrue) + gate(.andNY, condition, whenFalse)
        selected.addToBody(BooleanEncoding.eighth)
        return selected
    }
}
