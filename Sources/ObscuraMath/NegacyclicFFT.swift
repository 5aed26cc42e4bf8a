#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The negacyclic FFT over doubles: products in Z[X]/(X^N + 1) by pointwise multiplication.
///
/// A real polynomial of size N is folded into M = N/2 complex numbers
/// z_j = (a_j + i·a_{j+M})·w^j with w = exp(iπ/N), then transformed by an M-point FFT, which
/// evaluates it at the roots w^(4k+1) of X^N + 1 (the other half are their conjugates). The
/// pointwise product of two transforms is the transform of the negacyclic product.
///
/// The forward transform is decimation in frequency (natural order in, bit-reversed order
/// out) and the backward one decimation in time (bit-reversed in, natural out), so no
/// permutation is ever done: Fourier-domain data is only combined pointwise, and the order is
/// private to this type. Complex vectors are stored split, real parts then imaginary parts.
public final class NegacyclicFFT: Sendable {
    /// N, the number of real coefficients.
    public let polynomialSize: Int
    /// M = N/2, the number of complex Fourier coefficients.
    public let fourierSize: Int
    @usableFromInline let twistRe: [Double]
    @usableFromInline let twistIm: [Double]
    @usableFromInline let untwistRe: [Double]
    @usableFromInline let untwistIm: [Double]
    /// Twiddles exp(-2πi·j/(2h)) of the stage with half-width h, at offsets h ..< 2h.
    @usableFromInline let twiddleRe: [Double]
    @usableFromInline let twiddleIm: [Double]

    /// A plan for polynomials of size `polynomialSize`, a power of two of at least 16.
    public init(polynomialSize: Int) {
        precondition(polynomialSize >= 16 && polynomialSize & (polynomialSize - 1) == 0,
                     "polynomial size must be a power of two >= 16")
        self.polynomialSize = polynomialSize
        let m = polynomialSize / 2
        fourierSize = m
        var tr = [Double](repeating: 0, count: m), ti = tr, ur = tr, ui = tr
        for j in 0..<m {
            let angle = Double.pi * Double(j) / Double(polynomialSize)
            tr[j] = cos(angle)
            ti[j] = sin(angle)
            ur[j] = cos(angle) / Double(m)
            ui[j] = -sin(angle) / Double(m)
        }
        var wr = [Double](repeating: 0, count: m), wi = wr
        var half = 1
        while half < m {
            for j in 0..<half {
                let angle = -Double.pi * Double(j) / Double(half)
                wr[half + j] = cos(angle)
                wi[half + j] = sin(angle)
            }
            half <<= 1
        }
        twistRe = tr; twistIm = ti; untwistRe = ur; untwistIm = ui
        twiddleRe = wr; twiddleIm = wi
    }

    /// Forward transform of a signed integer polynomial (digits, or a torus polynomial read
    /// as signed) into split real/imaginary buffers of `fourierSize` doubles each.
    @inlinable
    public func forward(_ input: UnsafePointer<Int64>, re: UnsafeMutablePointer<Double>,
                        im: UnsafeMutablePointer<Double>) {
        let m = fourierSize
        twistRe.withUnsafeBufferPointer { tr in
            twistIm.withUnsafeBufferPointer { ti in
                for j in 0..<m {
                    let a = Double(input[j]), b = Double(input[j + m])
                    re[j] = a * tr[j] - b * ti[j]
                    im[j] = a * ti[j] + b * tr[j]
                }
            }
        }
        forwardInPlace(re: re, im: im)
    }

    /// The M-point DIF FFT on already twisted data.
    @inlinable
    func forwardInPlace(re: UnsafeMutablePointer<Double>, im: UnsafeMutablePointer<Double>) {
        let m = fourierSize
        twiddleRe.withUnsafeBufferPointer { twr in
            twiddleIm.withUnsafeBufferPointer { twi in
                var half = m >> 1
                while half >= 4 {
                    let wr = twr.baseAddress! + half, wi = twi.baseAddress! + half
                    var start = 0
                    while start < m {
                        let ar = re + start, ai = im + start
                        let br = ar + half, bi = ai + half
                        var j = 0
                        while j < half {
                            let ur = load4(ar + j), ui = load4(ai + j)
                            let vr = load4(br + j), vi = load4(bi + j)
                            store4(ar + j, ur + vr)
                            store4(ai + j, ui + vi)
                            let dr = ur - vr, di = ui - vi
                            let cr = load4(wr + j), ci = load4(wi + j)
                            store4(br + j, dr * cr - di * ci)
                            store4(bi + j, dr * ci + di * cr)
                            j &+= 4
                        }
                        start &+= half << 1
                    }
                    half >>= 1
                }
            }
        }
        // The last two stages (half-widths 2 and 1) on groups of four: twiddles 1 and -i.
        var start = 0
        while start < m {
            let x0r = re[start], x1r = re[start + 1], x2r = re[start + 2], x3r = re[start + 3]
            let x0i = im[start], x1i = im[start + 1], x2i = im[start + 2], x3i = im[start + 3]
            let y0r = x0r + x2r, y0i = x0i + x2i
            let y1r = x1r + x3r, y1i = x1i + x3i
            let y2r = x0r - x2r, y2i = x0i - x2i
            let y3r = x1i - x3i, y3i = x3r - x1r   // (x1 - x3)·(-i)
            re[start] = y0r + y1r; im[start] = y0i + y1i
            re[start + 1] = y0r - y1r; im[start + 1] = y0i - y1i
            re[start + 2] = y2r + y3r; im[start + 2] = y2i + y3i
            re[start + 3] = y2r - y3r; im[start + 3] = y2i - y3i
            start &+= 4
        }
    }

