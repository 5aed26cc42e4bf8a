import NeuralNet

/// Latency mode's layouts (LoLa's representations, Brutzkus et al. 2019): one image fills the
/// slots. A vector of n values sits in every row replicated with period P (a power of two ≥ n
/// that divides the row of N/2 slots), so a rotation by k is a cyclic rotation by k of every
/// copy, and the result of one layer is already in the layout the next one reads.
///
/// - The first layer, a convolution, arrives from the client as kernel offsets κ (input channel,
///   row, column) in blocks of P slots: slot o of κ's block holds the input that output o
///   multiplies with its weight at κ (the client lays out its own pixels; no weights). B blocks
///   (a power of two, B·P ≤ N/2) share a ciphertext, ct_j holding offsets jB … jB + B − 1, so
///   the client sends ⌈K/B⌉ ciphertexts, not K. The convolution is Σ_j ct_j ⊙ W′_j, W′_j holding
///   each block's weights, then log2 B rotate-and-add steps (by BP/2, …, P) sum the blocks,
///   leaving the outputs replicated with period P. Where a row holds one block, the offsets'
///   patches go once instead, shared by the channels (``SharedPatchConvolution``).
/// - A dense layer (m × n) on a vector of period P is Halevi and Shoup's diagonal method with
///   Juvekar et al.'s hybrid for m ≤ P: with m' = 2^⌈log2 m⌉ and d_i[s] = M[s mod m'][(s + i) mod P],
///   z = Σ_(i<m') d_i ⊙ rot(v, i) holds M's rows in blocks of m', and log2(P/m') rotate-and-add
///   steps sum the blocks, leaving y replicated with period m'. The m' rotations are split in
///   baby steps (hoisted, one decomposition) and giant steps, with each d_i rotated in the clear.
public struct PackedConvolution: Sendable {
    /// P: the output vector's period.
    public let period: Int
    /// Kernel offsets K.
    public let offsetCount: Int
    /// B: offsets per client ciphertext (1 until ``laidOut(polynomialSize:)`` knows the ring).
    public private(set) var blocks = 1
    /// [κ][slot mod P]: the weight output (slot) applies at offset κ (0 where none).
    public let weights: [[Int64]]
    /// [slot mod P]: each output's bias (0 beyond the outputs).
    public let bias: [Int128]
    /// [κ][slot mod P]: the input value the client puts there, or −1 for zero.
    public let inputIndex: [[Int32]]

    init(_ layer: PolynomialIntegerNetwork.Linear, period: Int) {
        self.period = period
        offsetCount = layer.kernelOffsetCount
        var weights = [[Int64]](repeating: [Int64](repeating: 0, count: period), count: offsetCount)
        var inputIndex = [[Int32]](repeating: [Int32](repeating: -1, count: period), count: offsetCount)
        for o in 0..<layer.outputCount {
            for t in layer.rowStart[o]..<layer.rowStart[o + 1] {
                let kappa = Int(layer.kernelOffsets[t])
                weights[kappa][o] = layer.weights[t]
                inputIndex[kappa][o] = layer.inputs[t]
            }
        }
        self.weights = weights
        self.inputIndex = inputIndex
        bias = (0..<period).map { $0 < layer.outputCount ? layer.bias[$0] : 0 }
    }

    /// The layout on a ring of `polynomialSize` slots: as many offsets per ciphertext as a row
    /// of N/2 slots holds (a power of two, at most the next one above K).
    func laidOut(polynomialSize: Int) -> PackedConvolution {
        var copy = self
        copy.blocks = max(1, min(powerOfTwo(atLeast: offsetCount), polynomialSize / 2 / period))
        return copy
    }

    /// ⌈K/B⌉: the ciphertexts the client sends.
    public var ciphertextCount: Int { (offsetCount + blocks - 1) / blocks }

    /// The rotate-and-add steps that sum the blocks: BP/2, …, P.
    var folds: [Int] {
        var steps: [Int] = [], fold = blocks * period / 2
        while fold >= period {
            steps.append(fold)
            fold /= 2
        }
        return steps
    }

