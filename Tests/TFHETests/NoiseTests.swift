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
        var encryptor = Encryptor(secretKey: secret)
        let model = NoiseModel(parameters)
        let count = 1200
        let inputs = (0..<count).map { _ in encryptor.encrypt(bit: true) }
        let twoN = Double(2 * parameters.polynomialSize)
        let samples: [(output: Double, switched: Double)] = key.parallelMap(count: count) { evaluator, i in
            let output = evaluator.bootstrap(inputs[i], table: evaluator.gateTable)
            // The same input, key-switched and modulus-switched only: its phase index, under
            // the small key, against the exact 1/8.
            evaluator.keySwitch(inputs[i])
            evaluator.modulusSwitch()
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
