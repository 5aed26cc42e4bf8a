import ObscuraMath
import Testing
@testable import TFHE

#if canImport(Glibc)
import Glibc
#endif

/// Measured noise against `NoiseModel`, for every secure set, at every stage a ciphertext goes
/// through: fresh encryption, key switch + modulus switch (what blind rotation reads) and
/// bootstrap output. Each check is as tight as its sample size allows, and each compares with
/// the prediction for the key the samples were made with. Seeds are fixed, so a run is
/// reproducible bit for bit.
struct NoiseTests {
    /// The signed distance, as a fraction of the torus, between two torus points.
    static func torusError(_ a: UInt64, _ b: UInt64) -> Double {
        Double(Int64(bitPattern: a &- b)) * 0x1p-64
    }

    static func variance(_ samples: [Double]) -> Double {
        let mean = samples.reduce(0, +) / Double(samples.count)
        return samples.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(samples.count - 1)
    }

    /// Noise samples against a predicted variance: the variance itself, and the tail beyond a
    /// margin shrunk until a centred Gaussian of the predicted variance puts `tailProbability`
    /// of its mass outside it, where a variance 20% above the prediction shows as a count
    /// far above the expected one (p-fail figures extrapolate exactly this tail).
    struct Check: CustomStringConvertible {
        let stage: String
        let samples: [Double]
        let predicted: Double
        let tailProbability: Double

        /// The mean square: spread around zero, so that an offset counts as much as noise does.
        var measured: Double { samples.reduce(0) { $0 + $1 * $1 } / Double(samples.count) }
        /// 4.5 standard errors of s²/σ² for near-Gaussian noise (√(2/(n−1)) each): about
        /// 1.18× at 1,200 samples, 1.08× at 6,000. Bounded noise (TUniform) varies less.
        var tolerance: Double { 4.5 * (2 / Double(samples.count - 1)).squareRoot() }
        var varianceMatches: Bool { abs(measured / predicted - 1) <= tolerance }

        /// The margin m with P(|X| > m) = tailProbability for X ~ N(0, predicted), by bisection on erfc.
        var margin: Double {
            let sigmaRootTwo = (2 * predicted).squareRoot()
            var low = 0.0, high = 40.0
            for _ in 0..<200 {
                let middle = (low + high) / 2
                if erfc(middle) > tailProbability { low = middle } else { high = middle }
            }
            return low * sigmaRootTwo
        }
        var outside: Int {
            let margin = margin
            return samples.count { abs($0) > margin }
        }
        /// The expected count λ = p·n plus 4.5 of its Poisson standard deviations.
        var outsideLimit: Double {
            let expected = tailProbability * Double(samples.count)
            return expected + 4.5 * expected.squareRoot()
        }
        var tailMatches: Bool { Double(outside) <= outsideLimit }

        var description: String {
            String(format: "%@: %d samples, variance measured %.4g, predicted %.4g (ratio %.3f, tolerance ±%.3f); %d outside the %.0f%% margin, limit %.1f",
                   stage, samples.count, measured, predicted, measured / predicted, tolerance, outside, tailProbability * 100, outsideLimit)
        }

        /// Prints the check and expects its variance and its tail to match the model.
        func expectMatches(sourceLocation: SourceLocation = #_sourceLocation) {
            print(self)
            #expect(varianceMatches, "\(self)", sourceLocation: sourceLocation)
            #expect(tailMatches, "\(self)", sourceLocation: sourceLocation)
        }

        /// The same samples judged against a model whose variance is `factor` times this one's.
        func against(predictedTimes factor: Double) -> Check {
            Check(stage: stage, samples: samples, predicted: predicted * factor, tailProbability: tailProbability)
        }
    }

    /// The phase, as a fraction of the torus, that blind rotation reads from the modulus-switched
    /// member 0 of an evaluator's workspace: (b̃ − Σ ã_i·s_i) / 2N.
    static func switchedPhase(_ evaluator: Evaluator, secret: SecretKey) -> Double {
        let p = secret.parameters, twoN = 2 * p.polynomialSize
        let rotations = evaluator.workspace.rotations
        var index = rotations[p.lweDimension]
        for j in 0..<p.lweDimension where secret.smallKey[j] == 1 { index -= rotations[j] }
        return Double(((index % twoN) + twoN) % twoN) / Double(twoN)
    }

