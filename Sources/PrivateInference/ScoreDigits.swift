import Foundation
import TFHE

/// The dense layer computed on the server into each score's base-B digits, so that the client
/// decrypts the scores and nothing else: no partial sums, which would hand it pieces of the
/// model's dot products.
///
/// One score cannot travel as one ciphertext: a sum of a few thousand bootstrapped features has
/// far more noise than a 12-bit message leaves room for. So the score is built in radix B = √P
/// (P the set's plaintext modulus: B = 4 on the 4-bit sets), as tfhe-rs builds its integers from
/// 2-bit message + 2-bit carry blocks:
/// - features f ∈ [−m, m] (±1 signs, or sums of m of them) of a score k are cut into groups g
///   with x_g = Σ_{j∈g} (w_kj·f_j + |w_kj|·m)/2 ∈ [0, P − 1], an integer, encoded at Δ = 2^63/P
///   (the features come at Δ/2, so x_g is a free linear sum plus a constant); a weight too large
///   for the group's noise or range is split into parts of one sign over several groups;
/// - a *merge* bootstraps one such value x twice, through x mod B (the digit, kept at this
///   position) and ⌊x/B⌋ (the carry, one position up; skipped when x < B for sure);
/// - every output is a fresh bootstrap output, a clean block; up to (P − 1)/(B − 1) blocks at
///   one position add to a new x and merge again, round after round, until every position of
///   every score holds one block: a digit d_p of S_k = Σ_g x_g.
///
/// Then score_k = 2·Σ_p d_p·B^p − m·Σ_j |w_kj| + b_k, which the client computes. Each merge's
/// input noise (its inputs' 2-norm after key switch and modulus switch) and each digit's decoding
/// fail with probability at most 2^-128, the criterion parameter sets are published with; the
/// modulus switch alone gives int4-128 2^-131.8 per bootstrap, so a few thousand bootstraps put
/// the whole answer's union bound above 2^-128 (reported in ``failureLog2``).
public struct ScoreDigits: Sendable {
    /// One bootstrapped sum: its digit and, when it can reach B, its carry.
    public struct Merge: Sendable, Hashable {
        /// What is summed.
        public enum Input: Sendable, Hashable {
            /// Score `score`'s group of feature terms: Σ (w·f + |w|·m)/2. A feature whose weight
            /// is too large for one group is split over several, with parts of the same sign.
            case features(score: Int, terms: [Term])
            /// Blocks written by earlier rounds.
            case blocks([Int])
        }

        /// Feature `feature` with weight `weight` (the whole of its dense weight, or a part).
        public struct Term: Sendable, Hashable {
            public let feature: Int
            public let weight: Int
        }

        public let input: Input
        /// The block that x mod B is written to.
        public let digit: Int
        /// The block that ⌊x/B⌋ is written to, when x can reach B.
        public let carry: Int?
    }

    /// Dense weights, score by score.
    public let weights: [Int]
    public let bias: [Int]
    /// Features lie in [−m, m].
    public let featureMagnitude: Int
    /// The radix B = √P.
    public let base: Int
    /// The blocks' scale Δ = 2^63/P; the features come at Δ/2.
    public let delta: UInt64
    /// The merges, round by round; a round's merges read only earlier rounds' blocks.
    public let rounds: [[Merge]]
    /// Blocks written in all.
    public let blockCount: Int
    /// Per score, the block that holds each digit, lowest first.
    public let digits: [[Int]]
    /// Bootstraps per inference (a merge is one, two with a carry).
    public let bootstraps: Int
    /// log2 of the probability that a merge or a decoded digit goes wrong (union bound).
    public let failureLog2: Double
    /// log2 of the largest probability that one merge or one digit's decoding goes wrong.
    public let worstFailureLog2: Double
    /// Bits per word of the packed answer (``PackedLweList``).
    public let transportBits: Int

    public var scoreCount: Int { bias.count }
    /// The features' scale.
    public var featureDelta: UInt64 { delta / 2 }
    /// Ciphertexts returned: every digit of every score.
    public var outputCount: Int { digits.reduce(0) { $0 + $1.count } }

