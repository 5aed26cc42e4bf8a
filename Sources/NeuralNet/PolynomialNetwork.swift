import Foundation

/// A feed-forward network of convolutions, dense layers and polynomial activations: the
/// CryptoNets/HCNN family (activation x²) and CryptoDL (low-degree polynomials fitted to ReLU),
/// the networks that RLWE schemes evaluate because they need only additions and multiplications.
///
/// Its exact integer form (``integerForm()``, rounded as ``quantization`` says) never shifts or
/// divides: the contract that encrypted engines reproduce bit for bit.
public struct PolynomialNetwork: Codable, Sendable, Equatable {
    /// One layer.
    public enum Layer: Codable, Sendable, Equatable {
        /// A 2D convolution with bias over [channels, side, side] inputs.
        case convolution(Convolution)
        /// A dense layer with bias.
        case dense(Dense)
        /// Σ c_k·x^k elementwise (x² is [0, 0, 1]).
        case polynomial([Float])
    }

    /// A 2D convolution with bias.
    public struct Convolution: Codable, Sendable, Equatable {
        /// Input channels, output channels, kernel side, stride, zero padding, input side.
        public var inputChannels, outputChannels, kernelSide, stride, padding, inputSide: Int
        /// Weights [out][in][row][column].
        public var weights: [Float]
        /// One bias per output channel.
        public var bias: [Float]

        public init(inputChannels: Int, outputChannels: Int, kernelSide: Int, stride: Int, padding: Int, inputSide: Int,
                    weights: [Float], bias: [Float]) {
            self.inputChannels = inputChannels
            self.outputChannels = outputChannels
            self.kernelSide = kernelSide
            self.stride = stride
            self.padding = padding
            self.inputSide = inputSide
            self.weights = weights
            self.bias = bias
        }

        /// The side of each output map.
        public var outputSide: Int { (inputSide + 2 * padding - kernelSide) / stride + 1 }
        /// Values in, values out.
        var inputCount: Int { inputChannels * inputSide * inputSide }
        var outputCount: Int { outputChannels * outputSide * outputSide }

