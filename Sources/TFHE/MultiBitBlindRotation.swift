import ObscuraMath

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bootstrapping key of one group of g small-key bits for multi-bit blind rotation: the
/// 2^g − 1 GGSWs G_β of the indicators [s_group = β], β ≠ 0, in the Fourier domain.
///
/// With ã the group's modulus-switched mask elements and e_β = Σ_{j ∈ β} ã_j mod 2N,
/// X^(Σ_j ã_j·s_j) = Σ_β [s_group = β]·X^(e_β) = 1 + Σ_{β≠0} [s_group = β]·(X^(e_β) − 1),
/// so one step of blind rotation is a single external product with a GGSW combined on the fly:
/// acc ← acc + (Σ_{β≠0} (X^(e_β) − 1)·G_β) ⊡ acc. That is n/g external products instead of n,
/// for (2^g − 1) pointwise multiply-adds of the key per Fourier coefficient, row and component.
///
/// Storage follows the order the product reads it: for each group of four Fourier
/// coefficients, each pattern β, each output component u, each row: four real parts, then four
/// imaginary parts. A run of coefficient groups is then one contiguous slice of the key, which
/// a batch of bootstraps reads from cache for all its members, and each pattern's monomial
/// meets (k+1)·rows key entries in a row, four independent sums at a time.
public struct FourierMultiBitGroup: Sendable {
    /// The parameter set.
    public let parameters: TFHEParameters
    let storage: [Double]

    /// 2^g − 1.
    var patterns: Int { (1 << parameters.groupingFactor) - 1 }
    /// Doubles per group of four Fourier coefficients: (k+1)·rows·patterns·8.
    var blockSize: Int {
        (parameters.glweDimension + 1) * (parameters.glweDimension + 1) * parameters.bootstrapDecomposition.levels * patterns * 8
    }

    /// Interleaves the group's GGSWs (pattern β at index β − 1) into the product's order.
    init(_ ggsws: [FourierGgswCiphertext]) {
        let p = ggsws[0].parameters
        parameters = p
        precondition(ggsws.count == (1 << p.groupingFactor) - 1, "one GGSW per nonzero pattern")
        let patterns = ggsws.count, rows = ggsws[0].rows, components = p.glweDimension + 1
        precondition(components * rows % 4 == 0, "multi-bit blind rotation combines (k+1)²·l key entries four at a time")
        let blocks = p.polynomialSize / 8
        var storage = [Double](repeating: 0, count: patterns * ggsws[0].storage.count)
        for (pattern, ggsw) in ggsws.enumerated() {
            for u in 0..<components {
                for block in 0..<blocks {
                    for row in 0..<rows {
                        let from = ((u * blocks + block) * rows + row) * 8
                        let to = (((block * patterns + pattern) * components + u) * rows + row) * 8
                        for d in 0..<8 { storage[to + d] = ggsw.storage[from + d] }
                    }
                }
            }
        }
        self.storage = storage
    }
}

/// The monomials X^e in the Fourier domain of a ``NegacyclicFFT``: slot c of a transform holds
/// the polynomial's value at ζ^(o_c), ζ = exp(iπ/N) (up to a factor common to all polynomials),
/// so the transform of X^e is ζ^(o_c·e mod 2N) times the transform of 1. The exponents o_c are
/// read off the transforms of X and 1, so they follow whatever order the FFT keeps.
final class FourierMonomials: Sendable {
    /// o_c for each Fourier slot.
    let exponents: [Int]
    /// cos(π·t/N) and sin(π·t/N) for t ∈ [0, 2N).
    let cosines: [Double]
    let sines: [Double]

    init(fft: NegacyclicFFT) {
        let n = fft.polynomialSize, m = fft.fourierSize
        var one = [Int64](repeating: 0, count: n), x = one
        one[0] = 1
        x[1] = 1
        var oneRe = [Double](repeating: 0, count: m), oneIm = oneRe, xRe = oneRe, xIm = oneRe
        fft.forward(one, re: &oneRe, im: &oneIm)
        fft.forward(x, re: &xRe, im: &xIm)
        exponents = (0..<m).map { c in
            // r = x̂/1̂, a root of X^N + 1: r = ζ^o with o odd.
            let norm = oneRe[c] * oneRe[c] + oneIm[c] * oneIm[c]
            let re = (xRe[c] * oneRe[c] + xIm[c] * oneIm[c]) / norm
            let im = (xIm[c] * oneRe[c] - xRe[c] * oneIm[c]) / norm
            precondition(abs(re * re + im * im - 1) < 1e-9, "the FFT's slot \(c) is not an evaluation at a root of unity")
            let o = (Int((atan2(im, re) * Double(n) / Double.pi).rounded()) + 2 * n) % (2 * n)
            precondition(o % 2 == 1, "the FFT's slot \(c) is not an evaluation at a root of X^N + 1")
            return o
        }
        cosines = (0..<(2 * n)).map { cos(Double.pi * Double($0) / Double(n)) }
        sines = (0..<(2 * n)).map { sin(Double.pi * Double($0) / Double(n)) }
    }

