import ObscuraMath

/// The client's secret key: the small LWE key s ∈ {0,1}^n and the GLWE key S ∈ ({0,1}[X])^k,
/// whose coefficients, read in order, are the big LWE key of dimension k·N.
///
/// It never leaves the client. It has its own serialized format and file type, and no type on
/// the server side accepts it: the server works from an ``EvaluationKey``.
public struct SecretKey: Sendable {
    /// The parameter set the key belongs to.
    public let parameters: TFHEParameters
    /// s, n bits (0 or 1).
    public let smallKey: [UInt64]
    /// S_0 ... S_{k-1} concatenated: the big LWE key, k·N bits.
    public let bigKey: [UInt64]
    /// Exact products by each S_t, prepared once.
    let glweProducts: [ExactPolynomialProduct]

    /// A fresh key from operating-system entropy.
    public init(parameters: TFHEParameters) {
        var random = CSPRNG.fromSystemEntropy(domain: "secret-key")
        self.init(parameters: parameters, generator: &random)
    }

    /// A key determined by `seed`, for known-answer tests only (internal: a chosen seed is no secret).
    init(parameters: TFHEParameters, deterministicSeed seed: Seed128) {
        var random = CSPRNG(seed: seed, domain: "secret-key")
        self.init(parameters: parameters, generator: &random)
    }

    init(parameters: TFHEParameters, generator: inout CSPRNG) {
        let small = (0..<parameters.lweDimension).map { _ in generator.nextBit() }
        let big = (0..<parameters.bigLweDimension).map { _ in generator.nextBit() }
        self.init(parameters: parameters, smallKey: small, bigKey: big)
    }

    /// A key from its bits (deserialization); the caller has checked the sizes and values.
    init(parameters: TFHEParameters, smallKey: [UInt64], bigKey: [UInt64]) {
        self.parameters = parameters
        self.smallKey = smallKey
        self.bigKey = bigKey
        let fft = NegacyclicFFT(polynomialSize: parameters.polynomialSize)
        let n = parameters.polynomialSize
        glweProducts = (0..<parameters.glweDimension).map { t in
            ExactPolynomialProduct(fft: fft, small: bigKey[(t * n)..<((t + 1) * n)].map { Int64($0) })
        }
    }

    /// The phase b - <a, z> of a ciphertext under the big key: message plus noise.
    public func phase(_ ciphertext: LweCiphertext) -> UInt64 {
        precondition(ciphertext.dimension == parameters.bigLweDimension, "ciphertext is not under the big key")
        return ciphertext.storage.withUnsafeBufferPointer { c in
            c[bigKey.count] &- Self.dot(c.baseAddress!, bigKey)
        }
    }

    /// <mask, key> for a binary key, branch-free (the key bit selects the word through a mask),
    /// so that its timing does not depend on the secret.
    static func dot(_ mask: UnsafePointer<UInt64>, _ key: [UInt64]) -> UInt64 {
        key.withUnsafeBufferPointer { z in
            var dot: UInt64 = 0
            for i in 0..<z.count { dot &+= mask[i] & (0 &- z[i]) }
            return dot
        }
    }
}
