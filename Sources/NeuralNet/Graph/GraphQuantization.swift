import Foundation

extension ModelGraph {
    /// A float network (first layer a fixed-point encoding; convolutions, dense layers, ReLU
    /// and pooling after it) with its exact integer form filled in, as
    /// ``PolynomialIntegerNetwork`` rounds a polynomial network: each linear layer's weights
    /// to `quantization.weightBits`-bit integers with a power-of-two scale 2^f, which multiplies
    /// the running scale S; its bias rounded at the new scale. ReLU and max and sum pooling keep
    /// the scale (they commute with positive scaling), so nothing is ever divided or shifted.
    ///
    /// The integer parameters of `layers` are ignored and replaced.
    public static func quantizing(inputShape: TensorShape, layers: [GraphLayer], decision: Decision,
                                  quantization: PolynomialQuantization) throws(ModelGraphError) -> ModelGraph {
        guard quantization.isValid else { throw .invalidGraph("invalid quantization settings") }
        var quantized: [GraphLayer] = []
        var scale = Double(quantization.inputLevels)
        for (index, layer) in layers.enumerated() {
            func fail(_ reason: String) -> ModelGraphError { .invalidLayer(index: index, kind: layer.kind, reason: reason) }
            switch layer {
            case .fixedPoint: guard index == 0 else { throw fail("the encoding must come first") }
            case .convolution, .dense, .relu, .pool: guard index > 0 else { throw fail("the first layer must be the fixed-point encoding") }
            default: throw fail("post-training quantization covers fixed point, convolution, dense, ReLU and pooling")
            }
            do throws(PolynomialIntegerNetwork.FormError) {
                switch layer {
                case .fixedPoint:
                    quantized.append(.fixedPoint(.init(levels: quantization.inputLevels)))
                case .convolution(var c):
                    let (weights, f) = try PolynomialIntegerNetwork.quantize(c.weights, bits: quantization.weightBits, layer: index)
                    scale *= pow(2, Double(f))
                    c.integerWeights = weights
                    c.integerBias = try (0..<c.outputChannels).map { o throws(PolynomialIntegerNetwork.FormError) in
                        try PolynomialIntegerNetwork.round(c.bias.isEmpty ? 0 : c.bias[o], scale: scale, layer: index)
                    }
                    quantized.append(.convolution(c))
                case .dense(var d):
                    let (weights, f) = try PolynomialIntegerNetwork.quantize(d.weights, bits: quantization.weightBits, layer: index)
                    scale *= pow(2, Double(f))
                    d.integerWeights = weights
                    d.integerBias = try d.bias.map { b throws(PolynomialIntegerNetwork.FormError) in
                        try PolynomialIntegerNetwork.round(b, scale: scale, layer: index)
                    }
                    quantized.append(.dense(d))
                default:
                    quantized.append(layer)
                }
            } catch {
                throw fail("\(error)")
            }
        }
        return ModelGraph(inputShape: inputShape, layers: quantized, decision: decision)
    }
}
