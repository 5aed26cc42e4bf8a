import Dispatch
import ObscuraMath

/// The GLWE shape that results are packed into, and the gadget of the packing key switch.
///
/// The target key is the big LWE key z itself, its k·N bits read as k' polynomials of N'
/// coefficients (k'·N' = k·N, N' = min(N, 1024)): a module-LWE key of the same dimension,
/// drawn from the same distribution, whose samples carry the set's GLWE noise, so the set's
/// security estimate for its GLWE samples (an LWE of dimension k·N at that noise) covers them.
/// The packing key encrypts z's own bits under z, a key-dependent message like the cycle that
/// the key-switching and bootstrapping keys already form (circular security, as every TFHE
/// deployment assumes). Reading z in N'-coefficient polynomials keeps the key small (k·N·l
/// bodies of N' words) and lets the client decrypt a packed value by sample extraction, with
/// the key it already has.
public struct PackingShape: Sendable, Hashable {
    /// k', the mask polynomials of a packed GLWE.
    public let glweDimension: Int
    /// N', the values one packed GLWE holds.
    public let polynomialSize: Int
    /// The gadget that decomposes the input masks.
    public let decomposition: GadgetDecomposition

    /// Rows of the packing key: one per input key bit and level.
    public var rows: Int { glweDimension * polynomialSize * decomposition.levels }
    /// Words of one packed GLWE.
    public var glweWords: Int { (glweDimension + 1) * polynomialSize }
}

extension TFHEParameters {
    /// The packing shape of this set. One level of 18 bits: the masks' rounding to 18 bits
    /// (2^-36/12 per key bit, exactly modelled) dominates the key switch's noise and stays an
    /// eighth of the transport rounding that follows it (2^-34/12 per word at 17 bits), while
    /// the FFT's error, which grows with the digits' size squared, is far below it. With 21-bit
    /// digits the FFT's error dominated and measured 1.2-2.4x its formula; two levels of 12 bits
    /// gave the same result sizes with twice the key (``NoiseModel/packingKeySwitchVariance``).
    public var packing: PackingShape {
        let size = min(polynomialSize, 1024)
        return PackingShape(glweDimension: bigLweDimension / size, polynomialSize: size,
                            decomposition: GadgetDecomposition(baseLog: 18, levels: 1))
    }
}

extension SecretKey {
    /// The seeded packing key's bodies: row r = (i, j) is a GLWE encryption under z (read in
    /// the packing shape) of the constant z_i·2^(64-jβ), masks from CSPRNG(seed, "pksk.mask")
    /// at word r·k'·N', noise from its own generator per row, rows in parallel.
    func packingKeyBodies(seed: Seed128, noiseSeed: Seed128) -> [UInt64] {
        let p = parameters, shape = p.packing
        let n = shape.polynomialSize, k = shape.glweDimension, levels = shape.decomposition.levels
        let fft = NegacyclicFFT(polynomialSize: n)
        let products = (0..<k).map { t in ExactPolynomialProduct(fft: fft, small: bigKey[(t * n)..<((t + 1) * n)].map { Int64($0) }) }
        var bodies = [UInt64](repeating: 0, count: shape.rows * n)
        bodies.withUnsafeMutableBufferPointer { out in
            let base = UnsafeMutableSendablePointer(out.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: shape.rows) { row in
                var masks = CSPRNG(seed: seed, domain: "pksk.mask", startingAtWord: row * k * n)
                var noise = CSPRNG(seed: noiseSeed, domain: "pksk.noise.\(row)")
                let body = base.pointer + row * n
                writeGlweEncryptionOfZero(masks: nil, body: body, maskStream: &masks, noise: &noise, products: products)
                let i = row / levels, level = row % levels + 1
                body[0] &+= bigKey[i] &* (UInt64(1) << UInt64(64 - level * shape.decomposition.baseLog))
            }
        }
        return bodies
    }
}

/// The server's packing key in the Fourier domain: for each row, k'+1 polynomials of N'/2
/// complex coefficients (real parts, then imaginary parts), in the order the key switch reads them.
struct FourierPackingKey: Sendable {
    let shape: PackingShape
    let fft: NegacyclicFFT
    let storage: [Double]

    /// Expands the seeded key, rows in parallel.
    init(parameters p: TFHEParameters, seed: Seed128, bodies: [UInt64]) {
        let shape = p.packing
        let n = shape.polynomialSize, m = n / 2, k = shape.glweDimension
        let fft = NegacyclicFFT(polynomialSize: n)
        var storage = [Double](repeating: 0, count: shape.rows * shape.glweWords)
        storage.withUnsafeMutableBufferPointer { out in
            bodies.withUnsafeBufferPointer { input in
                let base = UnsafeMutableSendablePointer(out.baseAddress!), source = UnsafeSendablePointer(input.baseAddress!)
                DispatchQueue.concurrentPerform(iterations: shape.rows) { row in
                    var masks = CSPRNG(seed: seed, domain: "pksk.mask", startingAtWord: row * k * n)
                    withUnsafeTemporaryAllocation(of: Int64.self, capacity: n) { polynomial in
                        for t in 0...k {
                            if t < k {
                                polynomial.withMemoryRebound(to: UInt64.self) { masks.fillUniform($0) }
                            } else {
                                for j in 0..<n { polynomial[j] = Int64(bitPattern: source.pointer[row * n + j]) }
                            }
                            let re = base.pointer + (row * (k + 1) + t) * n
                            fft.forward(polynomial.baseAddress!, re: re, im: re + m)
                        }
                    }
                }
            }
        }
        self.shape = shape
        self.fft = fft
        self.storage = storage
    }