    /// Writes X^(e_β) − 1 in the Fourier domain at the four slots of coefficient group `block`,
    /// for β = 1 ..< 2^g, given the group's rotations ã_j ∈ [0, 2N): pattern β − 1 at
    /// `out + 8·(β − 1)`, four real parts then four imaginary parts. Every value is read from
    /// the table at its exact exponent: products of the single bits' values would each add a
    /// rounding error that the combination multiplies by the key (measured: +12-15% of the
    /// bootstrap's output variance on int4-128-mb3 and -mb4).
    @inline(__always)
    func writeBlock(_ block: Int, rotations: UnsafePointer<Int>, groupingFactor g: Int,
                    exponents o: UnsafePointer<Int>, cosines: UnsafePointer<Double>, sines: UnsafePointer<Double>,
                    into out: UnsafeMutablePointer<Double>) {
        let mask = 4 * exponents.count - 1, c = block * 4
        let o0 = o[c], o1 = o[c + 1], o2 = o[c + 2], o3 = o[c + 3]
        for pattern in 1..<(1 << g) {
            let e = Self.exponent(of: pattern, rotations)
            let values = out + (pattern - 1) * 8
            let t0 = (o0 &* e) & mask, t1 = (o1 &* e) & mask, t2 = (o2 &* e) & mask, t3 = (o3 &* e) & mask
            values[0] = cosines[t0] - 1; values[1] = cosines[t1] - 1; values[2] = cosines[t2] - 1; values[3] = cosines[t3] - 1
            values[4] = sines[t0]; values[5] = sines[t1]; values[6] = sines[t2]; values[7] = sines[t3]
        }
    }

    /// e_β = Σ_{j ∈ β} ã_j (reduced by the caller's mask through the table index).
    @inline(__always)
    static func exponent(of pattern: Int, _ rotations: UnsafePointer<Int>) -> Int {
        var e = 0, bits = pattern
        while bits != 0 {
            e &+= rotations[bits.trailingZeroBitCount]
            bits &= bits - 1
        }
        return e
    }
}

/// Scratch memory of multi-bit blind rotation for a batch: each member's transformed digits
/// and Fourier accumulator, so that a slice of a group's key serves every member while it is
/// in cache.
final class MultiBitWorkspace {
    let fourierDigits: UnsafeMutablePointer<Double>
    let fourierAccumulators: UnsafeMutablePointer<Double>
    let monomials: UnsafeMutablePointer<Double>
    let active: UnsafeMutablePointer<Bool>

    init(parameters p: TFHEParameters, batchSize: Int) {
        let n = p.polynomialSize, components = p.glweDimension + 1
        fourierDigits = .allocate(capacity: batchSize * components * p.bootstrapDecomposition.levels * n)
        fourierAccumulators = .allocate(capacity: batchSize * components * n)
        monomials = .allocate(capacity: ((1 << p.groupingFactor) - 1) * 8)
        active = .allocate(capacity: batchSize)
    }

    deinit {
        fourierDigits.deallocate(); fourierAccumulators.deallocate(); monomials.deallocate(); active.deallocate()
    }
}

