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
    /// exp(-2πi·3j/(2h)) at offsets h ..< h + h/2, for the radix-4 passes.
    @usableFromInline let twiddle3Re: [Double]
    @usableFromInline let twiddle3Im: [Double]

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
        var wr = [Double](repeating: 0, count: m), wi = wr, w3r = wr, w3i = wr
        var half = 1
        while half < m {
            for j in 0..<half {
                let angle = -Double.pi * Double(j) / Double(half)
                wr[half + j] = cos(angle)
                wi[half + j] = sin(angle)
                if j < half / 2 {
                    w3r[half + j] = cos(3 * angle)
                    w3i[half + j] = sin(3 * angle)
                }
            }
            half <<= 1
        }
        twiddle3Re = w3r; twiddle3Im = w3i
        twistRe = tr; twistIm = ti; untwistRe = ur; untwistIm = ui
        twiddleRe = wr; twiddleIm = wi
    }

    /// Forward transform of a signed integer polynomial (a torus polynomial read as signed)
    /// into split real/imaginary buffers of `fourierSize` doubles each.
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

    /// Forward transform of small signed integers (gadget digits), with vector conversions.
    @inlinable
    public func forward(_ input: UnsafePointer<Int32>, re: UnsafeMutablePointer<Double>,
                        im: UnsafeMutablePointer<Double>) {
        let m = fourierSize
        twistRe.withUnsafeBufferPointer { tr in
            twistIm.withUnsafeBufferPointer { ti in
                let low = UnsafeRawPointer(input), high = UnsafeRawPointer(input + m)
                var j = 0
                while j < m {
                    let a = SIMD4<Double>(low.loadUnaligned(fromByteOffset: j * 4, as: SIMD4<Int32>.self))
                    let b = SIMD4<Double>(high.loadUnaligned(fromByteOffset: j * 4, as: SIMD4<Int32>.self))
                    let cr = load4(tr.baseAddress! + j), ci = load4(ti.baseAddress! + j)
                    store4(re + j, mulSub(a, cr, b, ci))
                    store4(im + j, mulAdd(a, ci, b, cr))
                    j &+= 4
                }
            }
        }
        forwardInPlace(re: re, im: im)
    }

    /// The M-point DIF FFT on already twisted data: one radix-2 stage when log2 M is odd,
    /// then radix-4 passes, the last of which (quarter size 1) has only trivial twiddles.
    @inlinable
    func forwardInPlace(re: UnsafeMutablePointer<Double>, im: UnsafeMutablePointer<Double>) {
        let m = fourierSize
        twiddleRe.withUnsafeBufferPointer { twr in
          twiddleIm.withUnsafeBufferPointer { twi in
            twiddle3Re.withUnsafeBufferPointer { t3r in
              twiddle3Im.withUnsafeBufferPointer { t3i in
                var block = m
                if m.trailingZeroBitCount & 1 == 1 {
                    let half = m >> 1
                    let wr = twr.baseAddress! + half, wi = twi.baseAddress! + half
                    var j = 0
                    while j < half {
                        let ur = load4(re + j), ui = load4(im + j)
                        let vr = load4(re + j + half), vi = load4(im + j + half)
                        store4(re + j, ur + vr)
                        store4(im + j, ui + vi)
                        let dr = ur - vr, di = ui - vi
                        let cr = load4(wr + j), ci = load4(wi + j)
                        store4(re + j + half, mulSub(dr, cr, di, ci))
                        store4(im + j + half, mulAdd(dr, ci, di, cr))
                        j &+= 4
                    }
                    block = half
                }
                while block >= 16 {
                    let q = block >> 2, h = block >> 1
                    let w1r = twr.baseAddress! + h, w1i = twi.baseAddress! + h
                    let w2r = twr.baseAddress! + q, w2i = twi.baseAddress! + q
                    let w3r = t3r.baseAddress! + h, w3i = t3i.baseAddress! + h
                    var start = 0
                    while start < m {
                        let r0 = re + start, i0 = im + start
                        var j = 0
                        while j < q {
                            let x0r = load4(r0 + j), x0i = load4(i0 + j)
                            let x1r = load4(r0 + j + q), x1i = load4(i0 + j + q)
                            let x2r = load4(r0 + j + 2 * q), x2i = load4(i0 + j + 2 * q)
                            let x3r = load4(r0 + j + 3 * q), x3i = load4(i0 + j + 3 * q)
                            let sr = x0r + x2r, si = x0i + x2i
                            let dr = x0r - x2r, di = x0i - x2i
                            let tr = x1r + x3r, ti = x1i + x3i
                            let er = x1r - x3r, ei = x1i - x3i
                            store4(r0 + j, sr + tr)
                            store4(i0 + j, si + ti)
                            let b1r = sr - tr, b1i = si - ti
                            let c2r = load4(w2r + j), c2i = load4(w2i + j)
                            store4(r0 + j + q, mulSub(b1r, c2r, b1i, c2i))
                            store4(i0 + j + q, mulAdd(b1r, c2i, b1i, c2r))
                            // (x0 - x2) ∓ i(x1 - x3)
                            let b2r = dr + ei, b2i = di - er
                            let b3r = dr - ei, b3i = di + er
                            let c1r = load4(w1r + j), c1i = load4(w1i + j)
                            store4(r0 + j + 2 * q, mulSub(b2r, c1r, b2i, c1i))
                            store4(i0 + j + 2 * q, mulAdd(b2r, c1i, b2i, c1r))
                            let c3r = load4(w3r + j), c3i = load4(w3i + j)
                            store4(r0 + j + 3 * q, mulSub(b3r, c3r, b3i, c3i))
                            store4(i0 + j + 3 * q, mulAdd(b3r, c3i, b3i, c3r))
                            j &+= 4
                        }
                        start &+= block
                    }
                    block = q
                }
              }
            }
          }
        }
        // The last radix-4 pass (quarter size 1): twiddles 1 and -i only.
        var start = 0
        while start < m {
            let x0r = re[start], x1r = re[start + 1], x2r = re[start + 2], x3r = re[start + 3]
            let x0i = im[start], x1i = im[start + 1], x2i = im[start + 2], x3i = im[start + 3]
            let sr = x0r + x2r, si = x0i + x2i
            let tr = x1r + x3r, ti = x1i + x3i
            let dr = x0r - x2r, di = x0i - x2i
            let er = x1r - x3r, ei = x1i - x3i
            re[start] = sr + tr; im[start] = si + ti
            re[start + 1] = sr - tr; im[start + 1] = si - ti
            re[start + 2] = dr + ei; im[start + 2] = di - er
            re[start + 3] = dr - ei; im[start + 3] = di + er
            start &+= 4
        }
    }

    /// The inverse of ``forwardInPlace(re:im:)``, unscaled (the untwist carries the 1/M).
    @inlinable
    func backwardInPlace(re: UnsafeMutablePointer<Double>, im: UnsafeMutablePointer<Double>) {
        let m = fourierSize
        var start = 0
        while start < m {
            let b0r = re[start], b1r = re[start + 1], b2r = re[start + 2], b3r = re[start + 3]
            let b0i = im[start], b1i = im[start + 1], b2i = im[start + 2], b3i = im[start + 3]
            let sr = b0r + b1r, si = b0i + b1i     // 2(x0 + x2)
            let tr = b0r - b1r, ti = b0i - b1i     // 2(x1 + x3)
            let ur = b2r + b3r, ui = b2i + b3i     // 2(x0 - x2)
            let vr = b3i - b2i, vi = b2r - b3r     // (b3 - b2)·(-i) = 2(x1 - x3)
            re[start] = sr + ur; im[start] = si + ui
            re[start + 2] = sr - ur; im[start + 2] = si - ui
            re[start + 1] = tr + vr; im[start + 1] = ti + vi
            re[start + 3] = tr - vr; im[start + 3] = ti - vi
            start &+= 4
        }
        twiddleRe.withUnsafeBufferPointer { twr in
          twiddleIm.withUnsafeBufferPointer { twi in
            twiddle3Re.withUnsafeBufferPointer { t3r in
              twiddle3Im.withUnsafeBufferPointer { t3i in
                let radix4Limit = m.trailingZeroBitCount & 1 == 1 ? m >> 1 : m
                var block = 16
                while block <= radix4Limit {
                    let q = block >> 2, h = block >> 1
                    let w1r = twr.baseAddress! + h, w1i = twi.baseAddress! + h
                    let w2r = twr.baseAddress! + q, w2i = twi.baseAddress! + q
                    let w3r = t3r.baseAddress! + h, w3i = t3i.baseAddress! + h
                    var start = 0
                    while start < m {
                        let r0 = re + start, i0 = im + start
                        var j = 0
                        while j < q {
                            let b0r = load4(r0 + j), b0i = load4(i0 + j)
                            let b1r = load4(r0 + j + q), b1i = load4(i0 + j + q)
                            let b2r = load4(r0 + j + 2 * q), b2i = load4(i0 + j + 2 * q)
                            let b3r = load4(r0 + j + 3 * q), b3i = load4(i0 + j + 3 * q)
                            let c2r = load4(w2r + j), c2i = load4(w2i + j)
                            let c1r = load4(w1r + j), c1i = load4(w1i + j)
                            let c3r = load4(w3r + j), c3i = load4(w3i + j)
                            // Multiply by the conjugate twiddles.
                            let e1r = mulAdd(b1r, c2r, b1i, c2i), e1i = mulSub(b1i, c2r, b1r, c2i)
                            let e2r = mulAdd(b2r, c1r, b2i, c1i), e2i = mulSub(b2i, c1r, b2r, c1i)
                            let e3r = mulAdd(b3r, c3r, b3i, c3i), e3i = mulSub(b3i, c3r, b3r, c3i)
                            let sr = b0r + e1r, si = b0i + e1i
                            let tr = b0r - e1r, ti = b0i - e1i
                            let ur = e2r + e3r, ui = e2i + e3i
                            let vr = e3i - e2i, vi = e2r - e3r
                            store4(r0 + j, sr + ur); store4(i0 + j, si + ui)
                            store4(r0 + j + 2 * q, sr - ur); store4(i0 + j + 2 * q, si - ui)
                            store4(r0 + j + q, tr + vr); store4(i0 + j + q, ti + vi)
                            store4(r0 + j + 3 * q, tr - vr); store4(i0 + j + 3 * q, ti - vi)
                            j &+= 4
                        }
                        start &+= block
                    }
                    block <<= 2
                }
                if radix4Limit != m {
                    let half = m >> 1
                    let wr = twr.baseAddress! + half, wi = twi.baseAddress! + half
                    var j = 0
                    while j < half {
                        let ur = load4(re + j), ui = load4(im + j)
                        let xr = load4(re + j + half), xi = load4(im + j + half)
                        let cr = load4(wr + j), ci = load4(wi + j)
                        let vr = mulAdd(xr, cr, xi, ci)
                        let vi = mulSub(xi, cr, xr, ci)
                        store4(re + j, ur + vr); store4(im + j, ui + vi)
                        store4(re + j + half, ur - vr); store4(im + j + half, ui - vi)
                        j &+= 4
                    }
                }
              }
            }
          }
        }
    }

    /// Backward transform of split buffers (destroyed) and wrapping addition of the result,
    /// reduced to the 2^64 torus at a precision of 2^13 (see ``torus4(_:)``), into `output`
    /// (N words). Exact integer results need ``backwardSigned(re:im:into:)``.
    @inlinable
    public func backwardAdd(re: UnsafeMutablePointer<Double>, im: UnsafeMutablePointer<Double>,
                            into output: UnsafeMutablePointer<UInt64>) {
        backwardInPlace(re: re, im: im)
        let m = fourierSize
        untwistRe.withUnsafeBufferPointer { ur in
            untwistIm.withUnsafeBufferPointer { ui in
                let low = UnsafeMutableRawPointer(output), high = UnsafeMutableRawPointer(output + m)
                var j = 0
                while j < m {
                    let r = load4(re + j), i = load4(im + j)
                    let cr = load4(ur.baseAddress! + j), ci = load4(ui.baseAddress! + j)
                    let x = Self.torus4(mulSub(r, cr, i, ci)), y = Self.torus4(mulAdd(r, ci, i, cr))
                    low.storeBytes(of: low.loadUnaligned(fromByteOffset: j * 8, as: SIMD4<UInt64>.self) &+ x,
                                   toByteOffset: j * 8, as: SIMD4<UInt64>.self)
                    high.storeBytes(of: high.loadUnaligned(fromByteOffset: j * 8, as: SIMD4<UInt64>.self) &+ y,
                                    toByteOffset: j * 8, as: SIMD4<UInt64>.self)
                    j &+= 4
                }
            }
        }
    }

    /// Four doubles (in units of the 2^64 torus, of any size) reduced modulo 2^64 to the
    /// nearest multiple of 2^13, without a conversion instruction (AVX2 has none from double
    /// to 64-bit integers): in turns, the fraction t - round(t) is exact, and adding 3 places
    /// it in the low 51 bits of the mantissa, which are read as an integer. The 2^13 step is
    /// 2^-51 of the torus, far below the rounding of the transform itself (about 2^44 for the
    /// external product's operands).
    @inlinable @inline(__always)
    public static func torus4(_ x: SIMD4<Double>) -> SIMD4<UInt64> {
        let turns = x * 0x1p-64
        let fraction = turns - turns.rounded(.toNearestOrEven)
        let placed = unsafeBitCast(fraction + 3, to: SIMD4<UInt64>.self)
        return (placed &- SIMD4(repeating: (3 as Double).bitPattern)) &<< 13
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
