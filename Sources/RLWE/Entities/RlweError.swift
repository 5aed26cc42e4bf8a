/// Why an RLWE operation or a deserialization was refused. Every misuse and every malformed
/// input ends in one of these, never in a crash.
public enum RlweError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The parameter set is not 128-bit secure (or malformed): the reason names the bound.
    case insecureParameters(String)
    /// The parameter set is malformed (a modulus that is not an NTT-friendly prime, …).
    case invalidParameters(String)
    /// The operands belong to different parameter sets.
    case contextMismatch
    /// The operation is not defined for this scheme (e.g. conjugation under BFV).
    case wrongScheme(String)
    /// Operands at different levels (numbers of ciphertext primes).
    case levelMismatch(Int, Int)
    /// CKKS operands whose scales differ.
    case scaleMismatch(Double, Double)
    /// No prime left to drop: the modulus chain is used up.
    case endOfModulusChain
    /// A three-component ciphertext where two are required (relinearize first).
    case notRelinearized
    /// The Galois key for this element was not generated.
    case missingGaloisKey(element: Int)
    /// The relinearization key was not generated.
    case missingRelinearizationKey
    /// Slot values that do not fit: wrong count, or too large for the scale or modulus.
    case invalidEncoding(String)
    /// Bytes that are not a valid object of the expected kind.
    case malformed(String)
    /// A secret key offered to a reader of public objects.
    case secretKeyNotAccepted

    public var description: String {
        switch self {
        case .insecureParameters(let why): "insecure parameters: \(why)"
        case .invalidParameters(let why): "invalid parameters: \(why)"
        case .contextMismatch: "operands belong to different parameter sets"
        case .wrongScheme(let why): "wrong scheme: \(why)"
        case .levelMismatch(let a, let b): "operands at different levels (\(a) and \(b) primes)"
        case .scaleMismatch(let a, let b): "CKKS scales differ (2^\(a.exponent) vs 2^\(b.exponent)): rescale or encode at the same scale"
        case .endOfModulusChain: "end of the modulus chain: no prime left to drop"
        case .notRelinearized: "the ciphertext has three components; relinearize it first"
        case .missingGaloisKey(let g): "no Galois key for element \(g): generate the rotation's key on the client"
        case .missingRelinearizationKey: "no relinearization key was generated"
        case .invalidEncoding(let why): "cannot encode: \(why)"
        case .malformed(let why): "malformed bytes: \(why)"
        case .secretKeyNotAccepted: "a secret key is not accepted here"
        }
    }
}
