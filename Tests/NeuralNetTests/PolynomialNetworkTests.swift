import Foundation
import Testing
@testable import NeuralNet

struct PolynomialNetworkTests {
    /// A 4×4 image → conv 2 filters 3×3 stride 1 (2×2×2) → activation → dense 8 → 3.
    static func tiny(activation: [Float]) -> PolynomialNetwork {
        let convolution = PolynomialNetwork.Convolution(
            inputChannels: 1, outputChannels: 2, kernelSide: 3, stride: 1, padding: 0, inputSide: 4,
            weights: (0..<18).map { Float($0 % 5) / 8 - 0.25 }, bias: [0.125, -0.25])
        let dense = PolynomialNetwork.Dense(inputCount: 8, outputCount: 3, weights: (0..<24).map { Float($0 % 7) / 16 - 0.1875 },
                                            bias: [0.5, 0, -0.5])
        return PolynomialNetwork(inputSide: 4, layers: [.convolution(convolution), .polynomial(activation), .dense(dense)])
    }

    @Test("float and integer forms on a tiny network: a hand-checked convolution and close scores")
    func tinyForward() {
        let network = Self.tiny(activation: [0, 0, 1])
        #expect(network.isConsistent)
        let image = [Float](repeating: 1, count: 16)
        let trace = network.forwardTrace(image)
        // Every 3×3 window of ones sums filter 0's weights: Σ ((i mod 5)/8 − 1/4) over i < 9 = −0.25, plus bias 0.125.
        #expect(abs(trace[1][0] + 0.125) < 1e-6)
        #expect(abs(trace[2][0] - 0.015625) < 1e-6)
        let form = try! network.integerForm()
        let float = network.floatScores(image[...]), integer = form.scores(image[...])
        for (f, i) in zip(float, integer) { #expect(abs(Double(i) / form.outputScale - Double(f)) < 0.02) }
    }

    @Test("gradients of every parameter match finite differences (square and fitted activations)")
    func gradientCheck() {
        for activation: [Float] in [[0, 0, 1], PolynomialNetwork.reluApproximation(degree: 2, bound: 4)] {
            let network = Self.tiny(activation: activation)
            let image: [Float] = (0..<16).map { Float(($0 * 7) % 11) / 10 }
            var gradient = [Float](repeating: 0, count: network.parameters.count)
            _ = network.accumulate(image: image, label: 2, into: &gradient)
            func loss(_ p: [Float]) -> Float {
                var scratch = [Float](repeating: 0, count: p.count)
                return network.with(parameters: p).accumulate(image: image, label: 2, into: &scratch).loss
            }
            let base = network.parameters
            expectFiniteDifferences(gradient, at: base, indices: Array(base.indices), tolerance: 3e-3, loss: loss)
        }
    }

    @Test("the degree-2 fit of ReLU on [-4, 4] is the least-squares one: close to ReLU, convex")
    func reluFit() {
        let c = PolynomialNetwork.reluApproximation(degree: 2, bound: 4)
        #expect(c.count == 3 && c[2] > 0 && abs(c[1] - 0.5) < 1e-3)
        let worst = stride(from: Float(-4), through: 4, by: 0.5).map { x in abs(c[0] + c[1] * x + c[2] * x * x - max(x, 0)) }.max()!
        #expect(worst < 0.6)
    }

    @Test("sigmoid and tanh fits (CryptoDL): the symmetry of the function, and a smaller squared error than the Taylor polynomial of the same degree",
          arguments: [(ApproximatedActivation.sigmoid, [0.5, 0.25, 0, -1.0 / 48]), (.tanh, [0, 1, 0, -1.0 / 3])])
    func sigmoidAndTanhFits(activation: ApproximatedActivation, taylor: [Double]) {
        let c = PolynomialNetwork.polynomialApproximation(of: activation, degree: 3, bound: 4).map(Double.init)
        #expect(abs(c[0] - activation(0)) < 1e-4 && abs(c[2]) < 1e-4, "\(activation) - f(0) is odd: \(c)")
        func squaredError(_ p: [Double]) -> Double {
            stride(from: -4.0, through: 4, by: 0.04).reduce(0) { sum, x in
                let value = p.enumerated().reduce(0) { $0 + $1.element * pow(x, Double($1.offset)) }
                return sum + (value - activation(x)) * (value - activation(x))
            }
        }
        #expect(squaredError(c) < squaredError(taylor) / 10, "\(activation)")
        // On [-4, 4] a cubic follows the sigmoid within 0.04 and tanh within 0.22.
        let worst = stride(from: -4.0, through: 4, by: 0.25).map { x in
            abs(c.enumerated().reduce(0) { $0 + $1.element * pow(x, Double($1.offset)) } - activation(x))
        }.max()!
        #expect(worst < (activation == .sigmoid ? 0.04 : 0.22), "\(activation): \(worst)")
    }

    @Test("bundled cryptonets-mnist: trained on the 60,000 training images, its recorded accuracies on the 10,000 test images, ≥ 98.95% (CryptoNets'), integer within 0.5 points")
    func bundledCryptoNets() throws {
        let file = try ModelCatalog.load("cryptonets-mnist")
        let network = try #require(file.polynomialNetwork)
        #expect(network.isConsistent)
        #expect(file.datasetKind == .mnist)
        let data = try Dataset.mnist(folder: SharedData.root + "/mnist")
        let split = file.datasetKind.evaluationSamples(in: data)
        #expect(split.count == 10_000)
        #expect(file.accuracy(on: data, samples: split, integer: true) == file.integerAccuracy)
        #expect(file.integerAccuracy >= 0.9895)
        #expect(abs(file.integerAccuracy - file.floatAccuracy) <= 0.005)
    }
}