    /// The offset whose block slot s (of N) lies in, in client ciphertext j; nil past the last.
    func offset(ciphertext j: Int, slot s: Int, polynomialSize n: Int) -> Int? {
        let kappa = j * blocks + (s % (n / 2)) / period % blocks
        return kappa < offsetCount ? kappa : nil
    }
}

/// A dense layer by generalized diagonals (see ``PackedConvolution`` for the layout).
public struct MatrixVector: Sendable {
    /// P: the input's period (≥ the input count and ≥ m').
    public let inputPeriod: Int
    /// m': the output's period, 2^⌈log2 rows⌉.
    public let outputPeriod: Int
    /// Baby steps per giant step.
    public let babyStep: Int
    /// The nonzero diagonals i < m', each already rotated by −⌊i/b⌋·b, P values.
    public let diagonals: [Int: [Int64]]
    /// [slot mod m']: each output's bias.
    public let bias: [Int128]

    /// `inputSlot` places input i at another slot of the period (after a
    /// ``SharedPatchConvolution``, whose outputs sit in blocks of Q').
    init(_ layer: PolynomialIntegerNetwork.Linear, inputPeriod: Int, outputPeriod: Int, inputSlot: (Int) -> Int = { $0 }) {
        self.inputPeriod = inputPeriod
        self.outputPeriod = outputPeriod
        var b = 1
        while b * b < outputPeriod { b *= 2 }
        babyStep = b
        var matrix = [[Int64]](repeating: [Int64](repeating: 0, count: inputPeriod), count: outputPeriod)
        for o in 0..<layer.outputCount {
            for t in layer.rowStart[o]..<layer.rowStart[o + 1] { matrix[o][inputSlot(Int(layer.inputs[t]))] = layer.weights[t] }
        }
        var diagonals: [Int: [Int64]] = [:]
        for i in 0..<outputPeriod {
            let diagonal = (0..<inputPeriod).map { s in matrix[s % outputPeriod][(s + i) % inputPeriod] }
            guard diagonal.contains(where: { $0 != 0 }) else { continue }
            let shift = (i / b) * b
            diagonals[i] = (0..<inputPeriod).map { s in diagonal[(s - shift + inputPeriod) % inputPeriod] }
        }
        self.diagonals = diagonals
        bias = (0..<outputPeriod).map { $0 < layer.outputCount ? layer.bias[$0] : 0 }
    }

    /// Giant steps: ⌈m'/b⌉.
    var giantSteps: Int { (outputPeriod + babyStep - 1) / babyStep }

    /// The block sums' rotations: P/2, P/4, …, m'.
    var folds: [Int] {
        var steps: [Int] = [], fold = inputPeriod / 2
        while fold >= outputPeriod {
            steps.append(fold)
            fold /= 2
        }
        return steps
    }

    /// log2(P/m') rotate-and-add steps.
    var foldCount: Int { folds.count }

    /// The rotation steps this layer uses: baby steps, giant steps, and the block sums.
    var rotationSteps: [Int] { Array(1..<babyStep) + (1..<giantSteps).map { $0 * babyStep } + folds }

    /// Rotations one evaluation performs (baby steps share one decomposition).
    var rotationCount: Int { rotationSteps.count }
}

/// The smallest power of two ≥ n.
func powerOfTwo(atLeast n: Int) -> Int {
    var p = 1
    while p < n { p *= 2 }
    return p
}

