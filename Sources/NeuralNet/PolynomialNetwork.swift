import Foundation

/// A feed-forward network of convolutions, dense layers and polynomial activations: the
/// CryptoNets/HCNN family (activation x²) and CryptoDL (low-degree polynomials fitted to ReLU),
/// the networks that RLWE schemes evaluate because they need only additions and multiplications.
///
/// Its exact integer form (``integerScores(_:)``) quantizes the input to ``inputFractionBits``
/// and every weight to ``weightFractionBits`` fraction bits, and keeps every value an integer
/// with a known power-of-two scale; after every layer but the last a right shift (floor) brings
/// the scale back to at most ``activationFractionBits``, so that no value outgrows 64 bits. That integer network is the contract encrypted
/// engines reproduce.
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
    }

    /// Pixels per input image (one channel).
    public var inputSide: Int
    /// The layers in order.
    public var layers: [Layer]

    /// Input pixels are quantized to this many fraction bits.
    public static let inputFractionBits = 4
    /// Weights and biases are quantized to this many fraction bits.
    public static let weightFractionBits = 8
    /// After an activation, values are shifted down to at most this many fraction bits.
    public static let activationFractionBits = 8

    /// A network from its layers.
    public init(inputSide: Int, layers: [Layer]) {
        self.inputSide = inputSide
        self.layers = layers
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

    /// The exact integer form's class scores (scale 2^-fraction bits of the last layer).
    public func integerScores(_ image: ArraySlice<Float>) -> [Int64] {
        integerScores(image, weights: quantizedWeights())
    }

    /// Each layer's weights rounded to ``weightFractionBits`` fraction bits (empty for activations):
    /// computed once per batch of images rather than once per image.
    func quantizedWeights() -> [[Int64]] {
        let unit = Float(1 << Self.weightFractionBits)
        return layers.map { layer in
            switch layer {
            case .convolution(let c): c.weights.map { Int64(($0 * unit).rounded()) }
            case .dense(let d): d.weights.map { Int64(($0 * unit).rounded()) }
            case .polynomial: []
            }
        }
    }

    /// The integer form's scores with the layers' weights already quantized.
    func integerScores(_ image: ArraySlice<Float>, weights quantizedLayers: [[Int64]]) -> [Int64] {
        let unit = Float(1 << Self.weightFractionBits)
        var x = image.map { Int64(($0 * Float(1 << Self.inputFractionBits)).rounded()) }
        var scale = Self.inputFractionBits
        for (index, layer) in layers.enumerated() {
            switch layer {
            case .convolution(let c):
                let weights = quantizedLayers[index]
                scale += Self.weightFractionBits
                var out = (0..<c.outputCount).map { Self.quantize(c.bias[$0 / (c.outputSide * c.outputSide)], fractionBits: scale) }
                c.forEachProduct { o, w, i in out[o] += weights[w] * x[i] }
                x = out
            case .dense(let d):
                let weights = quantizedLayers[index]
                scale += Self.weightFractionBits
                x = (0..<d.outputCount).map { o in
                    var total = Self.quantize(d.bias[o], fractionBits: scale)
                    for i in 0..<d.inputCount { total += weights[o * d.inputCount + i] * x[i] }
                    return total
                }
            case .polynomial(let coefficients):
                // Σ c_k·x^k at scale 2^(degree·scale + weight bits): each term c_k·x^k·2^((degree−k)·scale).
                let degree = coefficients.count - 1
                let quantized = coefficients.map { Int64(($0 * unit).rounded()) }
                x = x.map { value in
                    var total: Int64 = 0, power: Int64 = 1
                    for k in 0...degree {
                        total += quantized[k] * power << Int64((degree - k) * scale)
                        power *= value
                    }
                    return total
                }
                scale = degree * scale + Self.weightFractionBits
            }
            if index < layers.count - 1 && scale > Self.activationFractionBits {
                let shift = Int64(scale - Self.activationFractionBits)
                x = x.map { $0 >> shift }
                scale = Self.activationFractionBits
            }
        }
        return x
    }

    static func quantize(_ value: Float, fractionBits: Int) -> Int64 {
        Int64((Double(value) * Double(Int64(1) << Int64(fractionBits))).rounded())
    }

    /// The predicted class of the float or the integer form.
    public func predict(_ image: ArraySlice<Float>, integer: Bool) -> Int {
        integer ? BinarizedCNN.argmax(integerScores(image)) : BinarizedCNN.argmax(floatScores(image))
    }

    /// Accuracy of the float or the integer form on `samples` of `data`, on all cores.
    public func accuracy(on data: Dataset, samples: [Int], integer: Bool) -> Double {
        let weights = integer ? quantizedWeights() : []
        let correct = Parallel.sum(count: samples.count) { i in
            let image = data.sample(samples[i])
            let predicted = integer ? BinarizedCNN.argmax(integerScores(image, weights: weights)) : BinarizedCNN.argmax(floatScores(image))
            return predicted == data.labels[samples[i]] ? 1 : 0
        }
        return Double(correct) / Double(samples.count)
    }
}