    /// Distance from 1/8 on the torus, in (−1/2, 1/2].
    static func fromEighth(_ phase: Double) -> Double {
        let error = phase - 0.125
        return error > 0.5 ? error - 1 : error <= -0.5 ? error + 1 : error
    }

    /// Samples of the noise that blind rotation sees for a fresh encryption: key switch to the
    /// small key, centred-mean modulus switch to Z_2N, read under the small key.
    static func keySwitchCheck(_ parameters: TFHEParameters, count: Int) -> Check {
        let (secret, key) = KeyCache.shared.keys(parameters, seed: 7)
        let encryptor = Encryptor(secretKey: secret, deterministicSeed: Seed128(low: 17, high: UInt64(parameters.id)))
        let inputs = (0..<count).map { _ in encryptor.encrypt(bit: true) }
        let samples: [Double] = key.parallelMap(count: count) { evaluator, i in
            evaluator.keySwitch([inputs[i]])
            evaluator.modulusSwitch(count: 1)
            return Self.fromEighth(Self.switchedPhase(evaluator, secret: secret))
        }
        let model = NoiseModel(parameters, secretKey: secret)
        return Check(stage: "\(parameters.name) key switch + modulus switch", samples: samples,
                     predicted: model.freshVariance + model.keySwitchVariance + model.modulusSwitchVariance, tailProbability: 0.02)
    }

    /// int2-128's, shared by the check of that set and the test that the checks can fail.
    static let integer2KeySwitch = keySwitchCheck(.integer2Bit128, count: keySwitchSamples(.integer2Bit128))

    /// Key switches cost k·N·l products of n words: fewer samples for the large sets.
    static func keySwitchSamples(_ parameters: TFHEParameters) -> Int {
        parameters.bigLweDimension > 4096 ? 3000 : 6000
    }

    @Test("fresh encryptions: every error inside the TUniform bound, variance as predicted (20,000 samples)",
          arguments: TFHEParameters.secureSets)
    func fresh(parameters: TFHEParameters) {
        let (secret, _) = KeyCache.shared.keys(parameters, seed: 7)
        let encryptor = Encryptor(secretKey: secret, deterministicSeed: Seed128(low: 13, high: UInt64(parameters.id)))
        var messages = CSPRNG(seed: Seed128(low: 14, high: 0), domain: "noise-test.messages")
        let count = 20_000
        let samples = (0..<count).map { _ in
            let m = Int(messages.next() % UInt64(parameters.plaintextModulus))
            return Self.torusError(secret.phase(encryptor.encrypt(integer: m)), UInt64(m) &* parameters.delta)
        }
        switch parameters.glweNoise {
        case .tUniform(let bound): #expect(samples.allSatisfy { abs($0) <= Double.pow2(bound - 64) })
        }
        // Bounded noise has no Gaussian tail to count: the bound above is its tail check.
        let check = Check(stage: "\(parameters.name) fresh", samples: samples, predicted: NoiseModel(parameters).freshVariance,
                          tailProbability: 0.01)
        print(check)
        #expect(check.varianceMatches, "\(check)")
    }

    @Test("key switch + modulus switch of fresh encryptions: variance and tail as predicted for the key",
          arguments: TFHEParameters.secureSets)
    func keySwitchAndModulusSwitch(parameters: TFHEParameters) {
        let check = parameters == .integer2Bit128 ? Self.integer2KeySwitch
            : Self.keySwitchCheck(parameters, count: Self.keySwitchSamples(parameters))
        check.expectMatches()
    }