        /// Calls `body(output index, weight index, input index)` for every product of the layer.
        @inline(__always)
        func forEachProduct(_ body: (Int, Int, Int) -> Void) {
            let side = outputSide, k = kernelSide
            for o in 0..<outputChannels {
                for i in 0..<side {
                    for j in 0..<side {
                        let out = (o * side + i) * side + j
                        for c in 0..<inputChannels {
                            for u in 0..<k {
                                let row = i * stride + u - padding
                                guard row >= 0 && row < inputSide else { continue }
                                for v in 0..<k {
                                    let column = j * stride + v - padding
                                    guard column >= 0 && column < inputSide else { continue }
                                    body(out, ((o * inputChannels + c) * k + u) * k + v, (c * inputSide + row) * inputSide + column)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// A dense layer with bias.
    public struct Dense: Codable, Sendable, Equatable {
        /// Inputs and outputs.
        public var inputCount, outputCount: Int
        /// Weights [out][in].
        public var weights: [Float]
        /// One bias per output.
        public var bias: [Float]

        public init(inputCount: Int, outputCount: Int, weights: [Float], bias: [Float]) {
            self.inputCount = inputCount
            self.outputCount = outputCount
            self.weights = weights
            self.bias = bias
        }
    }

    /// Pixels per input image (one channel).
    public var inputSide: Int
    /// The layers in order.
    public var layers: [Layer]
    /// How the integer form rounds inputs, weights and coefficients.
    public var quantization: PolynomialQuantization

    /// A network from its layers.
    public init(inputSide: Int, layers: [Layer], quantization: PolynomialQuantization = .init()) {
        self.inputSide = inputSide
        self.layers = layers
        self.quantization = quantization
    }

    private enum CodingKeys: String, CodingKey { case inputSide, layers, quantization }

    /// Files written before the shift-free integer form have no `quantization`: they get the default.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        inputSide = try container.decode(Int.self, forKey: .inputSide)
        layers = try container.decode([Layer].self, forKey: .layers)
        quantization = try container.decodeIfPresent(PolynomialQuantization.self, forKey: .quantization) ?? .init()
    }

    /// Whether the layers' sizes chain.
    public var isConsistent: Bool {
        var count = inputSide * inputSide
        for layer in layers {
            switch layer {
            case .convolution(let c):
                guard c.inputCount == count, c.weights.count == c.outputChannels * c.inputChannels * c.kernelSide * c.kernelSide,
                      c.bias.count == c.outputChannels, c.stride > 0, c.outputSide > 0 else { return false }
                count = c.outputCount
            case .dense(let d):
                guard d.inputCount == count, d.weights.count == d.inputCount * d.outputCount, d.bias.count == d.outputCount else { return false }
                count = d.outputCount
            case .polynomial(let coefficients):
                guard !coefficients.isEmpty, coefficients.allSatisfy(\.isFinite) else { return false }
            }
        }
        return count > 1
    }

    /// The float network's class scores.
    public func floatScores(_ image: ArraySlice<Float>) -> [Float] {
        forwardTrace(Array(image)).last!
    }

    /// Every layer's output, the input first.
    func forwardTrace(_ input: [Float]) -> [[Float]] {
        var trace = [input]
        for layer in layers {
            let x = trace.last!
            switch layer {
            case .convolution(let c):
                var out = (0..<c.outputCount).map { c.bias[$0 / (c.outputSide * c.outputSide)] }
                c.forEachProduct { o, w, i in out[o] += c.weights[w] * x[i] }
                trace.append(out)
            case .dense(let d):
                trace.append((0..<d.outputCount).map { o in
                    var total = d.bias[o]
                    for i in 0..<d.inputCount { total += d.weights[o * d.inputCount + i] * x[i] }
                    return total
                })
            case .polynomial(let coefficients):
                trace.append(x.map { value in coefficients.reversed().reduce(0) { $0 * value + $1 } })
            }
        }
        return trace
    }

    /// The exact integer form (see ``PolynomialIntegerNetwork``).
    public func integerForm() throws(PolynomialIntegerNetwork.FormError) -> PolynomialIntegerNetwork {
        try PolynomialIntegerNetwork(self, quantization: quantization)
    }

    /// The float network's predicted class (the integer form's: `argmax` of ``integerForm()``'s
    /// scores, built once for many images).
    public func predict(_ image: ArraySlice<Float>) -> Int {
        BinarizedCNN.argmax(floatScores(image))
    }

    /// Accuracy of the float or the integer form on `samples` of `data`, on all cores (0 for
    /// the integer form of a network that has none).
    public func accuracy(on data: Dataset, samples: [Int], integer: Bool) -> Double {
        let form = integer ? try? integerForm() : nil
        if integer && form == nil { return 0 }
        let correct = Parallel.sum(count: samples.count) { i in
            let image = data.sample(samples[i])
            let predicted = if let form { BinarizedCNN.argmax(form.scores(image)) } else { BinarizedCNN.argmax(floatScores(image)) }
            return predicted == data.labels[samples[i]] ? 1 : 0
        }
        return Double(correct) / Double(samples.count)
    }

    /// The share of `samples` on which the integer form chooses the float network's class, on
    /// all cores (0 for no samples).
    public func integerAgreement(on data: Dataset, samples: [Int]) throws(PolynomialIntegerNetwork.FormError) -> Double {
        let form = try integerForm()
        guard !samples.isEmpty else { return 0 }
        let same = Parallel.sum(count: samples.count) { i in
            let image = data.sample(samples[i])
            return BinarizedCNN.argmax(form.scores(image)) == BinarizedCNN.argmax(floatScores(image)) ? 1 : 0
        }
        return Double(same) / Double(samples.count)
    }
}