    /// Score k from its decrypted digits (lowest first).
    public func score(_ k: Int, digits values: [Int]) -> Int {
        let features = weights.count / scoreCount
        let sum = values.reversed().reduce(0) { $0 * base + $1 }
        let reach = weights[(k * features)..<((k + 1) * features)].reduce(0) { $0 + abs($1) } * featureMagnitude
        return 2 * sum - reach + bias[k]
    }

    /// Plans the digits of `weights`·f + `bias` for features in [−m, m] whose noise is
    /// `featureNorm²` bootstrap outputs' each (m summed signs, times the multi-value factor).
    /// Groups start as large as the set's noise budget allows and shrink until the whole
    /// computation decodes below the plan's failure target.
    init(weights rows: [[Int]], bias: [Int], featureMagnitude m: Int, featureNormSquared: Double,
         noise: NoiseModel) throws(InferenceError) {
        let parameters = noise.parameters, p = parameters.plaintextModulus
        let bits = p.trailingZeroBitCount
        guard bits % 2 == 0, bits >= 2 else {
            throw .unsupportedModel("score digits need a plaintext modulus that is an even power of 2 (\(parameters.name) has \(p))")
        }
        let base = 1 << (bits / 2), capacity = p - 1
        guard m <= capacity else {
            throw .unsupportedModel("score digits on \(parameters.name) hold values up to \(capacity); features reach \(m)")
        }
        // Each unit of weight costs a share of a bootstrap: hostile weights must be an error, not
        // millions of groups (real networks reach 2^14: fast-mnist's ten scores together 16,518).
        let reach = rows.reduce(0.0) { total, row in total + row.reduce(0.0) { $0 + Double($1.magnitude) } } * Double(m)
        guard reach <= 0x1p20 else {
            throw .unsupportedModel("the dense weights reach \(reach) over all scores, beyond the 2^20 that score digits sum "
                + "(one merge per \(capacity))")
        }
        let margin = 1 / Double(4 * p)
        // The client decodes each digit: one bootstrap output, the packing key switch, the transport rounding.
        func digitFailureLog2(bits: Int) -> Double {
            let sigma = (noise.bootstrapOutputVariance + noise.packingKeySwitchVariance
                + PackedLweList.transportRoundingVariance(parameters, bits: bits)).squareRoot()
            return NoiseModel.log2Erfc(margin / (sigma * 2.0.squareRoot()))
        }
        guard let transport = (4...24).first(where: { digitFailureLog2(bits: $0) <= InferencePlan.failureTargetLog2 }) else {
            throw .unsupportedModel("score digits do not decode on \(parameters.name)")
        }
        let budget = Double(parameters.maxNoiseNorm * parameters.maxNoiseNorm)
        // A group holds at least one unit of weight, so a limit below one feature's noise holds none.
        for limit in stride(from: budget, through: max(1, featureNormSquared), by: -1) {
            let schedule = Schedule(rows: rows, m: m, base: base, capacity: capacity, featureNormSquared: featureNormSquared,
                                    groupNormSquared: limit)
            let bootstrapFailures = schedule.inputNormsSquared.map { noise.failureLog2(inputNorm: $0.squareRoot(), margin: margin) }
            let digitCount = schedule.digits.reduce(0) { $0 + $1.count }
            let worst = max(bootstrapFailures.max() ?? -.infinity, digitFailureLog2(bits: transport))
            guard worst <= InferencePlan.failureTargetLog2 else { continue }
            weights = rows.flatMap { $0 }
            self.bias = bias
            featureMagnitude = m
            self.base = base
            delta = parameters.delta
            rounds = schedule.rounds
            blockCount = schedule.blockCount
            digits = schedule.digits
            bootstraps = schedule.inputNormsSquared.count
            failureLog2 = log2(bootstrapFailures.reduce(0.0) { $0 + exp2($1) } + Double(digitCount) * exp2(digitFailureLog2(bits: transport)))
            worstFailureLog2 = worst
            transportBits = transport
            return
        }
        throw .unsupportedModel("the dense layer's features are too noisy to be summed into exact score digits on \(parameters.name)")
    }

