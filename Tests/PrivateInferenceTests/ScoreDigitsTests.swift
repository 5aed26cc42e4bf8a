import Foundation
import NeuralNet
import Testing
import TFHE
@testable import PrivateInference

/// The server-side score digits (``ScoreDigits``): the merge program, run in the clear, gives
/// every score exactly and never asks a bootstrap for more than its message space; encrypted, the
/// client decrypts the scores and receives nothing but their digits.
struct ScoreDigitsTests {
    /// Runs a merge program on plaintext integers, as the evaluator runs it on ciphertexts:
    /// returns each score's digits, and records any merge whose sum exceeds P − 1.
    static func runInTheClear(_ program: ScoreDigits, features: [Int], plaintextModulus p: Int) -> [[Int]] {
        var blocks = [Int?](repeating: nil, count: program.blockCount)
        let m = program.featureMagnitude
        for round in program.rounds {
            let written = blocks
            for merge in round {
                let x: Int
                switch merge.input {
                case .features(_, let terms):
                    x = terms.reduce(0) { $0 + ($1.weight * features[$1.feature] + abs($1.weight) * m) / 2 }
                case .blocks(let inputs):
                    x = inputs.reduce(0) { $0 + written[$1]! }
                }
                #expect((0..<p).contains(x), "a merge sums \(x), outside [0, \(p - 1)]")
                blocks[merge.digit] = x % program.base
                if let carry = merge.carry { blocks[carry] = x / program.base } else { #expect(x < program.base, "an uncarried merge of \(x)") }
            }
        }
        return program.digits.map { $0.map { blocks[$0]! } }
    }

    @Test("random dense layers on every secure set's message space, features ±1 or sums of 2 or 4 signs, weights up to twice a block: the digits give w·f + b exactly, each below B, no merge above P − 1, split weights add up",
          arguments: [TFHEParameters.integer2Bit128, .integer4Bit128, .integer6Bit128])
    func clearProgramsAreExact(parameters: TFHEParameters) throws {
        var random = SystemRandomNumberGenerator()
        let noise = NoiseModel(parameters), p = parameters.plaintextModulus
        for trial in 0..<60 {
            let m = [1, 2, 4].filter { $0 < p }[trial % (p == 4 ? 2 : 3)], scores = Int.random(in: 1...4, using: &random)
            let features = Int.random(in: 1...300, using: &random), largest = 2 * (p - 1) / m
            let rows = (0..<scores).map { _ in (0..<features).map { _ in Int.random(in: -largest...largest, using: &random) } }
            let bias = (0..<scores).map { _ in Int.random(in: -1000...1000, using: &random) }
            // Noise from negligible to fast-mnist's (3 readings of one blind rotation: factor 2) and beyond.
            let featureNoise = [0.01, 1, 2, 5][trial % 4]
            let program = try ScoreDigits(weights: rows, bias: bias, featureMagnitude: m, featureNormSquared: featureNoise, noise: noise)
            // Features of the parity m gives (sums of m signs): random, and the two extremes of every score's range.
            let randomValues = (0..<features).map { _ in (0..<m).reduce(0) { sum, _ in sum + (Bool.random(using: &random) ? 1 : -1) } }
            let highest = (0..<features).map { j in rows[0][j] >= 0 ? m : -m }, lowest = highest.map { -$0 }
            for values in [randomValues, highest, lowest] {
                let digits = Self.runInTheClear(program, features: values, plaintextModulus: p)
                for k in 0..<scores {
                    #expect(digits[k].allSatisfy { (0..<program.base).contains($0) }, "digits \(digits[k])")
                    let expected = zip(rows[k], values).reduce(bias[k]) { $0 + $1.0 * $1.1 }
                    #expect(program.score(k, digits: digits[k]) == expected, "trial \(trial), score \(k)")
                }
            }
            // Each group holds a feature once, and its noise, recomputed here, fails below 2^-128.
            for case .features(_, let terms) in program.rounds[0].map(\.input) {
                #expect(Set(terms.map(\.feature)).count == terms.count, "a feature twice in one group")
                let normSquared = terms.reduce(0.0) { $0 + Double($1.weight * $1.weight) } * featureNoise
                #expect(noise.failureLog2(inputNorm: normSquared.squareRoot(), margin: 1 / Double(4 * p)) <= InferencePlan.failureTargetLog2)
            }
            let digits = Self.runInTheClear(program, features: randomValues, plaintextModulus: p)
            // The groups' terms add up to the weights: parts of a split weight keep its sign.
            for k in 0..<scores {
                var summed = [Int](repeating: 0, count: features)
                for case .features(let score, let terms) in program.rounds[0].map(\.input) where score == k {
                    for term in terms {
                        #expect(term.weight != 0 && term.weight.signum() == rows[k][term.feature].signum())
                        summed[term.feature] += term.weight
                    }
                }
                #expect(summed == rows[k], "trial \(trial), score \(k)")
            }
            #expect(digits.count == scores)
            #expect(program.worstFailureLog2 <= InferencePlan.failureTargetLog2 && program.failureLog2 < -100)
            #expect(program.bootstraps == program.rounds.joined().reduce(0) { $0 + ($1.carry == nil ? 1 : 2) })
        }
    }

    @Test("fast-mnist answering with score digits: exact scores on an MNIST image; the answer holds 10 × its digits and nothing else")
    func fastMNISTScores() throws {
        let plan = try InferencePlan(model: try ModelCatalog.load("fast-mnist"), answer: .scores)
        guard case .scoreDigits(let digits) = plan.steps.last!.operation else { Issue.record("no digit step"); return }
        #expect(plan.answer == .scores && plan.outputCount == digits.digits.reduce(0) { $0 + $1.count })
        #expect(digits.digits.allSatisfy { $0.count <= 7 }, "\(digits.digits.map(\.count)) digits: 4^7 > 2 × 1,652 + 1")
        #expect(plan.worstFailureLog2 <= InferencePlan.failureTargetLog2 && plan.failureLog2 < -100)
        #expect(plan.bootstrapsPerInference == 864 + digits.bootstraps)
        let data = try Dataset.mnist(folder: SharedData.root + "/mnist")
        for (decrypted, reference) in try runEncrypted(plan, data, [8003]) { #expect(decrypted == reference) }
    }

    @Test("refused, with an error and no trap: score digits for the perceptron (nothing to bootstrap), weights reaching beyond 2^20, features noisier than a block's budget; a plan on a set whose bootstraps would fail above 2^-128")
    func refusals() throws {
        #expect(throws: InferenceError.self) {
            try ScoreDigits(weights: [[1, -1, 1]], bias: [0], featureMagnitude: 1, featureNormSquared: 26, noise: NoiseModel(.integer4Bit128))
        }
        do {
            _ = try InferencePlan(model: try ModelCatalog.load("fast-mnist"), parameters: .integer2Bit128)
            Issue.record("fast-mnist compiled on int2-128")
        } catch {
            #expect("\(error)".contains("per bootstrap, above 2^-128"), "\(error)")
        }
        #expect(throws: InferenceError.self) {
            try InferencePlan(model: try ModelCatalog.load("paper-perceptron-cancer"), answer: .scores)
        }
        do {
            _ = try ScoreDigits(weights: [[1, 2], [3, -(1 << 30)]], bias: [0, 0], featureMagnitude: 1, featureNormSquared: 1,
                                noise: NoiseModel(.integer4Bit128))
            Issue.record("a weight of -2^30 is summed into digits")
        } catch {
            #expect("\(error)".contains("beyond the 2^20"), "\(error)")
        }
    }
}