    /// Samples of the noise that blind rotation sees for a fresh encryption under the small key:
    /// rounding to 32 bits and the modulus switch, no key switch.
    static func smallKeyInputCheck(_ parameters: TFHEParameters) -> Check {
        let (secret, key) = KeyCache.shared.keys(parameters, seed: 7)
        let encryptor = Encryptor(secretKey: secret, deterministicSeed: Seed128(low: 29, high: UInt64(parameters.id)))
        let count = 6000
        let inputs = (0..<count).map { _ in encryptor.encryptSeeded(plaintext: BooleanEncoding.eighth, key: .small).expanded() }
        let samples: [Double] = key.parallelMap(count: count) { evaluator, i in
            evaluator.loadUnderSmallKey([inputs[i]])
            evaluator.modulusSwitch(count: 1)
            return Self.fromEighth(Self.switchedPhase(evaluator, secret: secret))
        }
        return Check(stage: "\(parameters.name) small-key input + modulus switch", samples: samples,
                     predicted: NoiseModel(parameters, secretKey: secret).smallKeyInputVariance(inputNorm: 1), tailProbability: 0.02)
    }

    /// int4-128's, shared with the test that the checks can fail.
    static let integer4SmallKeyInput = smallKeyInputCheck(.integer4Bit128)

    @Test("fresh encryptions under the small key through the modulus switch (no key switch): variance and tail as predicted for the key",
          arguments: TFHEParameters.secureSets)
    func smallKeyInputs(parameters: TFHEParameters) {
        let check = parameters == .integer4Bit128 ? Self.integer4SmallKeyInput : Self.smallKeyInputCheck(parameters)
        check.expectMatches()
    }

    /// Bootstrap checks of a set: the output, and the output key-switched and modulus-switched
    /// (the next bootstrap's input). 4,800 samples (tolerance ±9.2%) where a bootstrap takes
    /// milliseconds; int6-128's take 8× longer, so 1,200 (±18.4%).
    static func bootstrapChecks(_ parameters: TFHEParameters) -> (output: Check, next: Check) {
        let (secret, key) = KeyCache.shared.keys(parameters, seed: 7)
        let encryptor = Encryptor(secretKey: secret, deterministicSeed: Seed128(low: 19, high: UInt64(parameters.id)))
        let count = parameters.polynomialSize > 4096 ? 1200 : 4800
        let inputs = (0..<count).map { _ in encryptor.encrypt(bit: true) }
        let samples: [(output: Double, next: Double)] = key.parallelMap(count: count) { evaluator, i in
            let output = evaluator.bootstrap(inputs[i], table: evaluator.gateTable)
            evaluator.keySwitch([output])
            evaluator.modulusSwitch(count: 1)
            return (Self.torusError(secret.phase(output), BooleanEncoding.eighth),
                    Self.fromEighth(Self.switchedPhase(evaluator, secret: secret)))
        }
        let model = NoiseModel(parameters, secretKey: secret)
        return (Check(stage: "\(parameters.name) bootstrap output", samples: samples.map(\.output),
                      predicted: model.bootstrapOutputVariance, tailProbability: 0.05),
                Check(stage: "\(parameters.name) bootstrap output + key switch + modulus switch", samples: samples.map(\.next),
                      predicted: model.bootstrapInputVariance(inputNorm: 1), tailProbability: 0.05))
    }

    /// int2-128's, int4-128's and int4-128-mb4's, shared with the test that the checks can fail.
    static let integer2Bootstraps = bootstrapChecks(.integer2Bit128)
    static let integer4Bootstraps = bootstrapChecks(.integer4Bit128)
    static let multiBit4Bootstraps = bootstrapChecks(.integer4BitMultiBit4)

    @Test("bootstraps (4,800; int6-128 1,200), classic and multi-bit: output variance as predicted for the key; output + key switch + modulus switch (the next bootstrap's input) with the predicted tail",
          arguments: TFHEParameters.secureSets)
    func bootstraps(parameters: TFHEParameters) {
        let (output, next) = parameters == .integer2Bit128 ? Self.integer2Bootstraps
            : parameters == .integer4Bit128 ? Self.integer4Bootstraps
            : parameters == .integer4BitMultiBit4 ? Self.multiBit4Bootstraps : Self.bootstrapChecks(parameters)
        output.expectMatches()
        next.expectMatches()
    }

