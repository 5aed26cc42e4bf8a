import ObscuraMath

/// A sparse matrix of integer weights, row by row: output o is Σ weights[t]·input[columns[t]]
/// over row o's terms. Zero weights are dropped and each row keeps its positive weights before
/// its negative ones (the accumulation sums the two apart and subtracts once).
public struct SparseIntegerRows: Sendable, Equatable {
    /// Row o's terms are rowStart[o]..<rowStart[o + 1]; its positive ones end at positiveEnd[o].
    public let rowStart: [Int]
    public let positiveEnd: [Int]
    public let columns: [Int32]
    public let weights: [Int64]

    /// Rows from their compressed form; throws unless the offsets rise from 0 to the term count.
    public init(rowStart: [Int], columns: [Int32], weights: [Int64]) throws(RlweError) {
        guard let first = rowStart.first, first == 0, rowStart.last == columns.count, columns.count == weights.count,
              zip(rowStart, rowStart.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw .invalidParameters("sparse rows: offsets must rise from 0 to the number of terms")
        }
        var starts = [0], positiveEnd: [Int] = [], sortedColumns: [Int32] = [], sortedWeights: [Int64] = []
        for o in 0..<(rowStart.count - 1) {
            let terms = rowStart[o]..<rowStart[o + 1]
            for t in terms where weights[t] > 0 { sortedColumns.append(columns[t]); sortedWeights.append(weights[t]) }
            positiveEnd.append(sortedWeights.count)
            for t in terms where weights[t] < 0 { sortedColumns.append(columns[t]); sortedWeights.append(weights[t]) }
            starts.append(sortedWeights.count)
        }
        self.rowStart = starts
        self.positiveEnd = positiveEnd
        self.columns = sortedColumns
        self.weights = sortedWeights
    }

    public var rowCount: Int { rowStart.count - 1 }
}

/// Σ_j w_j · ct_j for many rows of integer weights at once: the multiply-accumulates of a
/// convolution or a dense layer when every slot holds another image (a weight is the same in
/// every slot, so it is a scalar, not a plaintext polynomial).
///
/// Every output reads the same inputs, so the inputs are first gathered into blocks of 64
/// coefficients (all inputs' block b of limb i together, a few hundred KB), and each block is
/// read from cache by every row: reading each input once per row from memory would move
/// hundreds of GB for a CryptoNets layer. Each residue is multiplied by |w| as one full 64×64-bit
/// product; the positive and the negative terms are summed apart in 128 bits and subtracted
/// in one reduction: one multiply and an add-with-carry per term and word. The sums cannot wrap
/// while every row's Σ|w|·q < 2^128 (``accumulatesLazily(prime:rows:)``, decided prime
/// by prime: any 7-bit weights with any prime below 2^62); otherwise the weights are reduced
/// mod q and multiplied with Shoup's method.
extension Evaluator {
    /// Whether every row's Σ_t |w_t|·q_i stays below 2^128, so that its 128-bit sums (of the
    /// positive terms, plus q_i times the negative weights) cannot wrap.
    public func accumulatesLazily(prime i: Int, rows: SparseIntegerRows) -> Bool {
        let q = UInt128(context.ciphertextTables[i].modulus.value)
        for o in 0..<rows.rowCount {
            var total: UInt128 = 0
            for t in rows.rowStart[o]..<rows.rowStart[o + 1] {
                let (term, overflow) = UInt128(rows.weights[t].magnitude).multipliedReportingOverflow(by: q)
                let (sum, carry) = total.addingReportingOverflow(term)
                guard !overflow, !carry else { return false }
                total = sum
            }
        }
        return true
    }

    /// Σ_j weights[j] · cts[j].
    public func linearCombination(_ cts: [Ciphertext], weights: [Int64]) throws(RlweError) -> Ciphertext {
        guard cts.count == weights.count else {
            throw .invalidParameters("a linear combination needs as many weights as ciphertexts")
        }
        let rows = try SparseIntegerRows(rowStart: [0, cts.count], columns: (0..<cts.count).map { Int32($0) }, weights: weights)
        return try linearCombinations(cts, rows: rows)[0]
    }