    /// The inverse M-point DIT FFT, unscaled (the untwist carries the 1/M).
    @inlinable
    func backwardInPlace(re: UnsafeMutablePointer<Double>, im: UnsafeMutablePointer<Double>) {
        let m = fourierSize
        var start = 0
        while start < m {
            let z0r = re[start], z1r = re[start + 1], z2r = re[start + 2], z3r = re[start + 3]
            let z0i = im[start], z1i = im[start + 1], z2i = im[start + 2], z3i = im[start + 3]
            let y0r = z0r + z1r, y0i = z0i + z1i
            let y1r = z0r - z1r, y1i = z0i - z1i
            let y2r = z2r + z3r, y2i = z2i + z3i
            let y3r = z2r - z3r, y3i = z2i - z3i
            let tr = -y3i, ti = y3r   // y3·(+i)
            re[start] = y0r + y2r; im[start] = y0i + y2i
            re[start + 2] = y0r - y2r; im[start + 2] = y0i - y2i
            re[start + 1] = y1r + tr; im[start + 1] = y1i + ti
            re[start + 3] = y1r - tr; im[start + 3] = y1i - ti
            start &+= 4
        }
        twiddleRe.withUnsafeBufferPointer { twr in
            twiddleIm.withUnsafeBufferPointer { twi in
                var half = 4
                while half < m {
                    let wr = twr.baseAddress! + half, wi = twi.baseAddress! + half
                    var start = 0
                    while start < m {
                        let ar = re + start, ai = im + start
                        let br = ar + half, bi = ai + half
                        var j = 0
                        while j < half {
                            let ur = load4(ar + j), ui = load4(ai + j)
                            let xr = load4(br + j), xi = load4(bi + j)
                            let cr = load4(wr + j), ci = load4(wi + j)
                            let vr = xr * cr + xi * ci
                            let vi = xi * cr - xr * ci
                            store4(ar + j, ur + vr)
                            store4(ai + j, ui + vi)
                            store4(br + j, ur - vr)
                            store4(bi + j, ui - vi)
                            j &+= 4
                        }
                        start &+= half << 1
                    }
                    half <<= 1
                }
            }
        }
    }

    /// Backward transform of split buffers (destroyed) and wrapping addition of the result,
    /// rounded to the 2^64 torus, into `output` (N words).
    @inlinable
    public func backwardAdd(re: UnsafeMutablePointer<Double>, im: UnsafeMutablePointer<Double>,
                            into output: UnsafeMutablePointer<UInt64>) {
        backwardInPlace(re: re, im: im)
        let m = fourierSize
        untwistRe.withUnsafeBufferPointer { ur in
            untwistIm.withUnsafeBufferPointer { ui in
                for j in 0..<m {
                    let x = re[j] * ur[j] - im[j] * ui[j]
                    let y = re[j] * ui[j] + im[j] * ur[j]
                    output[j] &+= Self.torus(x)
                    output[j + m] &+= Self.torus(y)
                }
            }
        }
    }

    /// Backward transform returning signed integers (exact when the true result is an
    /// integer well inside the double mantissa), used for exact limb products.
    @inlinable
    public func backwardSigned(re: UnsafeMutablePointer<Double>, im: UnsafeMutablePointer<Double>,
                               into output: UnsafeMutablePointer<Int64>) {
        backwardInPlace(re: re, im: im)
        let m = fourierSize
        for j in 0..<m {
            let x = re[j] * untwistRe[j] - im[j] * untwistIm[j]
            let y = re[j] * untwistIm[j] + im[j] * untwistRe[j]
            output[j] = Int64(x.rounded())
            output[j + m] = Int64(y.rounded())
        }
    }

    /// A double, possibly far outside 64 bits, reduced modulo 2^64 and rounded to the nearest
    /// integer. Values exactly at ±2^63 (the same torus point) are pulled one ulp inward so the
    /// conversion never traps.
    @inlinable @inline(__always)
    public static func torus(_ x: Double) -> UInt64 {
        let reduced = x - (x * 0x1p-64).rounded(.toNearestOrEven) * 0x1p64
        let clamped = Swift.min(reduced, 9_223_372_036_854_774_784.0).rounded(.toNearestOrEven)
        return UInt64(bitPattern: Int64(clamped))
    }
}