extension Evaluator {
    /// Multi-bit blind rotation of the first `count` members' accumulators (already holding the
    /// rotated table): for each group of g key bits, acc += (Σ_β (X^(e_β) − 1)·G_β) ⊡ acc.
    ///
    /// Per group: every member's accumulator is decomposed and its (k+1)·l digit rows
    /// transformed; then the key is walked in slices of about 64 KiB, each slice combined with
    /// every member's monomials and digits before the next is read; then k+1 inverse transforms
    /// per member. Members whose g rotations are all 0 skip the group (X^0 − 1 = 0).
    func multiBitBlindRotate(_ groups: [FourierMultiBitGroup], count: Int) {
        let p = parameters
        let n = p.polynomialSize, m = n / 2, k = p.glweDimension, components = k + 1
        let levels = p.bootstrapDecomposition.levels, rows = components * levels
        let g = p.groupingFactor, patterns = (1 << g) - 1, width = p.lweDimension + 1
        let ws = workspace, scratch = ws.multiBit!, fft = key.fft, table = key.monomials!
        let digits = ws.externalProduct.digits
        let blocks = m / 4
        let sliceBlocks = Swift.max(1, Swift.min(blocks, (24 << 10) / (groups[0].blockSize * 8)))
        table.exponents.withUnsafeBufferPointer { o in
        table.cosines.withUnsafeBufferPointer { cosines in
        table.sines.withUnsafeBufferPointer { sines in
        for (i, group) in groups.enumerated() {
            for member in 0..<count {
                let rotations = ws.rotations + member * width + i * g
                scratch.active[member] = (0..<g).contains { rotations[$0] != 0 }
                guard scratch.active[member] else { continue }
                let accumulator = ws.accumulators + member * components * n
                p.bootstrapDecomposition.decompose(accumulator, count: components * n, into: digits)
                let fd = scratch.fourierDigits + member * rows * n
                for row in 0..<rows {
                    let t = row / levels, j = row % levels
                    fft.forward(digits + j * components * n + t * n, re: fd + row * n, im: fd + row * n + m)
                }
            }
            group.storage.withUnsafeBufferPointer { key in
                var sliceStart = 0
                while sliceStart < blocks {
                    let sliceEnd = Swift.min(blocks, sliceStart + sliceBlocks)
                    for member in 0..<count where scratch.active[member] {
                        let rotations = ws.rotations + member * width + i * g
                        let fd = scratch.fourierDigits + member * rows * n
                        let facc = scratch.fourierAccumulators + member * components * n
                        for block in sliceStart..<sliceEnd {
                            table.writeBlock(block, rotations: rotations, groupingFactor: g, exponents: o.baseAddress!,
                                             cosines: cosines.baseAddress!, sines: sines.baseAddress!, into: scratch.monomials)
                            Self.combineAndMultiply(key: key.baseAddress! + block * group.blockSize,
                                                    monomials: scratch.monomials, patterns: patterns,
                                                    digits: fd + block * 4, accumulator: facc + block * 4,
                                                    components: components, rows: rows, fourierStride: n, imaginaryOffset: m)
                        }
                    }
                    sliceStart = sliceEnd
                }
            }
            for member in 0..<count where scratch.active[member] {
                let accumulator = ws.accumulators + member * components * n
                let facc = scratch.fourierAccumulators + member * components * n
                for u in 0..<components {
                    fft.backwardAdd(re: facc + u * n, im: facc + u * n + m, into: accumulator + u * n)
                }
            }
        }
        }
        }
        }
    }
}

extension Evaluator {
    /// For four Fourier coefficients of one member: acc_u = Σ_row d̂_row · Σ_β (X^(e_β) − 1)^·Ĝ_β[u, row],
    /// u ∈ 0...k. The (k+1)·rows combinations run four at a time, each pattern's monomial loaded
    /// once for the four: eight independent chains of multiply-adds, enough to hide their latency.
    @inline(__always)
    static func combineAndMultiply(key: UnsafePointer<Double>, monomials: UnsafePointer<Double>, patterns: Int,
                                   digits: UnsafePointer<Double>, accumulator: UnsafeMutablePointer<Double>,
                                   components: Int, rows: Int, fourierStride n: Int, imaginaryOffset m: Int) {
        let pairs = components * rows
        /// acc_u += d̂_row · combination, for pair = u·rows + row.
        @inline(__always)
        func multiplyAdd(pair: Int, re: SIMD4<Double>, im: SIMD4<Double>) {
            let u = pair / rows, row = pair % rows
            let dr = load4(digits + row * n), di = load4(digits + row * n + m)
            let out = accumulator + u * n
            store4(out, load4(out).addingProduct(dr, re).addingProduct(-di, im))
            store4(out + m, load4(out + m).addingProduct(dr, im).addingProduct(di, re))
        }
        for u in 0..<components {
            store4(accumulator + u * n, SIMD4<Double>())
            store4(accumulator + u * n + m, SIMD4<Double>())
        }
        var first = 0
        while first < pairs {
            var r0 = SIMD4<Double>(), i0 = SIMD4<Double>(), r1 = SIMD4<Double>(), i1 = SIMD4<Double>()
            var r2 = SIMD4<Double>(), i2 = SIMD4<Double>(), r3 = SIMD4<Double>(), i3 = SIMD4<Double>()
            var x = monomials, g = key + first * 8
            for _ in 0..<patterns {
                let xr = load4(x), xi = load4(x + 4), nxi = -xi
                var gr = load4(g), gi = load4(g + 4)
                r0 = r0.addingProduct(xr, gr).addingProduct(nxi, gi); i0 = i0.addingProduct(xr, gi).addingProduct(xi, gr)
                gr = load4(g + 8); gi = load4(g + 12)
                r1 = r1.addingProduct(xr, gr).addingProduct(nxi, gi); i1 = i1.addingProduct(xr, gi).addingProduct(xi, gr)
                gr = load4(g + 16); gi = load4(g + 20)
                r2 = r2.addingProduct(xr, gr).addingProduct(nxi, gi); i2 = i2.addingProduct(xr, gi).addingProduct(xi, gr)
                gr = load4(g + 24); gi = load4(g + 28)
                r3 = r3.addingProduct(xr, gr).addingProduct(nxi, gi); i3 = i3.addingProduct(xr, gi).addingProduct(xi, gr)
                x += 8
                g += pairs * 8
            }
            multiplyAdd(pair: first, re: r0, im: i0)
            multiplyAdd(pair: first + 1, re: r1, im: i1)
            multiplyAdd(pair: first + 2, re: r2, im: i2)
            multiplyAdd(pair: first + 3, re: r3, im: i3)
            first += 4
        }
    }
}