/// The first convolution with each kernel offset's patch sent once, shared by every output
/// channel: for where a row holds a single ``PackedConvolution`` block (its outputs fill the
/// row), which would cost the client one ciphertext per offset.
///
/// A convolution's output (c, q), channel c at position q < Q, reads at offset κ an input that
/// depends on κ and q only. Offset κ's block is those Q inputs in Q' = 2^⌈log2 Q⌉ slots; a row of
/// N/2 slots holds R = (N/2)/Q' blocks, client ciphertext j offsets jR … jR + R − 1, ⌈K/R⌉
/// ciphertexts in all. Output block c (of the R in a row) holds channel c mod C', C' = 2^⌈log2 C⌉,
/// so the outputs repeat with period C'·Q' (zeros for c mod C' ≥ C). Block c needs input block
/// (c + δ) mod R times w[c mod C′][κ], which a rotation by δ·Q' brings to it:
///
///     y = Σ_j Σ_(δ<R) D_(j,δ) ⊙ rot(ct_j, δ·Q'),  D_(j,δ)[block c, q] = w[c mod C'][jR + (c + δ) mod R]
///
/// by baby steps h·Q' (h < b, hoisted on each ct_j) and giant steps g·b·Q' (δ = g·b + h), each
/// D_(j,δ) rotated by −g·b·Q' in the clear: J·(b − 1) + R/b − 1 rotations for J·R products, where
/// ``PackedConvolution`` with one block a ciphertext needs K ciphertexts and no rotation.
public struct SharedPatchConvolution: Sendable {
    /// Q: output positions per channel.
    public let positions: Int
    /// Q': a block's slots, 2^⌈log2 Q⌉.
    public let positionPeriod: Int
    /// C: output channels.
    public let channels: Int
    /// C': 2^⌈log2 C⌉; the outputs repeat with period C'·Q'.
    public let channelPeriod: Int
    /// K: kernel offsets.
    public let offsetCount: Int
    /// R: blocks in a row (1 until ``laidOut(polynomialSize:)`` knows the ring).
    public private(set) var blocksPerRow = 1
    /// b: baby steps (a power of two dividing R).
    public private(set) var babyStep = 1
    /// [c][κ]: channel c's weight at offset κ.
    let weights: [[Int64]]
    /// [κ][q]: the input the client puts at position q of offset κ's block, or −1 for zero.
    let patches: [[Int32]]
    /// [slot mod C'·Q']: each output's bias (0 where no output is).
    public let bias: [Int128]

    /// The output vector's period, C'·Q'.
    public var period: Int { channelPeriod * positionPeriod }

    /// The layer as C channels of Q positions sharing their patches, or nil when it is none: the
    /// smallest Q (a divisor of the outputs, C ≥ 2) for which output o reads, at every offset, the
    /// input that output o mod Q reads there, and with one weight per channel and offset.
    init?(_ layer: PolynomialIntegerNetwork.Linear) {
        let k = layer.kernelOffsetCount, n = layer.outputCount
        guard k > 0, n >= 2 else { return nil }
        // [κ][o]: the input output o reads at κ (−1: no term) and its weight (0: no term), as one
        // replicated block per offset lays them out.
        let replicated = PackedConvolution(layer, period: n)
        let read = replicated.inputIndex, weight = replicated.weights
        func shared(positions q: Int) -> (patches: [[Int32]], weights: [[Int64]])? {
            let c = n / q
            var patches = [[Int32]](repeating: [Int32](repeating: -1, count: q), count: k)
            var weights = [[Int64]](repeating: [Int64](repeating: 0, count: k), count: c)
            for kappa in 0..<k {
                for o in 0..<n where read[kappa][o] >= 0 {
                    if patches[kappa][o % q] < 0 { patches[kappa][o % q] = read[kappa][o] }
                    if weights[o / q][kappa] == 0 { weights[o / q][kappa] = weight[kappa][o] }
                }
                // Every output's term (or its absence: weight 0) must be its channel's weight on the patch.
                for o in 0..<n {
                    let patch = patches[kappa][o % q]
                    guard read[kappa][o] == patch || read[kappa][o] < 0 else { return nil }
                    let expected = patch < 0 ? 0 : weights[o / q][kappa]
                    guard weight[kappa][o] == expected || (patch < 0 && read[kappa][o] < 0) else { return nil }
                }
            }
            return (patches, weights)
        }
        var found: (positions: Int, patches: [[Int32]], weights: [[Int64]])?
        for q in 1...(n / 2) where n % q == 0 {
            if let layout = shared(positions: q) {
                found = (q, layout.patches, layout.weights)
                break
            }
        }
        guard let found else { return nil }
        let q = found.positions, qPeriod = powerOfTwo(atLeast: q), count = n / q, cPeriod = powerOfTwo(atLeast: count)
        positions = q
        positionPeriod = qPeriod
        channels = count
        channelPeriod = cPeriod
        offsetCount = k
        patches = found.patches
        weights = found.weights
        bias = (0..<(cPeriod * qPeriod)).map { s in
            let (c, position) = (s / qPeriod, s % qPeriod)
            return c < count && position < q ? layer.bias[c * q + position] : 0
        }
    }

