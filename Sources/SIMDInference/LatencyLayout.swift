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
///   leaving the outputs replicated with period P.
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

    init(_ layer: PolynomialIntegerNetwork.Linear, inputPeriod: Int, outputPeriod: Int) {
        self.inputPeriod = inputPeriod
        self.outputPeriod = outputPeriod
        var b = 1
        while b * b < outputPeriod { b *= 2 }
        babyStep = b
        var matrix = [[Int64]](repeating: [Int64](repeating: 0, count: inputPeriod), count: outputPeriod)
        for o in 0..<layer.outputCount {
            for t in layer.rowStart[o]..<layer.rowStart[o + 1] { matrix[o][Int(layer.inputs[t])] = layer.weights[t] }
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