    /// One ciphertext per row: Σ_t weights[t] · cts[columns[t]]. All inputs share the context,
    /// level and size; the outputs have them (and, for CKKS, their scale). An empty row gives
    /// an encryption of zero.
    public func linearCombinations(_ cts: [Ciphertext], rows: SparseIntegerRows) throws(RlweError) -> [Ciphertext] {
        guard let first = cts.first else { throw .invalidParameters("a linear combination needs at least one ciphertext") }
        for ct in cts {
            guard ct.context === context else { throw .contextMismatch }
            guard ct.level == first.level else { throw .levelMismatch(first.level, ct.level) }
            guard ct.size == first.size else { throw .invalidParameters("ciphertexts of different sizes in one linear combination") }
        }
        guard rows.columns.allSatisfy({ $0 >= 0 && Int($0) < cts.count }) else {
            throw .invalidParameters("a row reads a ciphertext beyond the \(cts.count) given")
        }
        let n = context.polynomialSize, level = first.level, size = first.size, inputs = cts.count
        let block = Swift.min(64, n), blocksPerLimb = n / block, slices = size * level
        let lazy = (0..<level).map { accumulatesLazily(prime: $0, rows: rows) }
        // Every row's Σ|w| below 2^32: the 32-bit halves of the residues take vector products.
        let narrow = (0..<rows.rowCount).allSatisfy { o in
            var total: UInt64 = 0
            for w in rows.weights[rows.rowStart[o]..<rows.rowStart[o + 1]] {
                total &+= Swift.min(w.magnitude, 1 << 32)
                if total >= 1 << 32 { return false }
            }
            return true
        }
        let moduli = (0..<level).map { context.ciphertextTables[$0].modulus }

        // Gather: packed[((slice·blocksPerLimb + b)·inputs + j)·block + k], slice = component·level + limb.
        // (Both buffers are written in full, so neither is zero-filled first.)
        let packed = [UInt64](unsafeUninitializedCapacity: slices * n * inputs) { buffer, initialized in
            initialized = slices * n * inputs
            let destination = UnsafeMutableSendablePointer(buffer.baseAddress!)
            ParallelWork.forEach(inputs) { j in
                for c in 0..<size {
                    cts[j].components[c].words.withUnsafeBufferPointer { words in
                        for limb in 0..<level {
                            let slice = c * level + limb
                            for b in 0..<blocksPerLimb {
                                (destination.pointer + ((slice * blocksPerLimb + b) * inputs + j) * block)
                                    .update(from: words.baseAddress! + limb * n + b * block, count: block)
                            }
                        }
                    }
                }
            }
        }
        // Reduced weights and their Shoup constants, for the primes that cannot take them lazily.
        let reduced = zip(moduli, lazy).map { m, isLazy in isLazy ? [] : rows.weights.map { m.reduce(signed: $0) } }
        let reducedShoup = zip(moduli, reduced).map { m, ws in ws.map { m.shoup($0) } }

        let offsets = rows.columns.map { Int($0) * block }, magnitudes = rows.weights.map(\.magnitude)
        // out[(o·size + c)·level·n + limb·n + coefficient]
        let perOutput = slices * n
        let out = [UInt64](unsafeUninitializedCapacity: rows.rowCount * perOutput) { outBuffer, initialized in
            initialized = rows.rowCount * perOutput
            packed.withUnsafeBufferPointer { packedBuffer in
                let source = UnsafeSendablePointer(packedBuffer.baseAddress!)
                let destination = UnsafeMutableSendablePointer(outBuffer.baseAddress!)
                ParallelWork.forEach(slices * blocksPerLimb) { task in
                    let slice = task / blocksPerLimb, b = task % blocksPerLimb, limb = slice % level
                    let m = moduli[limb]
                    let x = source.pointer + task * inputs * block
                    let outOffset = slice * n + b * block
                    for o in 0..<rows.rowCount {
                        let target = destination.pointer + o * perOutput + outOffset
                        if lazy[limb] && narrow && block % 8 == 0 {
                            Self.accumulateNarrowRow(positive: rows.rowStart[o]..<rows.positiveEnd[o],
                                                     negative: rows.positiveEnd[o]..<rows.rowStart[o + 1],
                                                     x: x, into: target, block: block, offsets: offsets, magnitudes: magnitudes, modulus: m)
                        } else if lazy[limb] {
                            Self.accumulateRow(positive: rows.rowStart[o]..<rows.positiveEnd[o],
                                               negative: rows.positiveEnd[o]..<rows.rowStart[o + 1],
                                               x: x, into: target, block: block, offsets: offsets, magnitudes: magnitudes, modulus: m)
                        } else {
                            for k in 0..<block { target[k] = 0 }
                            for t in rows.rowStart[o]..<rows.rowStart[o + 1] {
                                let w = reduced[limb][t], shoup = reducedShoup[limb][t]
                                let row = x + offsets[t]
                                for k in 0..<block { target[k] = m.add(target[k], m.multiply(row[k], by: w, shoup: shoup)) }
                            }
                        }
                    }
                }
            }
        }
        // Copied out on all cores: a CryptoNets convolution's outputs are hundreds of MB.
        return ParallelWork.map(rows.rowCount) { o in
            let components = (0..<size).map { c in
                let start = o * perOutput + c * level * n
                return RnsPolynomial(degree: n, words: Array(out[start..<(start + level * n)]))
            }
            return Ciphertext(context: context, components: components, scale: first.scale)
        }
    }

