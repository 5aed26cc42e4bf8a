/// Exact negacyclic products of a 2^64-torus polynomial by a polynomial with small signed
/// integer coefficients (a binary secret key), as key generation, encryption and decryption
/// need them: the Fourier path of bootstrapping rounds away low bits, this one must not.
///
/// The torus polynomial is cut into four 16-bit limbs; each limb product has coefficients of at
/// most 2^16·N·max|s| < 2^40 in magnitude, far inside the 53-bit mantissa, so the FFT result
/// rounds to the exact integer. The limbs are recombined with wrapping shifts.
public struct ExactPolynomialProduct: Sendable {
    /// The transform this product runs on.
    public let fft: NegacyclicFFT
    @usableFromInline let smallRe: [Double]
    @usableFromInline let smallIm: [Double]

    /// Prepares the small factor `small` (coefficients with |s| ≤ 2^8).
    public init(fft: NegacyclicFFT, small: [Int64]) {
        precondition(small.count == fft.polynomialSize)
        precondition(small.allSatisfy { abs($0) <= 256 }, "the small factor must have |s| <= 256")
        self.fft = fft
        var re = [Double](repeating: 0, count: fft.fourierSize), im = re
        small.withUnsafeBufferPointer { s in
            re.withUnsafeMutableBufferPointer { r in
                im.withUnsafeMutableBufferPointer { i in
                    fft.forward(s.baseAddress!, re: r.baseAddress!, im: i.baseAddress!)
                }
            }
        }
        smallRe = re
        smallIm = im
    }

    /// output (+)= torus · small, exactly, modulo X^N + 1 and 2^64.
    public func multiply(_ torus: UnsafePointer<UInt64>, into output: UnsafeMutablePointer<UInt64>,
                         accumulate: Bool) {
        let n = fft.polynomialSize, m = fft.fourierSize
        if !accumulate { output.update(repeating: 0, count: n) }
        let limb = UnsafeMutablePointer<Int64>.allocate(capacity: n)
        let re = UnsafeMutablePointer<Double>.allocate(capacity: m)
        let im = UnsafeMutablePointer<Double>.allocate(capacity: m)
        defer { limb.deallocate(); re.deallocate(); im.deallocate() }
        smallRe.withUnsafeBufferPointer { sr in
            smallIm.withUnsafeBufferPointer { si in
                for k in 0..<4 {
                    let shift = UInt64(16 * k)
                    for j in 0..<n { limb[j] = Int64((torus[j] >> shift) & 0xFFFF) }
                    fft.forward(limb, re: re, im: im)
                    FourierArithmetic.multiply(outRe: re, outIm: im, aRe: re, aIm: im,
                                               bRe: sr.baseAddress!, bIm: si.baseAddress!, count: m)
                    fft.backwardSigned(re: re, im: im, into: limb)
                    for j in 0..<n { output[j] &+= UInt64(bitPattern: limb[j]) << shift }
                }
            }
        }
    }

    /// A schoolbook reference product, O(N^2), for tests.
    public static func schoolbook(_ a: [UInt64], _ b: [Int64]) -> [UInt64] {
        let n = a.count
        var out = [UInt64](repeating: 0, count: n)
        for i in 0..<n where b[i] != 0 {
            let factor = UInt64(bitPattern: b[i])
            for j in 0..<n {
                let term = a[j] &* factor
                if i + j < n { out[i + j] &+= term } else { out[i + j - n] &-= term }
            }
        }
        return out
    }
}
