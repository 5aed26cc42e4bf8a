#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Decryption and the noise queries that need the secret key. Client side only: a budget
/// reveals information about the plaintext, so it must never reach the server.
public struct Decryptor: Sendable {
    public let secretKey: SecretKey

    public init(secretKey: SecretKey) { self.secretKey = secretKey }

    /// c_0 + c_1·s (+ c_2·s²) in the coefficient domain, mod Q_ℓ.
    func phase(_ ct: Ciphertext) -> RnsPolynomial {
        let context = ct.context
        let modulus = { (i: Int) in context.ciphertextTables[i].modulus }
        var x = ct.components[ct.size - 1]
        for j in stride(from: ct.size - 2, through: 0, by: -1) {
            // Horner: (…(c_2·s + c_1)·s + c_0).
            PolynomialArithmetic.multiply(&x, secretKey.ntt, moduli: modulus)
            PolynomialArithmetic.add(&x, ct.components[j], moduli: modulus)
        }
        PolynomialArithmetic.inverse(&x) { context.ciphertextTables[$0] }
        return x
    }

    /// A BFV ciphertext's message: round(t·x/Q_ℓ) mod t for each coefficient x of the phase.
    public func decrypt(_ ct: Ciphertext) throws(RlweError) -> BFVPlaintext {
        guard ct.context === secretKey.context else { throw .contextMismatch }
        guard let bfv = ct.context.bfv else { throw .wrongScheme("CKKS ciphertexts decrypt with decryptApproximate") }
        let x = phase(ct)
        let basis = ct.context.levelBases[ct.level - 1]
        let t = bfv.plaintextModulus, n = ct.context.polynomialSize
        var out = [UInt64](repeating: 0, count: n)
        x.words.withUnsafeBufferPointer { words in
            for k in 0..<n {
                // t·x/Q = Σ u_i·t/q_i (mod t) with u_i = [x_i·Q̂_i^-1]_(q_i): the integer parts
                // exactly, the fractions in doubles (rounding matters only at ±1/2, i.e. at failure).
                var integer: UInt64 = 0
                var fraction = 0.0
                for i in 0..<basis.count {
                    let q = basis.moduli[i]
                    let u = q.multiply(words[i * n + k], by: basis.hatInverse[i], shoup: basis.hatInverseShoup[i])
                    let product = u.multipliedFullWidth(by: t.value)
                    let (quotient, remainder) = q.value.dividingFullWidth((product.high, product.low))
                    integer = t.add(integer, t.reduce(quotient))
                    fraction += Double(remainder) * basis.reciprocal[i]
                }
                out[k] = t.add(integer, t.reduce(UInt64(fraction.rounded())))
            }
        }
        return BFVPlaintext(coefficients: out)
    }

    /// SEAL's invariant noise budget in bits: log2(Q_ℓ) − log2(‖[t·(c_0 + c_1·s)]_(Q_ℓ)‖∞) − 1.
    /// Decryption is correct while it is positive.
    public func noiseBudget(_ ct: Ciphertext) throws(RlweError) -> Double {
        guard ct.context === secretKey.context else { throw .contextMismatch }
        guard let bfv = ct.context.bfv else { throw .wrongScheme("the noise budget is a BFV query") }
        var x = phase(ct)
        let basis = ct.context.levelBases[ct.level - 1], n = ct.context.polynomialSize
        var largest = 0.0
        x.words.withUnsafeMutableBufferPointer { words in
            for i in 0..<basis.count {
                let q = basis.moduli[i], t = q.reduce(bfv.plaintextModulus.value)
                for k in (i * n)..<((i + 1) * n) { words[k] = q.multiply(words[k], t) }
            }
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: basis.count) { scratch in
                for k in 0..<n {
                    let v = basis.centeredValue(words.baseAddress! + k, stride: n, scratch: scratch.baseAddress!)
                    largest = max(largest, abs(v))
                }
            }
        }
        return max(0, basis.logProduct - log2(max(largest, 1)) - 1)
    }

    /// CKKS, client side: −log2 of the largest slot error against the values the ciphertext
    /// should hold (the precision in bits).
    public func precisionBits(_ ct: Ciphertext, expected: [Complex], encoder: CKKSEncoder) throws(RlweError) -> Double {
        let slots = encoder.decode(try decryptApproximate(ct))
        guard expected.count <= slots.count else { throw .invalidEncoding("\(expected.count) values for \(slots.count) slots") }
        let error = zip(slots, expected).map { ($0 - $1).magnitude }.max() ?? 0
        return -log2(Swift.max(error, 0x1p-100))
    }

    /// A CKKS ciphertext's phase divided by its scale: N real coefficients, to decode into slots.
    public func decryptApproximate(_ ct: Ciphertext) throws(RlweError) -> [Double] {
        guard ct.context === secretKey.context else { throw .contextMismatch }
        guard !ct.context.isBFV else { throw .wrongScheme("BFV ciphertexts decrypt exactly with decrypt") }
        let x = phase(ct)
        let basis = ct.context.levelBases[ct.level - 1], n = ct.context.polynomialSize
        var out = [Double](repeating: 0, count: n)
        x.words.withUnsafeBufferPointer { words in
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: basis.count) { scratch in
                for k in 0..<n {
                    out[k] = basis.centeredValue(words.baseAddress! + k, stride: n, scratch: scratch.baseAddress!) / ct.scale
                }
            }
        }
        return out
    }
}
