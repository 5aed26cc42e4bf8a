/// The negacyclic number-theoretic transform of Z_q[X]/(X^N + 1) for one prime q ≡ 1 (mod 2N).
///
/// With ψ a primitive 2N-th root of unity mod q, the forward transform maps a(X) to its values
/// at the N roots of X^N + 1: output index i holds a(ψ^(2·rev(i)+1)), rev reversing log2 N bits.
/// Products of polynomials become pointwise products of their transforms.
///
/// Forward: Cooley–Tukey butterflies from natural to bit-reversed order with ψ^rev(k) twiddles;
/// inverse: Gentleman–Sande from bit-reversed to natural order with N^-1 folded into the last
/// stage (Longa and Naehrig, eprint 2016/504, Alg. 1–2). Butterflies are lazy after Harvey
/// (arXiv 1205.2926): forward values stay in [0, 4q), inverse values in [0, 2q), and twiddle
/// products use Shoup constants, so no butterfly divides or fully reduces.
public struct NTTTables: Sendable {
    /// q.
    public let modulus: Modulus
    /// N.
    public let polynomialSize: Int
    /// ψ.
    public let root: UInt64
    @usableFromInline let roots: [UInt64]          // ψ^rev(k), k = 0..<N
    @usableFromInline let rootsShoup: [UInt64]
    @usableFromInline let inverseRoots: [UInt64]   // ψ^-rev(k)·… in the order the inverse reads them
    @usableFromInline let inverseRootsShoup: [UInt64]
    @usableFromInline let nInverse: UInt64
    @usableFromInline let nInverseShoup: UInt64
    /// (N^-1·ψ^-rev(1)) and its Shoup constant: the last inverse stage's two factors in one.
    @usableFromInline let lastInverse: UInt64
    @usableFromInline let lastInverseShoup: UInt64

    /// Tables for N (a power of two ≥ 2) and a prime q ≡ 1 (mod 2N).
    public init(polynomialSize n: Int, modulus q: Modulus) {
        precondition(n >= 2 && n & (n - 1) == 0, "N is a power of two")
        modulus = q
        polynomialSize = n
        let psi = NTTPrimes.primitiveRoot(order: 2 * n, modulus: q)
        root = psi
        let psiInverse = q.inverse(psi)
        let logN = n.trailingZeroBitCount
        var forward = [UInt64](repeating: 0, count: n), backward = forward
        var power: UInt64 = 1, inversePower: UInt64 = 1
        var psiPowers = [UInt64](repeating: 1, count: n), psiInversePowers = psiPowers
        for j in 0..<n {
            psiPowers[j] = power
            psiInversePowers[j] = inversePower
            power = q.multiply(power, psi)
            inversePower = q.multiply(inversePower, psiInverse)
        }
        for k in 0..<n {
            let r = Self.reverse(k, bits: logN)
            forward[k] = psiPowers[r]
            backward[k] = psiInversePowers[r]
        }
        roots = forward
        rootsShoup = forward.map { q.shoup($0) }
        inverseRoots = backward
        inverseRootsShoup = backward.map { q.shoup($0) }
        nInverse = q.inverse(UInt64(n))
        nInverseShoup = q.shoup(nInverse)
        lastInverse = q.multiply(nInverse, backward[1])
        lastInverseShoup = q.shoup(lastInverse)
    }

    /// k with its lowest `bits` bits reversed.
    public static func reverse(_ k: Int, bits: Int) -> Int {
        var r = 0, v = k
        for _ in 0..<bits { r = (r << 1) | (v & 1); v >>= 1 }
        return r
    }

    /// The exponent e (odd, below 2N) with output index i = a(ψ^e).
    public func evaluationExponent(ofIndex i: Int) -> Int {
        2 * Self.reverse(i, bits: polynomialSize.trailingZeroBitCount) + 1
    }

    /// In-place forward transform; input in [0, 4q) (e.g. residues), output fully reduced.
    @inlinable
    public func forward(_ a: UnsafeMutablePointer<UInt64>) {
        forwardLazy(a)
        let q = modulus.value, twoQ = 2 * q
        for j in 0..<polynomialSize {
            var x = a[j]
            x = Swift.min(x, x &- twoQ)
            a[j] = Swift.min(x, x &- q)
        }
    }