    /// Rows accumulated in the Fourier domain before their sum is transformed back.
    static let rowsPerBlock = 32

    /// Packs up to N' ciphertexts under the big key into one GLWE ciphertext whose coefficient p
    /// has the phase of `ciphertexts[p]` (the rest: zero), plus the key switch's noise:
    ///
    ///   (0, …, 0, Σ_p b_p·X^p) − Σ_{i,j} D_{i,j}(X)·K_{i,j},   D_{i,j}(X) = Σ_p dec_j(a^{(p)}_i)·X^p,
    ///
    /// where K_{i,j} encrypts z_i·2^(64-jβ): the phase is Σ_p X^p·(b_p − ⟨a^{(p)}, z⟩) up to the
    /// gadget's rounding. Grouping the digits of all values by key bit turns N'·k·N·l scalar
    /// key switches into k·N·l polynomial products, each one transform and k'+1 pointwise
    /// products in the Fourier domain.
    func pack(_ ciphertexts: ArraySlice<LweCiphertext>, into output: UnsafeMutablePointer<UInt64>) {
        let n = shape.polynomialSize, m = n / 2, k = shape.glweDimension, rows = shape.rows
        let levels = shape.decomposition.levels, count = ciphertexts.count
        precondition(count <= n)
        let digits = UnsafeMutablePointer<Int32>.allocate(capacity: rows * n)
        let wordDigits = UnsafeMutablePointer<Int64>.allocate(capacity: levels)
        let transformed = UnsafeMutablePointer<Double>.allocate(capacity: n)
        let accumulator = UnsafeMutablePointer<Double>.allocate(capacity: (k + 1) * n)
        defer { digits.deallocate(); wordDigits.deallocate(); transformed.deallocate(); accumulator.deallocate() }
        digits.initialize(repeating: 0, count: rows * n)
        accumulator.initialize(repeating: 0, count: (k + 1) * n)
        for (p, ciphertext) in ciphertexts.enumerated() {
            ciphertext.storage.withUnsafeBufferPointer { words in
                for i in 0..<(k * n) {
                    shape.decomposition.decompose(words[i], into: wordDigits, stride: 1)
                    for j in 0..<levels { digits[(i * levels + j) * n + p] = Int32(truncatingIfNeeded: wordDigits[j]) }
                }
            }
        }
        output.update(repeating: 0, count: (k + 1) * n)
        storage.withUnsafeBufferPointer { key in
            for row in 0..<rows {
                fft.forward(digits + row * n, re: transformed, im: transformed + m)
                for u in 0...k {
                    let keyRe = key.baseAddress! + (row * (k + 1) + u) * n, keyIm = keyRe + m
                    let accRe = accumulator + u * n, accIm = accRe + m
                    var c = 0
                    while c < m {
                        let ar = load4(transformed + c), ai = load4(transformed + m + c)
                        let kr = load4(keyRe + c), ki = load4(keyIm + c)
                        store4(accRe + c, load4(accRe + c).addingProduct(ar, kr).addingProduct(-ai, ki))
                        store4(accIm + c, load4(accIm + c).addingProduct(ar, ki).addingProduct(ai, kr))
                        c &+= 4
                    }
                }
                // A running sum of doubles rounds at the size it has reached, so its error grows
                // with the square of its length: blocks of rows go back to exact integers.
                if row % Self.rowsPerBlock == Self.rowsPerBlock - 1 || row == rows - 1 {
                    for u in 0...k { fft.backwardAdd(re: accumulator + u * n, im: accumulator + u * n + m, into: output + u * n) }
                    accumulator.update(repeating: 0, count: (k + 1) * n)
                }
            }
        }
        for w in 0..<((k + 1) * n) { output[w] = 0 &- output[w] }
        for (p, ciphertext) in ciphertexts.enumerated() { output[k * n + p] &+= ciphertext.storage[k * n] }
    }
}

extension EvaluationKey {
    /// Packs result ciphertexts (under the big key) N' to a GLWE ciphertext, GLWEs in parallel.
    public func pack(_ ciphertexts: [LweCiphertext]) -> PackedLweList {
        let shape = parameters.packing, n = shape.polynomialSize
        precondition(ciphertexts.allSatisfy { $0.dimension == parameters.bigLweDimension }, "not under the big key")
        let glwes = (ciphertexts.count + n - 1) / n, packingKey = packingKey
        var words = [UInt64](repeating: 0, count: glwes * shape.glweWords)
        words.withUnsafeMutableBufferPointer { out in
            let base = UnsafeMutableSendablePointer(out.baseAddress!)
            ParallelWork.forEach(glwes) { g in
                packingKey.pack(ciphertexts[(g * n)..<min(ciphertexts.count, (g + 1) * n)],
                                into: base.pointer + g * shape.glweWords)
            }
        }
        return PackedLweList(parameters: parameters, count: ciphertexts.count, words: words)
    }
}
