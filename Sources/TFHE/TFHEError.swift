/// Why a TFHE operation refused to run.
public enum TFHEError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input's noise (as a 2-norm of fresh ciphertexts) is above what a bootstrap of this
    /// parameter set guarantees at its failure probability.
    case noiseBudgetExceeded(norm: Double, budget: Double)
    /// The integer's possible values do not fit in the P slots below the padding bit.
    case valueRangeExceedsMessageSpace(lower: Int, upper: Int, plaintextModulus: Int)
    /// Two operands (or a key and an operand) belong to different parameter sets.
    case parameterMismatch(expected: String, found: String)

    public var description: String {
        switch self {
        case .noiseBudgetExceeded(let norm, let budget):
            "noise 2-norm \(norm) exceeds the parameter set's budget \(budget)"
        case .valueRangeExceedsMessageSpace(let lower, let upper, let p):
            "values \(lower)...\(upper) span more than the \(p) slots of the message space"
        case .parameterMismatch(let expected, let found):
            "parameter set mismatch: expected \(expected), found \(found)"
        }
    }
}