    /// In-place forward transform leaving values in [0, 4q). Stages with t ≥ 4 run four
    /// butterflies per step; the last two (t = 2, 1) have their own loops: a generic inner
    /// loop of one or two iterations costs more than its butterflies (about 1.8x overall).
    @inlinable
    public func forwardLazy(_ a: UnsafeMutablePointer<UInt64>) {
        let n = polynomialSize
        let q = modulus.value, twoQ = 2 &* q
        // x, y ← u + v·w, u − v·w (mod 2q-ish), u first brought below 2q.
        @inline(__always)
        func butterfly(_ x: UnsafeMutablePointer<UInt64>, _ y: UnsafeMutablePointer<UInt64>, _ w: UInt64, _ wShoup: UInt64) {
            // min(u, u − 2q) is u mod 2q for u < 4q, without a branch.
            let u = Swift.min(x.pointee, x.pointee &- twoQ)
            let v = y.pointee
            let product = v &* w &- v.multipliedFullWidth(by: wShoup).high &* q
            x.pointee = u &+ product
            y.pointee = u &- product &+ twoQ
        }
        roots.withUnsafeBufferPointer { w in
            rootsShoup.withUnsafeBufferPointer { wShoup in
                var t = n, m = 1
                while t > 4 {
                    t >>= 1
                    Self.stage(a, blocks: m, half: t, twiddles: w, shoup: wShoup, first: m, butterfly)
                    m <<= 1
                }
                if t == 4 {  // N ≥ 4: the t = 2 stage
                    for i in 0..<m {
                        let x = a + 4 * i
                        butterfly(x, x + 2, w[m + i], wShoup[m + i])
                        butterfly(x + 1, x + 3, w[m + i], wShoup[m + i])
                    }
                    m <<= 1
                }
                for i in 0..<m {  // t = 1
                    let x = a + 2 * i
                    butterfly(x, x + 1, w[m + i], wShoup[m + i])
                }
            }
        }
    }

    /// In-place inverse transform (including the 1/N scaling); input in [0, 2q), output fully
    /// reduced. The first two stages (t = 1, 2) have their own loops, later ones four
    /// butterflies per step, as in ``forwardLazy(_:)``.
    @inlinable
    public func inverse(_ a: UnsafeMutablePointer<UInt64>) {
        let n = polynomialSize
        let q = modulus.value, twoQ = 2 &* q
        @inline(__always)
        func butterfly(_ x: UnsafeMutablePointer<UInt64>, _ y: UnsafeMutablePointer<UInt64>, _ w: UInt64, _ wShoup: UInt64) {
            let u = x.pointee, v = y.pointee
            let difference = u &- v &+ twoQ
            x.pointee = Swift.min(u &+ v, u &+ v &- twoQ)
            y.pointee = difference &* w &- difference.multipliedFullWidth(by: wShoup).high &* q
        }
        inverseRoots.withUnsafeBufferPointer { w in
            inverseRootsShoup.withUnsafeBufferPointer { wShoup in
                var t = 1, m = n
                while m > 2 {
                    let h = m >> 1
                    switch t {
                    case 1:
                        for i in 0..<h {
                            let x = a + 2 * i
                            butterfly(x, x + 1, w[h + i], wShoup[h + i])
                        }
                    case 2:
                        for i in 0..<h {
                            let x = a + 4 * i
                            butterfly(x, x + 2, w[h + i], wShoup[h + i])
                            butterfly(x + 1, x + 3, w[h + i], wShoup[h + i])
                        }
                    default:
                        Self.stage(a, blocks: h, half: t, twiddles: w, shoup: wShoup, first: h, butterfly)
                    }
                    t <<= 1
                    m = h
                }
                // The last stage (m = 2, one twiddle ψ^-rev(1)) with N^-1 folded into both outputs.
                let half = n >> 1
                let nInv = nInverse, nInvShoup = nInverseShoup
                let last = lastInverse, lastShoup = lastInverseShoup
                for j in 0..<half {
                    let u = a[j], v = a[j + half]
                    let sum = u &+ v
                    let difference = u &- v &+ twoQ
                    let x = sum &* nInv &- sum.multipliedFullWidth(by: nInvShoup).high &* q
                    let y = difference &* last &- difference.multipliedFullWidth(by: lastShoup).high &* q
                    a[j] = Swift.min(x, x &- q)
                    a[j + half] = Swift.min(y, y &- q)
                }
            }
        }
    }

    /// One stage of `blocks` blocks of 2t values (t ≥ 4, a multiple of 4): block i pairs each
    /// value of its first half with the one t further under twiddle `first + i`, four
    /// butterflies per step. The forward and inverse transforms share it with their own butterflies.
    @inlinable @inline(__always)
    static func stage(_ a: UnsafeMutablePointer<UInt64>, blocks: Int, half t: Int, twiddles w: UnsafeBufferPointer<UInt64>,
                      shoup wShoup: UnsafeBufferPointer<UInt64>, first: Int,
                      _ butterfly: (UnsafeMutablePointer<UInt64>, UnsafeMutablePointer<UInt64>, UInt64, UInt64) -> Void) {
        for i in 0..<blocks {
            let wi = w[first + i], wiShoup = wShoup[first + i]
            let x = a + 2 * i * t, y = x + t
            var j = 0
            while j < t {
                butterfly(x + j, y + j, wi, wiShoup)
                butterfly(x + j + 1, y + j + 1, wi, wiShoup)
                butterfly(x + j + 2, y + j + 2, wi, wiShoup)
                butterfly(x + j + 3, y + j + 3, wi, wiShoup)
                j += 4
            }
        }
    }
}