    @Test("the checks fail against a model 20% off: int2-128's key-switch samples, int4-128's small-key inputs and int2/int4/int4-mb4-128's bootstrap outputs judged against 1/1.2 and 1.2 times the prediction")
    func checksCanFail() {
        let smallKey = Self.integer4SmallKeyInput
        #expect(smallKey.varianceMatches && smallKey.tailMatches)
        #expect(!smallKey.against(predictedTimes: 1 / 1.2).varianceMatches, "\(smallKey)")
        #expect(!smallKey.against(predictedTimes: 1 / 1.2).tailMatches, "\(smallKey)")
        #expect(!smallKey.against(predictedTimes: 1.2).varianceMatches, "\(smallKey)")
        let keySwitch = Self.integer2KeySwitch
        let optimistic = keySwitch.against(predictedTimes: 1 / 1.2), pessimistic = keySwitch.against(predictedTimes: 1.2)
        print(optimistic)
        print(pessimistic)
        #expect(keySwitch.varianceMatches && keySwitch.tailMatches)
        #expect(!optimistic.varianceMatches)
        #expect(!optimistic.tailMatches)
        #expect(!pessimistic.varianceMatches)
        for output in [Self.integer2Bootstraps.output, Self.integer4Bootstraps.output, Self.multiBit4Bootstraps.output] {
            #expect(output.varianceMatches)
            #expect(!output.against(predictedTimes: 1 / 1.2).varianceMatches, "\(output)")
            #expect(!output.against(predictedTimes: 1.2).varianceMatches, "\(output)")
        }
    }

    @Test("1,200 multi-value bootstraps, int4-128: the noises of readings of one blind rotation are uncorrelated within the planned bound")
    func multiValueReadingsCorrelation() {
        let parameters = TFHEParameters.integer4Bit128
        let (secret, key) = KeyCache.shared.keys(parameters, seed: 11)
        let encryptor = Encryptor(secretKey: secret, deterministicSeed: Seed128(low: 23, high: 0))
        let count = 1200
        // Readings as far apart as the sign models' thresholds: all stay on the +1/8 half.
        let coefficients = [0, 256, 512]
        let inputs = (0..<count).map { _ in encryptor.encrypt(bit: true) }
        let errors: [[Double]] = key.parallelMap(count: count) { evaluator, i in
            evaluator.bootstrap(inputs[i], table: evaluator.gateTable, coefficients: coefficients)
                .map { Self.torusError(secret.phase($0), BooleanEncoding.eighth) }
        }
        let check = Check(stage: "int4-128 multi-value reading 0", samples: errors.map { $0[0] },
                          predicted: NoiseModel(parameters, secretKey: secret).bootstrapOutputVariance, tailProbability: 0.05)
        #expect(check.varianceMatches, "\(check)")
        for a in coefficients.indices {
            for b in coefficients.indices where a < b {
                let x = errors.map { $0[a] }, y = errors.map { $0[b] }
                let mx = x.reduce(0, +) / Double(count), my = y.reduce(0, +) / Double(count)
                let covariance = zip(x, y).reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) } / Double(count - 1)
                let correlation = covariance / (Self.variance(x) * Self.variance(y)).squareRoot()
                print("int4-128 readings \(coefficients[a]) and \(coefficients[b]): correlation \(correlation)")
                #expect(abs(correlation) < NoiseModel.multiValueCorrelationBound)
            }
        }
    }

    @Test("every secure set meets p-fail <= 2^-128 at its budget, by the model; its gates and full adders too",
          arguments: TFHEParameters.secureSets)
    func failureProbabilities(parameters: TFHEParameters) {
        let model = NoiseModel(parameters)
        print("\(parameters.name): integer p-fail 2^\(model.integerFailureLog2), gate p-fail 2^\(model.gateFailureLog2), full-adder sum 2^\(model.fullAdderSumFailureLog2), source 2^\(parameters.sourceFailureLog2)")
        #expect(model.integerFailureLog2 <= -128)
        #expect(model.gateFailureLog2 <= -128)
        #expect(model.fullAdderSumFailureLog2 <= -128)
        #expect(parameters.securityBits >= 128)
        #expect(!parameters.isInsecureTestOnly)
    }
}
