/// BFV batching: N integers mod t in two rows of N/2 slots. Slot s < N/2 is the message
/// polynomial's value at ψ_t^(5^s), slot N/2 + s its value at ψ_t^(−5^s) (ψ_t a primitive
/// 2N-th root mod t), so slot-wise products are ring products, X → X^(5^k) rotates both rows
/// left by k, and X → X^(2N−1) swaps the rows.
public struct BatchEncoder: Sendable {
    public let context: RlweContext
    let constants: BFVConstants

    public init(context: RlweContext) throws(RlweError) {
        guard let bfv = context.bfv else { throw .wrongScheme("batch encoding is BFV's") }
        self.context = context
        constants = bfv
    }

    /// t.
    public var plaintextModulus: UInt64 { constants.plaintextModulus.value }

    /// Up to N slot values mod t (missing slots are zero); negative values are taken mod t.
    public func encode(_ values: [Int64]) throws(RlweError) -> BFVPlaintext {
        let n = context.polynomialSize, t = constants.plaintextModulus
        guard values.count <= n else { throw .invalidEncoding("\(values.count) values for \(n) slots") }
        var evaluations = [UInt64](repeating: 0, count: n)
        for (s, v) in values.enumerated() { evaluations[constants.slotIndex[s]] = t.reduce(signed: v) }
        evaluations.withUnsafeMutableBufferPointer { constants.plaintextTables.inverse($0.baseAddress!) }
        return BFVPlaintext(coefficients: evaluations)
    }

    /// The N slot values in [0, t).
    public func decode(_ plaintext: BFVPlaintext) -> [UInt64] {
        var evaluations = plaintext.coefficients
        evaluations.withUnsafeMutableBufferPointer { constants.plaintextTables.forward($0.baseAddress!) }
        return constants.slotIndex.map { evaluations[$0] }
    }

    /// The N slot values in (−t/2, t/2].
    public func decodeSigned(_ plaintext: BFVPlaintext) -> [Int64] {
        decode(plaintext).map { constants.plaintextModulus.centered($0) }
    }

    /// The plaintext lifted to (−t/2, t/2], transformed at level ℓ and prepared, for ct × pt products.
    public func prepare(_ plaintext: BFVPlaintext, level: Int? = nil) throws(RlweError) -> Plaintext {
        let level = try checkedLevel(level, context)
        let t = constants.plaintextModulus
        let signed = plaintext.coefficients.map { t.centered($0) }
        var poly = Sampling.lift(signed, limbs: level) { context.ciphertextTables[$0].modulus }
        PolynomialArithmetic.forward(&poly) { context.ciphertextTables[$0] }
        return Plaintext(context: context, polynomial: poly, scale: 1).prepared()
    }

    /// Slot values straight to a prepared plaintext.
    public func prepare(_ values: [Int64], level: Int? = nil) throws(RlweError) -> Plaintext {
        try prepare(encode(values), level: level)
    }
}
