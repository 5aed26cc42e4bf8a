import ObscuraMath
import Testing
@testable import TFHE

#if canImport(Glibc)
import Glibc
#endif

struct NoiseTests {
    /// The signed distance, as a fraction of the torus, between two torus points.
    static func torusError(_ a: UInt64, _ b: UInt64) -> Double {
        Double(Int64(bitPattern: a &- b)) * 0x1p-64
    }

    static func variance(_ samples: [Double]) -> Double {
        let mean = samples.reduce(0, +) / Double(samples.count)
        return samples.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(samples.count - 1)
    }

    @Test("1,200 bootstraps: output and key-switch-plus-modulus-switch variances match the model within 2x",
          arguments: [TFHEParameters.gates128, .integer2Bit128])
    func measuredAgainstPredicted(parameters: TFHEParameters) {
        let (secret, key) = KeyCache.shared.keys(parameters, seed: 7)
        let encryptor = Encryptor(secretKey: secret)
        let model = NoiseModel(parameters)
        let count = 1200
        let inputs = (0..<count).map { _ in encryptor.encrypt(bit: true) }
        let twoN = Double(2 * parameters.polynomialSize)
        let samples: [(output: Double, switched: Double)] = key.parallelMap(count: count) { evaluator, i in
            let output = evaluator.bootstrap(inputs[i], table: evaluator.gateTable)
            // The same input, key-switched and modulus-switched only: its phase index, under
            // the small key, against the exact 1/8.
            evaluator.keySwitch([inputs[i]])
            evaluator.modulusSwitch(count: 1)
            let rotations = evaluator.workspace.rotations
            var index = rotations[parameters.lweDimension]
            for j in 0..<parameters.lweDimension where secret.smallKey[j] == 1 { index -= rotations[j] }
            let phase = Double(((index % Int(twoN)) + Int(twoN)) % Int(twoN)) / twoN
            var switched = phase - 0.125
            if switched > 0.5 { switched -= 1 }
            return (Self.torusError(secret.phase(output), BooleanEncoding.eighth), switched)
        }
        let outputVariance = Self.variance(samples.map(\.output))
        let switchedVariance = Self.variance(samples.map(\.switched))
        let predictedOutput = model.bootstrapOutputVariance
        let predictedSwitched = model.keySwitchVariance + model.modulusSwitchVariance + model.freshVariance
        print("\(parameters.name) bootstrap output variance: measured \(outputVariance), predicted \(predictedOutput)")
        print("\(parameters.name) key switch + modulus switch variance: measured \(switchedVariance), predicted \(predictedSwitched)")
        #expect(outputVariance < 2 * predictedOutput && outputVariance > predictedOutput / 2)
        #expect(switchedVariance < 2 * predictedSwitched && switchedVariance > predictedSwitched / 2)
    }

    @Test("1,200 multi-value bootstraps, int4-128: the noises of readings of one blind rotation are uncorrelated within the planned bound")
    func multiValueReadingsCorrelation() {
        let parameters = TFHEParameters.integer4Bit128
        let (secret, key) = KeyCache.shared.keys(parameters, seed: 11)
        let encryptor = Encryptor(secretKey: secret)
        let count = 1200
        // Readings as far apart as the sign models' thresholds: all stay on the +1/8 half.
        let coefficients = [0, 256, 512]
        let inputs = (0..<count).map { _ in encryptor.encrypt(bit: true) }
        let errors: [[Double]] = key.parallelMap(count: count) { evaluator, i in
            evaluator.bootstrap(inputs[i], table: evaluator.gateTable, coefficients: coefficients)
                .map { Self.torusError(secret.phase($0), BooleanEncoding.eighth) }
        }
        let variance = Self.variance(errors.map { $0[0] })
        #expect(variance < 2 * NoiseModel(parameters).bootstrapOutputVariance)
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

    @Test("every secure set meets p-fail <= 2^-64 at its budget, by the model", arguments: TFHEParameters.secureSets)
    func failureProbabilities(parameters: TFHEParameters) {
        let model = NoiseModel(parameters)
        print("\(parameters.name): integer p-fail 2^\(model.integerFailureLog2), gate p-fail 2^\(model.gateFailureLog2), full-adder sum 2^\(model.fullAdderSumFailureLog2), source 2^\(parameters.sourceFailureLog2)")
        #expect(model.integerFailureLog2 <= -64)
        #expect(model.gateFailureLog2 <= -64)
        #expect(model.fullAdderSumFailureLog2 <= -64)
        #expect(parameters.securityBits >= 128)
        #expect(!parameters.isInsecureTestOnly)
    }
}