    /// ``accumulateRow`` for rows whose Σ|w| < 2^32, eight words at a time in vector lanes: each
    /// residue x = x_hi·2^32 + x_lo is multiplied by |w| as two 32 × 32-bit lane products (both
    /// halves below 2^32, so one `pmuludq` each), and the sums of the halves, each below
    /// Σ|w|·2^32 < 2^64, stay in 64-bit lanes; P = Σ_lo + 2^32·Σ_hi is joined in 128 bits.
    @inline(__always)
    private static func accumulateNarrowRow(positive: Range<Int>, negative: Range<Int>, x: UnsafePointer<UInt64>,
                                            into target: UnsafeMutablePointer<UInt64>, block: Int,
                                            offsets: [Int], magnitudes: [UInt64], modulus m: Modulus) {
        typealias Lanes = SIMD4<UInt64>
        offsets.withUnsafeBufferPointer { offsets in
            magnitudes.withUnsafeBufferPointer { magnitudes in
                let low32 = Lanes(repeating: 0xFFFF_FFFF)
                @inline(__always)
                func sum(_ terms: Range<Int>, at k: Int) -> (Lanes, Lanes, Lanes, Lanes) {
                    var low0 = Lanes(), high0 = Lanes(), low1 = Lanes(), high1 = Lanes()
                    for t in terms {
                        // The mask is a no-op (|w| < 2^32) that lets the compiler use 32-bit lane products.
                        let w = Lanes(repeating: magnitudes[t]) & low32
                        let row = UnsafeRawPointer(x + offsets[t] + k)
                        let a = row.loadUnaligned(as: Lanes.self), b = row.loadUnaligned(fromByteOffset: 32, as: Lanes.self)
                        low0 &+= (a & low32) &* w
                        high0 &+= (a &>> 32) &* w
                        low1 &+= (b & low32) &* w
                        high1 &+= (b &>> 32) &* w
                    }
                    return (low0, high0, low1, high1)
                }
                @inline(__always)
                func joined(_ low: UInt64, _ high: UInt64) -> UInt128 { UInt128(low) &+ UInt128(high) << 32 }
                let offset = negativeOffset(negative, magnitudes, m)
                var k = 0
                while k < block {
                    let p = sum(positive, at: k), q = sum(negative, at: k)
                    for j in 0..<4 {
                        target[k + j] = difference(joined(p.0[j], p.1[j]), joined(q.0[j], q.1[j]), offset: offset, m)
                        target[k + 4 + j] = difference(joined(p.2[j], p.3[j]), joined(q.2[j], q.3[j]), offset: offset, m)
                    }
                    k += 8
                }
            }
        }
    }

    /// One row over one block: Σ |w|·x over the positive terms (P) and over the negative ones
    /// (N), four words at a time in 128-bit register accumulators, then one reduction of
    /// P + q·W − N ≡ P − N, W the row's Σ|w| over its negative terms (so q·W ≥ N, and the
    /// lazy condition Σ|w|·q < 2^128 keeps the sum in 128 bits).
    @inline(__always)
    private static func accumulateRow(positive: Range<Int>, negative: Range<Int>, x: UnsafePointer<UInt64>,
                                      into target: UnsafeMutablePointer<UInt64>, block: Int,
                                      offsets: [Int], magnitudes: [UInt64], modulus m: Modulus) {
        offsets.withUnsafeBufferPointer { offsets in
            magnitudes.withUnsafeBufferPointer { magnitudes in
                @inline(__always)
                func sum(_ terms: Range<Int>, at k: Int) -> (UInt128, UInt128, UInt128, UInt128) {
                    var a0: UInt128 = 0, a1: UInt128 = 0, a2: UInt128 = 0, a3: UInt128 = 0
                    for t in terms {
                        // A full-width scalar product: the compiler would otherwise emulate 64-bit vector multiplies.
                        let w = magnitudes[t], row = x + offsets[t] + k
                        a0 &+= UInt128(w) &* UInt128(row[0])
                        a1 &+= UInt128(w) &* UInt128(row[1])
                        a2 &+= UInt128(w) &* UInt128(row[2])
                        a3 &+= UInt128(w) &* UInt128(row[3])
                    }
                    return (a0, a1, a2, a3)
                }
                let offset = negativeOffset(negative, magnitudes, m)
                var k = 0
                while k < block {
                    let p = sum(positive, at: k), q = sum(negative, at: k)
                    target[k] = difference(p.0, q.0, offset: offset, m)
                    target[k + 1] = difference(p.1, q.1, offset: offset, m)
                    target[k + 2] = difference(p.2, q.2, offset: offset, m)
                    target[k + 3] = difference(p.3, q.3, offset: offset, m)
                    k += 4
                }
            }
        }
    }

    /// q·W, W the sum of |w| over a row's negative terms: added to P so that P + q·W − N is
    /// never negative.
    @inline(__always)
    private static func negativeOffset(_ negative: Range<Int>, _ magnitudes: UnsafeBufferPointer<UInt64>, _ m: Modulus) -> UInt128 {
        var weight: UInt128 = 0
        for t in negative { weight &+= UInt128(magnitudes[t]) }
        return weight &* UInt128(m.value)
    }

    /// (P + q·W − N) mod q ≡ P − N, in one reduction.
    @inline(__always)
    private static func difference(_ p: UInt128, _ n: UInt128, offset: UInt128, _ m: Modulus) -> UInt64 {
        let total = p &+ offset &- n
        return m.reduce(high: UInt64(truncatingIfNeeded: total >> 64), low: UInt64(truncatingIfNeeded: total))
    }
}