    /// The layout on a ring of `polynomialSize` slots: R blocks fill a row, and the baby step
    /// that needs the fewest rotations.
    func laidOut(polynomialSize n: Int) -> SharedPatchConvolution {
        var copy = self
        copy.blocksPerRow = max(1, n / 2 / positionPeriod)
        let ciphertexts = copy.ciphertextCount
        var best = 1
        var b = 1
        while b <= copy.blocksPerRow {
            if ciphertexts * (b - 1) + copy.blocksPerRow / b < ciphertexts * (best - 1) + copy.blocksPerRow / best { best = b }
            b *= 2
        }
        copy.babyStep = best
        return copy
    }

    /// J = ⌈K/R⌉: the ciphertexts the client sends.
    public var ciphertextCount: Int { (offsetCount + blocksPerRow - 1) / blocksPerRow }
    /// R/b giant steps.
    var giantSteps: Int { blocksPerRow / babyStep }
    /// The rotation steps: baby steps h·Q' and giant steps g·b·Q'.
    var rotationSteps: [Int] { (1..<babyStep).map { $0 * positionPeriod } + (1..<giantSteps).map { $0 * babyStep * positionPeriod } }
    /// Rotations one evaluation performs: each ciphertext's baby steps (hoisted), the giant steps.
    var rotationCount: Int { ciphertextCount * (babyStep - 1) + giantSteps - 1 }

    /// The products one evaluation makes: the D_(j,δ) that are not all zero.
    var diagonalCount: Int {
        (0..<ciphertextCount).reduce(0) { count, j in
            count + (0..<blocksPerRow).filter { delta in (0..<blocksPerRow).contains { weight(ciphertext: j, delta, block: $0) != 0 } }.count
        }
    }

    /// D_(j,δ) in output block c: w[c mod C'][jR + (c + δ) mod R], 0 where no channel or offset is.
    func weight(ciphertext j: Int, _ delta: Int, block c: Int) -> Int64 {
        let kappa = j * blocksPerRow + (c + delta) % blocksPerRow
        return c % channelPeriod < channels && kappa < offsetCount ? weights[c % channelPeriod][kappa] : 0
    }

    /// max over channels of Σ_κ |w[c][κ]|: what a slot's input error can grow by (padding's too).
    var largestFilterSum: Double {
        weights.map { $0.reduce(0.0) { $0 + Double($1.magnitude) } }.max() ?? 0
    }

    /// Where output o (channel-major, c·Q + q) sits in the output vector: c·Q' + q.
    func outputSlot(_ o: Int) -> Int { (o / positions) * positionPeriod + o % positions }

    /// The input the client puts in slot s of a row of client ciphertext j, or nil for zero.
    func input(ciphertext j: Int, rowSlot s: Int) -> Int? {
        let kappa = j * blocksPerRow + s / positionPeriod, q = s % positionPeriod
        guard kappa < offsetCount, q < positions, patches[kappa][q] >= 0 else { return nil }
        return Int(patches[kappa][q])
    }

    /// D_(j,δ) over one row, rotated by −g·b·Q' for δ = g·b + h; nil when it is all zero.
    func diagonal(ciphertext j: Int, _ delta: Int) -> [Int64]? {
        let row = blocksPerRow * positionPeriod, shift = (delta / babyStep) * babyStep * positionPeriod
        var d = [Int64](repeating: 0, count: row)
        var any = false
        for s in 0..<row where s % positionPeriod < positions {
            let w = weight(ciphertext: j, delta, block: s / positionPeriod)
            guard w != 0 else { continue }
            d[(s + shift) % row] = w
            any = true
        }
        return any ? d : nil
    }
}
