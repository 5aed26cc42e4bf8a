import ObscuraMath

/// A GLWE ciphertext: k mask polynomials A_0 ... A_{k-1} and a body B, each of N torus
/// coefficients, with B = Σ A_t·S_t + M + E in Z_q[X]/(X^N + 1).
public struct GlweCiphertext: Sendable, Hashable {
    /// k.
    public let glweDimension: Int
    /// N.
    public let polynomialSize: Int
    /// The k masks, then the body: (k+1)·N words.
    public var storage: [UInt64]

    /// A ciphertext from its (k+1)·N words.
    public init(glweDimension: Int, polynomialSize: Int, storage: [UInt64]) {
        precondition(storage.count == (glweDimension + 1) * polynomialSize, "GLWE size mismatch")
        self.glweDimension = glweDimension
        self.polynomialSize = polynomialSize
        self.storage = storage
    }

    /// The noiseless encryption (0, ..., 0, message) that anyone can form.
    public static func trivial(parameters: TFHEParameters, message: [UInt64]) -> GlweCiphertext {
        precondition(message.count == parameters.polynomialSize)
        var storage = [UInt64](repeating: 0, count: parameters.glweDimension * parameters.polynomialSize)
        storage += message
        return GlweCiphertext(glweDimension: parameters.glweDimension, polynomialSize: parameters.polynomialSize,
                              storage: storage)
    }

    /// The LWE encryption, under the big key, of coefficient 0 of the message.
    public func sampleExtract() -> LweCiphertext {
        let n = polynomialSize, k = glweDimension
        var out = [UInt64](repeating: 0, count: k * n + 1)
        storage.withUnsafeBufferPointer { acc in
            out.withUnsafeMutableBufferPointer { Self.sampleExtract(acc.baseAddress!, k: k, n: n, into: $0.baseAddress!) }
        }
        return LweCiphertext(storage: out)
    }

    /// Sample extraction of coefficient h on raw storage: a'_{tN+j} = A_t[h-j] for j ≤ h,
    /// -A_t[N+h-j] beyond (the negacyclic wrap), b' = B[h].
    static func sampleExtract(_ acc: UnsafePointer<UInt64>, k: Int, n: Int, coefficient h: Int = 0,
                              into out: UnsafeMutablePointer<UInt64>) {
        precondition(h >= 0 && h < n, "coefficient out of range")
        for t in 0..<k {
            let a = acc + t * n, row = out + t * n
            for j in 0...h { row[j] = a[h - j] }
            for j in (h + 1)..<n { row[j] = 0 &- a[n + h - j] }
        }
        out[k * n] = acc[k * n + h]
    }
}

extension SecretKey {
    /// Encrypts a polynomial message (N torus coefficients) under the GLWE key, with fresh
    /// masks and GLWE noise. Client side.
    public func encryptGlwe(_ message: [UInt64]) -> GlweCiphertext {
        let p = parameters
        precondition(message.count == p.polynomialSize)
        var masks = CSPRNG.fromSystemEntropy(domain: "glwe.mask")
        var noise = CSPRNG.fromSystemEntropy(domain: "glwe.noise")
        var storage = [UInt64](repeating: 0, count: (p.glweDimension + 1) * p.polynomialSize)
        storage.withUnsafeMutableBufferPointer { out in
            let body = out.baseAddress! + p.glweDimension * p.polynomialSize
            writeGlweEncryptionOfZero(masks: out.baseAddress!, body: body, maskStream: &masks, noise: &noise)
            for j in 0..<p.polynomialSize { body[j] &+= message[j] }
        }
        return GlweCiphertext(glweDimension: p.glweDimension, polynomialSize: p.polynomialSize, storage: storage)
    }

    /// B - Σ A_t·S_t: the message plus noise.
    public func glwePhase(_ ciphertext: GlweCiphertext) -> [UInt64] {
        let p = parameters
        let n = p.polynomialSize
        var phase = Array(ciphertext.storage[(p.glweDimension * n)...])
        var product = [UInt64](repeating: 0, count: n)
        for t in 0..<p.glweDimension {
            ciphertext.storage.withUnsafeBufferPointer { c in
                product.withUnsafeMutableBufferPointer {
                    glweProducts[t].multiply(c.baseAddress! + t * n, into: $0.baseAddress!, accumulate: false)
                }
            }
            for j in 0..<n { phase[j] &-= product[j] }
        }
        return phase
    }

    /// Writes a GLWE encryption of zero: k masks drawn from `maskStream` (to `masks`, or
    /// discarded when nil, as seeded objects keep only the body) and the body Σ A_t·S_t + E.
    /// `products` are the key's polynomials prepared for exact products: the set's GLWE key by
    /// default, or the big key read in another shape (the packing key's target).
    func writeGlweEncryptionOfZero(masks: UnsafeMutablePointer<UInt64>?, body: UnsafeMutablePointer<UInt64>,
                                   maskStream: inout CSPRNG, noise: inout CSPRNG, products: [ExactPolynomialProduct]? = nil) {
        let products = products ?? glweProducts
        let n = products[0].fft.polynomialSize
        for j in 0..<n { body[j] = parameters.glweNoise.sample(using: &noise) }
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: n) { scratch in
            for t in products.indices {
                let mask = masks.map { $0 + t * n } ?? scratch.baseAddress!
                maskStream.fillUniform(UnsafeMutableBufferPointer(start: mask, count: n))
                products[t].multiply(mask, into: body, accumulate: true)
            }
        }
    }

    /// The bodies of a seeded GGSW encryption of the small integer `message`: (k+1)·l rows of
    /// N words. Row (c, j) is a GLWE encryption of zero whose body also carries
    /// -message·S_c·2^(64-jβ) for c < k, or message·2^(64-jβ) for c = k.
    func writeGgswBodies(message: UInt64, into bodies: UnsafeMutablePointer<UInt64>,
                         maskStream: inout CSPRNG, noise: inout CSPRNG) {
        let p = parameters
        let n = p.polynomialSize, k = p.glweDimension, levels = p.bootstrapDecomposition.levels
        for row in 0..<((k + 1) * levels) {
            let component = row / levels, level = row % levels + 1
            let body = bodies + row * n
            writeGlweEncryptionOfZero(masks: nil, body: body, maskStream: &maskStream, noise: &noise)
            let scaled = message &* (UInt64(1) << UInt64(64 - level * p.bootstrapDecomposition.baseLog))
            if component == k {
                body[0] &+= scaled
            } else {
                for j in 0..<n { body[j] &-= bigKey[component * n + j] &* scaled }
            }
        }
    }

    /// A GGSW encryption of a small integer (0 or 1 for a CMux selector), in the Fourier domain.
    public func encryptGgsw(_ message: UInt64) -> FourierGgswCiphertext {
        let p = parameters
        let seed = Seed128.random()
        var maskStream = CSPRNG(seed: seed, domain: "ggsw.mask")
        var noise = CSPRNG.fromSystemEntropy(domain: "ggsw.noise")
        let rows = (p.glweDimension + 1) * p.bootstrapDecomposition.levels
        var bodies = [UInt64](repeating: 0, count: rows * p.polynomialSize)
        bodies.withUnsafeMutableBufferPointer {
            writeGgswBodies(message: message, into: $0.baseAddress!, maskStream: &maskStream, noise: &noise)
        }
        var replay = CSPRNG(seed: seed, domain: "ggsw.mask")
        return bodies.withUnsafeBufferPointer {
            FourierGgswCiphertext(parameters: p, fft: NegacyclicFFT(polynomialSize: p.polynomialSize),
                                  maskStream: &replay, bodies: $0.baseAddress!)
        }
    }
}
