import ObscuraMath

/// A GGSW ciphertext of a small integer m, every polynomial in the Fourier domain: the
/// operand of the external product ⊡ and of CMux. The bootstrapping key is n of these, one
/// per bit of the small LWE key.
///
/// Rows are (component c ∈ 0...k, level j ∈ 1...l), each a GLWE ciphertext (k+1 polynomials).
/// Storage follows the order in which the external product reads it, so that a bootstrap
/// streams the key from memory once and sequentially: for each output component t, each group
/// of four Fourier coefficients, each row: four real parts, then four imaginary parts.
public struct FourierGgswCiphertext: Sendable {
    /// The parameter set.
    public let parameters: TFHEParameters
    let storage: [Double]

    /// Rows per GGSW: (k+1)·l.
    var rows: Int { (parameters.glweDimension + 1) * parameters.bootstrapDecomposition.levels }

    /// Transforms a seeded standard-domain GGSW: each row's k masks are the next k·N words of
    /// `maskStream`, its body is read from `bodies` (rows·N words).
    init(parameters p: TFHEParameters, fft: NegacyclicFFT, maskStream: inout CSPRNG, bodies: UnsafePointer<UInt64>) {
        parameters = p
        let n = p.polynomialSize, m = n / 2, k = p.glweDimension
        let rows = (k + 1) * p.bootstrapDecomposition.levels
        var storage = [Double](repeating: 0, count: rows * (k + 1) * n)
        var polynomial = [Int64](repeating: 0, count: n)
        var transformed = [Double](repeating: 0, count: n)
        for row in 0..<rows {
            for t in 0...k {
                polynomial.withUnsafeMutableBufferPointer { words in
                    if t < k {
                        words.withMemoryRebound(to: UInt64.self) { maskStream.fillUniform($0) }
                    } else {
                        for j in 0..<n { words[j] = Int64(bitPattern: bodies[row * n + j]) }
                    }
                }
                transformed.withUnsafeMutableBufferPointer { f in
                    polynomial.withUnsafeBufferPointer { fft.forward($0.baseAddress!, re: f.baseAddress!, im: f.baseAddress! + m) }
                }
                for c in 0..<m {
                    let slot = Self.slot(component: t, coefficient: c, row: row, rows: rows, fourierSize: m)
                    storage[slot] = transformed[c]
                    storage[slot + 4] = transformed[m + c]
                }
            }
        }
        self.storage = storage
    }

    /// Where the real part of Fourier coefficient c of component t of a row sits; the
    /// imaginary part is four doubles further.
    @inline(__always)
    static func slot(component t: Int, coefficient c: Int, row: Int, rows: Int, fourierSize m: Int) -> Int {
        ((t * (m / 4) + c / 4) * rows + row) * 8 + c % 4
    }

    /// self ⊡ glwe: a GLWE encryption of m·phase(glwe).
    public func externalProduct(_ glwe: GlweCiphertext) -> GlweCiphertext {
        let p = parameters
        precondition(glwe.glweDimension == p.glweDimension && glwe.polynomialSize == p.polynomialSize)
        let workspace = ExternalProductWorkspace(parameters: p)
        let fft = NegacyclicFFT(polynomialSize: p.polynomialSize)
        var output = [UInt64](repeating: 0, count: glwe.storage.count)
        glwe.storage.withUnsafeBufferPointer { input in
            output.withUnsafeMutableBufferPointer { out in
                workspace.addExternalProduct(self, of: input.baseAddress!, into: out.baseAddress!, fft: fft)
            }
        }
        return GlweCiphertext(glweDimension: p.glweDimension, polynomialSize: p.polynomialSize, storage: output)
    }

    /// CMux(self; whenZero, whenOne) = whenZero + self ⊡ (whenOne - whenZero): whenOne if the
    /// encrypted selector is 1, whenZero if it is 0.
    public func cmux(_ whenZero: GlweCiphertext, _ whenOne: GlweCiphertext) -> GlweCiphertext {
        var difference = whenOne
        for i in 0..<difference.storage.count { difference.storage[i] &-= whenZero.storage[i] }
        var result = externalProduct(difference)
        for i in 0..<result.storage.count { result.storage[i] &+= whenZero.storage[i] }
        return result
    }
}

/// Scratch memory of the external product: gadget digits, their transforms and the Fourier
/// accumulator. Allocated once per thread.
final class ExternalProductWorkspace {
    let digits: UnsafeMutablePointer<Int32>
    let fourierDigits: UnsafeMutablePointer<Double>
    let fourierAccumulator: UnsafeMutablePointer<Double>
    let parameters: TFHEParameters

    init(parameters p: TFHEParameters) {
        parameters = p
        let n = p.polynomialSize, components = p.glweDimension + 1, levels = p.bootstrapDecomposition.levels
        digits = .allocate(capacity: components * levels * n)
        fourierDigits = .allocate(capacity: components * levels * n)
        fourierAccumulator = .allocate(capacity: components * n)
    }

    deinit {
        digits.deallocate(); fourierDigits.deallocate(); fourierAccumulator.deallocate()
    }

    /// output += ggsw ⊡ input, for GLWE ciphertexts given as (k+1)·N words.
    ///
    /// Decomposes every coefficient of every component into l digits (level-major: digit j of
    /// coefficient c of component t at j·(k+1)·N + t·N + c), transforms each of the (k+1)·l digit
    /// rows, accumulates each output component over all rows in registers, four Fourier
    /// coefficients at a time, and runs k+1 inverse transforms.
    @inline(__always)
    func addExternalProduct(_ ggsw: FourierGgswCiphertext, of input: UnsafePointer<UInt64>,
                            into output: UnsafeMutablePointer<UInt64>, fft: NegacyclicFFT) {
        let p = parameters
        let n = p.polynomialSize, m = n / 2, k = p.glweDimension
        let levels = p.bootstrapDecomposition.levels
        let rows = (k + 1) * levels
        p.bootstrapDecomposition.decompose(input, count: (k + 1) * n, into: digits)
        let fd = fourierDigits
        for row in 0..<rows {
            let t = row / levels, j = row % levels
            fft.forward(digits + j * (k + 1) * n + t * n, re: fd + row * n, im: fd + row * n + m)
        }
        let facc = fourierAccumulator
        ggsw.storage.withUnsafeBufferPointer { key in
            var g = key.baseAddress!
            for u in 0...k {
                let outRe = facc + u * n, outIm = outRe + m
                var c = 0
                while c < m {
                    var accRe = SIMD4<Double>(), accIm = SIMD4<Double>()
                    for row in 0..<rows {
                        let a = fd + row * n + c
                        let ar = load4(a), ai = load4(a + m), gr = load4(g), gi = load4(g + 4)
                        accRe = accRe.addingProduct(ar, gr).addingProduct(-ai, gi)
                        accIm = accIm.addingProduct(ar, gi).addingProduct(ai, gr)
                        g += 8
                    }
                    store4(outRe + c, accRe)
                    store4(outIm + c, accIm)
                    c &+= 4
                }
            }
        }
        for u in 0...k {
            fft.backwardAdd(re: facc + u * n, im: facc + u * n + m, into: output + u * n)
        }
    }
}
