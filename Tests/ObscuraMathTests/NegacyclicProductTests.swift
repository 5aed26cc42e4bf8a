import Testing
@testable import ObscuraMath

/// Negacyclic products: the FFT, the exact limb product and the NTT against the schoolbook.
struct NegacyclicProductTests {
    @Test("X^1 · X^(N-1) = -1: the wrap-around sign", arguments: [16, 64, 1024])
    func monomialWrapAround(size: Int) {
        var a = [UInt64](repeating: 0, count: size), b = [Int64](repeating: 0, count: size)
        a[1] = 1
        b[size - 1] = 1
        let product = ExactPolynomialProduct.schoolbook(a, b)
        #expect(product[0] == UInt64.max)
        #expect(product.dropFirst().allSatisfy { $0 == 0 })
        let exact = ExactPolynomialProduct(fft: NegacyclicFFT(polynomialSize: size), small: b)
        var out = [UInt64](repeating: 0, count: size)
        a.withUnsafeBufferPointer { a in
            out.withUnsafeMutableBufferPointer { exact.multiply(a.baseAddress!, into: $0.baseAddress!, accumulate: false) }
        }
        #expect(out == product)
    }

    @Test("FFT product of small integers is exact", arguments: [16, 32, 64, 256, 512, 1024, 2048, 4096, 8192])
    func fftSmallIntegers(size: Int) {
        var rng = CSPRNG(seed: Seed128(low: UInt64(size), high: 1), domain: "test")
        let a = (0..<size).map { _ in Int64(rng.next() % 2001) - 1000 }
        let b = (0..<size).map { _ in Int64(rng.next() % 3) - 1 }
        let expected = ExactPolynomialProduct.schoolbook(a.map { UInt64(bitPattern: $0) }, b)
        let fft = NegacyclicFFT(polynomialSize: size)
        var ar = [Double](repeating: 0, count: size / 2), ai = ar, br = ar, bi = ar
        fft.forward(a, re: &ar, im: &ai)
        fft.forward(b, re: &br, im: &bi)
        FourierArithmetic.multiply(outRe: &ar, outIm: &ai, aRe: ar, aIm: ai, bRe: br, bIm: bi, count: size / 2)
        var signed = [Int64](repeating: 0, count: size)
        fft.backwardSigned(re: &ar, im: &ai, into: &signed)
        #expect(signed.map { UInt64(bitPattern: $0) } == expected)
        // The NTT agrees, as an independent exact path.
        let ntt = NegacyclicNTT(polynomialSize: size)
        #expect(ntt.multiply(a, b).map { UInt64(bitPattern: $0) } == expected)
    }

    @Test("exact limb product of a torus polynomial by a binary key", arguments: [16, 512, 2048])
    func exactTorusTimesBinary(size: Int) {
        var rng = CSPRNG(seed: Seed128(low: 7, high: UInt64(size)), domain: "test")
        let a = (0..<size).map { _ in rng.next() }
        let s = (0..<size).map { _ in Int64(rng.next() & 1) }
        let exact = ExactPolynomialProduct(fft: NegacyclicFFT(polynomialSize: size), small: s)
        var out = [UInt64](repeating: 0, count: size)
        a.withUnsafeBufferPointer { a in
            out.withUnsafeMutableBufferPointer { exact.multiply(a.baseAddress!, into: $0.baseAddress!, accumulate: false) }
        }
        #expect(out == ExactPolynomialProduct.schoolbook(a, s))
    }

    @Test("FFT product of a torus polynomial by digits is within the predicted rounding error")
    func fftTorusTimesDigitsError() {
        let size = 2048
        var rng = CSPRNG(seed: Seed128(low: 3, high: 3), domain: "test")
        let a = (0..<size).map { _ in rng.next() }
        let d = (0..<size).map { _ in Int64(rng.next() % (1 << 23)) - (1 << 22) }
        let expected = ExactPolynomialProduct.schoolbook(a, d)
        let fft = NegacyclicFFT(polynomialSize: size)
        var ar = [Double](repeating: 0, count: size / 2), ai = ar, br = ar, bi = ar
        fft.forward(a.map { Int64(bitPattern: $0) }, re: &ar, im: &ai)
        fft.forward(d, re: &br, im: &bi)
        FourierArithmetic.multiply(outRe: &ar, outIm: &ai, aRe: ar, aIm: ai, bRe: br, bIm: bi, count: size / 2)
        var out = [UInt64](repeating: 0, count: size)
        fft.backwardAdd(re: &ar, im: &ai, into: &out)
        // Products reach 2^63 · 2^22 · 2^11 = 2^96 in size, so the double result is good to
        // about 2^(96-53) = 2^43: that rounding is part of the bootstrapping noise budget.
        let worst = zip(out, expected).map { abs(Double(Int64(bitPattern: $0 &- $1))) }.max()!
        #expect(worst < 0x1p44)
    }
}

struct TorusConversionTests {
    @Test("the four-lane torus conversion is the scalar one rounded to 2^13, edge cases included")
    func vectorMatchesScalar() {
        var rng = CSPRNG(seed: Seed128(low: 5, high: 5), domain: "torus")
        var values: [Double] = [0, 0.5, -0.5, 1.5, -1.5, 0x1p63, -0x1p63, 0x1p64, -0x1p64, 0x1p63 - 1024, 3 * 0x1p63,
                                0x1p32 - 0.5, 0x1p32 + 0.5, -0x1p32, 0x1p100, -0x1p100 + 0x1p60, 12345.25, -98765.75]
        for _ in 0..<4000 {
            let magnitude = Double(rng.next() % 100)
            let sign: Double = rng.next() & 1 == 1 ? -1 : 1
            values.append(sign * Double(rng.next() >> 11) * Double.pow2(Int(magnitude) - 53))
        }
        while values.count % 4 != 0 { values.append(7) }
        for start in stride(from: 0, to: values.count, by: 4) {
            let lanes = SIMD4<Double>(values[start], values[start + 1], values[start + 2], values[start + 3])
            let vector = NegacyclicFFT.torus4(lanes)
            for lane in 0..<4 {
                // Within half a step of 2^13 (the scalar path pulls ±2^63 in by 1024 more).
                let difference = Int64(bitPattern: vector[lane] &- NegacyclicFFT.torus(lanes[lane]))
                #expect(abs(difference) <= 4096 + 1024, "\(lanes[lane])")
                #expect(vector[lane] % 8192 == 0, "\(lanes[lane])")
            }
        }
    }
}
