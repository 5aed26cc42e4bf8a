import Foundation

// Each model kind that training produces, as a graph whose integer outputs equal the kind's own
// integer reference on every record (ModelGraphTests checks every bundled model's evaluation split).

extension BinarizedPerceptron {
    /// Binarize (a thermometer code of ``levels`` thresholds per feature) → dense ±1 → threshold.
    /// The float form scores α·Σ w_i·x_i + b against 0, the integer form Σ w_i·x_i against
    /// ``integerThreshold``.
    public var graph: ModelGraph {
        ModelGraph(inputShape: .vector(featureCount),
                   layers: [.binarize(.init(thresholds: featureThresholds)),
                            .dense(.init(outputCount: 1, weights: weightSigns.map { alpha * Float($0) }, bias: [bias],
                                         integerWeights: weightSigns.map { Int64($0) }, integerBias: [0]))],
                   decision: .threshold(integer: integerThreshold, float: 0))
    }
}

extension BinarizedCNN {
    /// Binarize at the pixel mean → convolution with ±1 filters → sign at L thresholds (or the
    /// paper's S·K·α + b → ReLU) → pooling → dense → argmax.
    public var graph: ModelGraph {
        let s = shape
        var layers: [GraphLayer] = [
            .binarize(.init(thresholds: [pixelMean])),
            .convolution(.init(outputChannels: s.filterCount, kernelSide: s.kernelSide, stride: s.stride, padding: 0,
                               weights: integer.filterSigns.map { Float($0) }, bias: [],
                               integerWeights: integer.filterSigns.map { Int64($0) },
                               integerBias: [Int128](repeating: 0, count: s.filterCount))),
        ]
        switch activation {
        case .sign:
            layers.append(.sign(.init(levels: activationLevels, thresholds: thresholds, integerThresholds: integer.thresholds)))
        case .scaledReLU:
            let alphas = Self.alphas(filterWeights, shape: s)
            let normalizations = (0..<s.filterCount).map(normalization)
            var scale = magnitudeScale
            scale.scales = zip(normalizations, alphas).map { $0.scale * $1 }
            scale.shifts = normalizations.map(\.shift)
            scale.integerScales = integer.alphas
            scale.integerShifts = (0..<s.filterCount).map(integer.activationBias)
            layers.append(.magnitudeScale(scale))
            layers.append(.relu)
        }
        if s.poolSide > 1 {
            layers.append(.pool(.init(kind: s.pooling == .max ? .max : .sum, window: s.poolSide)))
        }
        layers.append(.dense(.init(outputCount: s.classCount, weights: denseWeights, bias: denseBias,
                                   integerWeights: integer.denseWeights.map { Int64($0) }, integerBias: integer.denseBias.map { Int128($0) })))
        return ModelGraph(inputShape: TensorShape(channels: 1, height: s.imageSide, width: s.imageSide), layers: layers, decision: .argmax)
    }
}

extension PolynomialNetwork {
    /// Fixed point → the layers with their integer form's weights, biases and coefficients → argmax.
    public func graph() throws(PolynomialIntegerNetwork.FormError) -> ModelGraph {
        let form = try integerForm()
        var layers: [GraphLayer] = [.fixedPoint(.init(levels: quantization.inputLevels))]
        for (layer, integer) in zip(self.layers, form.layers) {
            switch (layer, integer) {
            case (.convolution(let c), .linear(let l)):
                // The integer form lists each output's nonzero terms; every kernel weight sits
                // at its kernel offset within its output channel.
                let offsets = c.inputChannels * c.kernelSide * c.kernelSide, area = c.outputSide * c.outputSide
                var weights = [Int64](repeating: 0, count: c.outputChannels * offsets)
                for row in 0..<l.outputCount {
                    for t in l.rowStart[row]..<l.rowStart[row + 1] { weights[(row / area) * offsets + Int(l.kernelOffsets[t])] = l.weights[t] }
                }
                layers.append(.convolution(.init(outputChannels: c.outputChannels, kernelSide: c.kernelSide, stride: c.stride,
                                                 padding: c.padding, weights: c.weights, bias: c.bias, integerWeights: weights,
                                                 integerBias: (0..<c.outputChannels).map { l.bias[$0 * area] })))
            case (.dense(let d), .linear(let l)):
                var weights = [Int64](repeating: 0, count: d.outputCount * d.inputCount)
                for row in 0..<l.outputCount {
                    for t in l.rowStart[row]..<l.rowStart[row + 1] { weights[row * d.inputCount + Int(l.inputs[t])] = l.weights[t] }
                }
                layers.append(.dense(.init(outputCount: d.outputCount, weights: d.weights, bias: d.bias, integerWeights: weights,
                                           integerBias: l.bias)))
            case (.polynomial(let coefficients), .polynomial(let p)):
                layers.append(.polynomial(.init(coefficients: coefficients, integerCoefficients: p.coefficients)))
            default:
                preconditionFailure("the integer form follows the network layer by layer")
            }
        }
        return ModelGraph(inputShape: TensorShape(channels: 1, height: inputSide, width: inputSide), layers: layers, decision: .argmax)
    }
}

extension ModelFile {
    /// The model as a graph (a trained kind converted; see ``ModelGraph``).
    public func graph() throws(ModelGraphError) -> ModelGraph {
        switch network {
        case .perceptron(let perceptron): return perceptron.graph
        case .binarizedCNN(let cnn): return cnn.graph
        case .graph(let graph): return graph
        case .polynomialNetwork(let polynomial):
            do {
                return try polynomial.graph()
            } catch {
                throw .invalidGraph("no exact integer form: \(error)")
            }
        }
    }
}
