import ObscuraMath
import Testing
@testable import TFHE

/// The parts of multi-bit blind rotation that the end-to-end bootstrap and noise tests do not
/// isolate: the key's indicator GGSWs and the monomials' Fourier transforms.
struct MultiBitTests {
    @Test("the bootstrapping key encrypts, per group of g key bits, the indicator of each nonzero pattern: exactly one 1 unless the bits are all 0",
          arguments: [2, 3, 4])
    func indicatorMessages(groupingFactor g: Int) {
        let parameters = TFHEParameters.secureSets.first { $0.groupingFactor == g }!
        let secret = SecretKey(parameters: parameters, deterministicSeed: Seed128(low: 3, high: UInt64(g)))
        let patterns = (1 << g) - 1
        #expect(parameters.bootstrapKeyGgswCount == parameters.lweDimension / g * patterns)
        for group in 0..<(parameters.lweDimension / g) {
            let bits = (0..<g).reduce(0) { $0 | Int(secret.smallKey[group * g + $1]) << $1 }
            let messages = (0..<patterns).map { secret.bootstrapKeyMessage(ggsw: group * patterns + $0) }
            for (index, message) in messages.enumerated() {
                #expect(message == (index + 1 == bits ? 1 : 0), "group \(group) bits \(bits) pattern \(index + 1)")
            }
        }
    }

    @Test("the monomials' table gives the FFT's own transform of X^e, for every rotation sum of a group (e up to 4·(2N − 1))")
    func monomialTransforms() {
        let n = 2048, m = n / 2
        let fft = NegacyclicFFT(polynomialSize: n)
        let table = FourierMonomials(fft: fft)
        var one = [Int64](repeating: 0, count: n)
        one[0] = 1
        var oneRe = [Double](repeating: 0, count: m), oneIm = oneRe
        fft.forward(one, re: &oneRe, im: &oneIm)
        var rng = CSPRNG(seed: Seed128(low: 5, high: 0), domain: "multi-bit.monomials")
        var block = [Double](repeating: 0, count: 15 * 8)
        for _ in 0..<40 {
            let rotations = (0..<4).map { _ in Int(rng.next() % UInt64(2 * n)) }
            let exponent = rotations.reduce(0, +) % (2 * n)
            // X^e with e ∈ [0, 2N): a signed coefficient at e mod N.
            var monomial = [Int64](repeating: 0, count: n)
            monomial[exponent % n] = exponent < n ? 1 : -1
            var re = [Double](repeating: 0, count: m), im = re
            fft.forward(monomial, re: &re, im: &im)
            var worst = 0.0
            for c in stride(from: 0, to: m, by: 4) {
                rotations.withUnsafeBufferPointer { r in
                    table.exponents.withUnsafeBufferPointer { o in
                        table.cosines.withUnsafeBufferPointer { cosines in
                            table.sines.withUnsafeBufferPointer { sines in
                                block.withUnsafeMutableBufferPointer {
                                    table.writeBlock(c / 4, rotations: r.baseAddress!, groupingFactor: 4, exponents: o.baseAddress!,
                                                     cosines: cosines.baseAddress!, sines: sines.baseAddress!, into: $0.baseAddress!)
                                }
                            }
                        }
                    }
                }
                // Pattern 15 (all four bits) holds X^(Σ ã) − 1; times the transform of 1 it is X^e's.
                for lane in 0..<4 {
                    let xr = block[14 * 8 + lane] + 1, xi = block[14 * 8 + 4 + lane]
                    let expectedRe = xr * oneRe[c + lane] - xi * oneIm[c + lane]
                    let expectedIm = xr * oneIm[c + lane] + xi * oneRe[c + lane]
                    worst = max(worst, abs(expectedRe - re[c + lane]), abs(expectedIm - im[c + lane]))
                }
            }
            #expect(worst < 1e-12, "rotations \(rotations): largest difference \(worst)")
        }
    }
}
