#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ObscuraMath

/// The distributions RLWE draws from, read from a ``CSPRNG`` stream. Uniform masks are drawn
/// directly in the NTT domain (the transform is a bijection), so a seeded mask costs no NTT.
enum Sampling {
    /// Uniform residues for limbs `0..<limbs` of a polynomial, limb i mod `moduli(i)`, by
    /// rejection on the prime's bit width (the stream's layout is part of the seeded formats).
    static func uniform(limbs: Int, degree n: Int, moduli: (Int) -> Modulus, using generator: inout CSPRNG) -> RnsPolynomial {
        var poly = RnsPolynomial(degree: n, limbs: limbs)
        poly.words.withUnsafeMutableBufferPointer { out in
            for i in 0..<limbs {
                let q = moduli(i).value
                let mask = UInt64.max >> UInt64(q.leadingZeroBitCount)
                for k in (i * n)..<((i + 1) * n) {
                    var x = generator.next() & mask
                    while x >= q { x = generator.next() & mask }
                    out[k] = x
                }
            }
        }
        return poly
    }

    /// Uniform ternary coefficients in {−1, 0, 1} (bias below 2^-62).
    static func ternary(count: Int, using generator: inout CSPRNG) -> [Int8] {
        (0..<count).map { _ in Int8(generator.next().multipliedFullWidth(by: 3).high) - 1 }
    }

    /// The discrete Gaussian of σ = 3.2 on [−19, 19] (6σ, as SEAL clips), by a cumulative
    /// table scanned in full for every draw (no data-dependent branch or index).
    static func gaussian(count: Int, using generator: inout CSPRNG) -> [Int64] {
        let table = cumulativeTable
        return (0..<count).map { _ in
            let r = generator.next()
            let u = r >> 1
            var magnitude: Int64 = 0
            for threshold in table { magnitude &+= u >= threshold ? 1 : 0 }
            let negative = Int64(r & 1)
            return (magnitude ^ -negative) &+ negative
        }
    }

    /// T_k = ⌊P(|x| ≤ k)·2^63⌋ for k = 0…18 under ρ(x) = exp(−x²/2σ²) on |x| ≤ 19.
    static let cumulativeTable: [UInt64] = {
        let sigma = RlweParameters.errorStandardDeviation
        let bound = 19
        let weights = (0...bound).map { k in (k == 0 ? 1.0 : 2.0) * exp(-Double(k * k) / (2 * sigma * sigma)) }
        let total = weights.reduce(0, +)
        var cumulative = 0.0
        return (0..<bound).map { k in
            cumulative += weights[k] / total
            return UInt64(cumulative * 0x1p63)
        }
    }()

    /// Small signed coefficients as limbs `0..<limbs` (coefficient domain).
    static func lift(_ values: [Int64], limbs: Int, moduli: (Int) -> Modulus) -> RnsPolynomial {
        let n = values.count
        var poly = RnsPolynomial(degree: n, limbs: limbs)
        poly.words.withUnsafeMutableBufferPointer { out in
            for i in 0..<limbs {
                let m = moduli(i)
                for k in 0..<n { out[i * n + k] = m.reduce(signed: values[k]) }
            }
        }
        return poly
    }
}