    /// The merge program for one group-noise limit: groups, then rounds of merges until each
    /// position holds one block.
    struct Schedule {
        var rounds: [[Merge]] = []
        var blockCount = 0
        var digits: [[Int]] = []
        /// The input 2-norm² of every bootstrap, in bootstrap-output variances.
        var inputNormsSquared: [Double] = []

        init(rows: [[Int]], m: Int, base: Int, capacity: Int, featureNormSquared: Double, groupNormSquared: Double) {
            var bound: [Int] = []  // the largest value each block can hold
            // pending[k][p]: score k's blocks at position p, not yet merged.
            var pending = [[[Int]]](repeating: [], count: rows.count)
            func write(_ value: Int, score k: Int, position: Int) -> Int {
                bound.append(value)
                while pending[k].count <= position { pending[k].append([]) }
                pending[k][position].append(bound.count - 1)
                return bound.count - 1
            }
            // One merge of a value in [0, reach] at `position`: its digit, and its carry if it can reach B.
            func merge(_ input: Merge.Input, reach: Int, normSquared: Double, score k: Int, position: Int) -> Merge {
                let digit = write(min(reach, base - 1), score: k, position: position)
                inputNormsSquared.append(normSquared)
                guard reach >= base else { return Merge(input: input, digit: digit, carry: nil) }
                inputNormsSquared.append(normSquared)
                return Merge(input: input, digit: digit, carry: write(reach / base, score: k, position: position + 1))
            }
            var first: [Merge] = []
            for (k, row) in rows.enumerated() {
                var terms: [Merge.Term] = [], reach = 0, normSquared = 0.0
                func close() {
                    if reach > 0 { first.append(merge(.features(score: k, terms: terms), reach: reach, normSquared: normSquared, score: k, position: 0)) }
                    (terms, reach, normSquared) = ([], 0, 0)
                }
                for (j, w) in row.enumerated() where w != 0 {
                    var left = abs(w)
                    while left > 0 {
                        // The largest part that keeps the group within P − 1 and the noise limit;
                        // a fresh group takes at least one unit (its noise is charged as it is).
                        let byNoise = Int((max(0, groupNormSquared - normSquared) / featureNormSquared).squareRoot() + 1e-9)
                        var part = min(left, (capacity - reach) / m, byNoise)
                        if part == 0 {
                            guard terms.isEmpty else { close(); continue }
                            part = 1
                        }
                        terms.append(Merge.Term(feature: j, weight: w > 0 ? part : -part))
                        reach += part * m
                        normSquared += Double(part * part) * featureNormSquared
                        left -= part
                        // A feature's parts share its noise (their variances would add as (Σ part)²):
                        // the rest of it goes to the next group, so a group holds a feature once.
                        if left > 0 { close() }
                    }
                }
                close()
            }
            rounds.append(first)
            while true {
                var round: [Merge] = []
                let waiting = pending
                pending = pending.map { $0.map { _ in [] } }
                for (k, positions) in waiting.enumerated() {
                    for (position, blocks) in positions.enumerated() {
                        guard blocks.count > 1 else {
                            pending[k][position] += blocks
                            continue
                        }
                        var queue = blocks[...]
                        while !queue.isEmpty {
                            var taken: [Int] = [], reach = 0
                            while let next = queue.first, reach + bound[next] <= capacity {
                                taken.append(next)
                                reach += bound[next]
                                queue.removeFirst()
                            }
                            if taken.count == 1 {
                                pending[k][position] += taken
                            } else {
                                // Fresh bootstrap outputs: independent, one variance each.
                                round.append(merge(.blocks(taken), reach: reach, normSquared: Double(taken.count), score: k, position: position))
                            }
                        }
                    }
                }
                if round.isEmpty { break }
                rounds.append(round)
            }
            blockCount = bound.count
            digits = pending.map { $0.map { $0[0] } }
        }
    }
}
