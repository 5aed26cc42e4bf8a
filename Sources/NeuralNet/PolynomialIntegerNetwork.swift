import Foundation

/// How a ``PolynomialNetwork`` is rounded to its exact integer form.
public struct PolynomialQuantization: Codable, Sendable, Equatable {
    /// Input pixels x ∈ [0, 1] become x̂ = round(x · inputLevels) ∈ [0, inputLevels].
    public var inputLevels: Int
    /// Each linear layer's weights are rounded to signed integers of at most this many bits,
    /// ŵ = round(w · 2^f) with the largest f that keeps every |ŵ| ≤ 2^(bits−1) − 1, or the
    /// smallest f at which every weight is already exact (an average pool's 1/k²).
    public var weightBits: Int
    /// Non-integer activation coefficients are rounded to this many fraction bits.
    public var coefficientFractionBits: Int

    public init(inputLevels: Int = 15, weightBits: Int = 7, coefficientFractionBits: Int = 6) {
        self.inputLevels = inputLevels
        self.weightBits = weightBits
        self.coefficientFractionBits = coefficientFractionBits
    }

    /// Whether the settings describe an integer network at all.
    public var isValid: Bool {
        (1...255).contains(inputLevels) && (2...16).contains(weightBits) && (0...16).contains(coefficientFractionBits)
    }
}

/// The exact integer form of a ``PolynomialNetwork``: no value is ever divided or shifted, so an
/// RLWE engine that computes modulo a plaintext modulus T (or several, joined by the CRT)
/// reproduces it bit for bit whenever T exceeds twice ``outputBound``.
///
/// Scales: the input has scale S_0 = inputLevels. A linear layer with ŵ = round(w · 2^f) maps
/// scale S to S·2^f, with bias b̂ = round(b · S · 2^f). A polynomial Σ c_k x^k of degree d maps
/// scale S to S^d · 2^g: ŷ = Σ ĉ_k · S^(d−k) · x̂^k with ĉ_k = round(c_k · 2^g), where g = 0 when
/// every c_k is an integer (x²). Computing modulo T is a ring homomorphism, so only the final
/// scores must fit in (−T/2, T/2); intermediate values may wrap.
///
/// Bounds hold for *every* input in range: interval arithmetic neuron by neuron, so an
/// encrypted result is exact for any image, not only for the tested ones.
public struct PolynomialIntegerNetwork: Sendable, Equatable {
    /// out[o] = bias[o] + Σ weight·in[input] over row o's terms (zero weights left out).
    public struct Linear: Sendable, Equatable {
        /// Row o's terms are `rowStart[o]..<rowStart[o + 1]`.
        public let rowStart: [Int]
        /// The input each term reads.
        public let inputs: [Int32]
        /// Each term's integer weight.
        public let weights: [Int64]
        /// One integer bias per output, at the output's scale.
        public let bias: [Int128]
        /// Inputs the layer reads.
        public let inputCount: Int
        /// Convolutions: each term's kernel offset (input channel, row, column as one index
        /// below ``kernelOffsetCount``): a row uses each offset at most once, which is what lets
        /// a client lay out one ciphertext per offset (latency mode). Empty for dense layers.
        public let kernelOffsets: [Int32]
        /// Kernel offsets of a convolution (channels × side²); 0 for dense layers.
        public let kernelOffsetCount: Int

        public var outputCount: Int { bias.count }
        /// Multiply-accumulates of one evaluation.
        public var termCount: Int { weights.count }
    }

    /// ŷ = Σ coefficients[k] · x̂^k, elementwise.
    public struct Polynomial: Sendable, Equatable {
        /// Integer coefficients, x^0 first (already multiplied by the scale powers).
        public let coefficients: [Int128]
        public var degree: Int { coefficients.count - 1 }
    }

    public enum Layer: Sendable, Equatable {
        case linear(Linear)
        case polynomial(Polynomial)
    }

    /// Why a network has no integer form.
    public enum FormError: Error, Equatable, Sendable, CustomStringConvertible {
        case invalidQuantization
        /// A layer's values could exceed what the 128-bit reference holds.
        case valuesTooLarge(layer: Int, bits: Double)
        /// A weight, bias or coefficient is not finite.
        case notFinite(layer: Int)
        /// An activation of degree 0 (a constant) carries nothing from its input.
        case constantActivation(layer: Int)

        public var description: String {
            switch self {
            case .invalidQuantization: "invalid quantization settings"
            case .valuesTooLarge(let layer, let bits):
                String(format: "layer %d's values may reach 2^%.1f, beyond the 126 bits the integer reference holds", layer, bits)
            case .notFinite(let layer): "layer \(layer) has a parameter that is not a finite number"
            case .constantActivation(let layer): "layer \(layer) is a constant activation (degree 0)"
            }
        }
    }

    /// The layers, in order.
    public let layers: [Layer]
    /// Inputs per image.
    public let inputCount: Int
    /// Input pixels are multiplied by this and rounded.
    public let inputLevels: Int
    /// The real value of an output is its integer over this scale.
    public let outputScale: Double
    /// log2 of the largest |value| each layer's outputs can take, for any input.
    public let layerBoundBits: [Double]
    /// The largest |score| any input can produce.
    public let outputBound: Double

    /// Bits a plaintext modulus (or CRT product) needs to hold every score, sign included.
    public var outputBits: Int { Int(log2(outputBound + 1).rounded(.up)) + 1 }

    /// The integer form of `network` under `quantization`.
    public init(_ network: PolynomialNetwork, quantization: PolynomialQuantization) throws(FormError) {
        guard quantization.isValid else { throw .invalidQuantization }
        var layers: [Layer] = []
        var scale = Double(quantization.inputLevels)
        // Exact scale as an integer while it fits (it feeds polynomial coefficients).
        var exactScale = Int128(quantization.inputLevels)
        var low = [Double](repeating: 0, count: network.inputSide * network.inputSide)
        var high = [Double](repeating: Double(quantization.inputLevels), count: low.count)
        var boundBits: [Double] = []
        for (index, layer) in network.layers.enumerated() {
            switch layer {
            case .convolution(let c):
                var terms = [[(Int32, Int64)]](repeating: [], count: c.outputCount)
                var offsets = [[Int32]](repeating: [], count: c.outputCount)
                let offsetCount = c.inputChannels * c.kernelSide * c.kernelSide
                let (quantized, f) = try Self.quantize(c.weights, bits: quantization.weightBits, biases: c.bias, scale: scale, layer: index)
                c.forEachProduct { o, w, i in
                    guard quantized[w] != 0 else { return }
                    terms[o].append((Int32(i), quantized[w]))
                    offsets[o].append(Int32(w % offsetCount))
                }
                exactScale = try Self.scaled(exactScale, byPowerOfTwo: f, layer: index)
                scale *= Double(Int64(1) << f)
                let area = c.outputSide * c.outputSide
                let bias = try (0..<c.outputCount).map { o throws(FormError) in try Self.round(c.bias[o / area], scale: scale, layer: index) }
                layers.append(.linear(Self.linear(terms, bias: bias, inputCount: c.inputCount,
                                                  kernelOffsets: offsets.flatMap { $0 }, kernelOffsetCount: offsetCount)))
            case .dense(let d):
                let (quantized, f) = try Self.quantize(d.weights, bits: quantization.weightBits, biases: d.bias, scale: scale, layer: index)
                let terms = (0..<d.outputCount).map { o in
                    (0..<d.inputCount).compactMap { i in quantized[o * d.inputCount + i] == 0 ? nil : (Int32(i), quantized[o * d.inputCount + i]) }
                }
                exactScale = try Self.scaled(exactScale, byPowerOfTwo: f, layer: index)
                scale *= Double(Int64(1) << f)
                let bias = try d.bias.map { b throws(FormError) in try Self.round(b, scale: scale, layer: index) }
                layers.append(.linear(Self.linear(terms, bias: bias, inputCount: d.inputCount)))
            case .polynomial(let c):
                guard c.allSatisfy(\.isFinite) else { throw .notFinite(layer: index) }
                let integral = c.allSatisfy { $0 == $0.rounded() }
                let g = integral ? 0 : quantization.coefficientFractionBits
                let degree = c.count - 1
                var coefficients: [Int128] = []
                guard degree >= 1 else { throw .constantActivation(layer: index) }
                for (k, value) in c.enumerated() {
                    let scaledValue = (Double(value) * Double(Int64(1) << g)).rounded()
                    guard abs(scaledValue) < 0x1p120 else { throw .valuesTooLarge(layer: index, bits: log2(abs(scaledValue))) }
                    let rounded = Int128(scaledValue)
                    var term = rounded
                    for _ in 0..<(degree - k) {
                        let (product, overflow) = term.multipliedReportingOverflow(by: exactScale)
                        guard !overflow else { throw .valuesTooLarge(layer: index, bits: 127) }
                        term = product
                    }
                    coefficients.append(term)
                }
                let power = Int128(1) << Int128(g)
                var next = power
                for _ in 0..<degree {
                    let (product, overflow) = next.multipliedReportingOverflow(by: exactScale)
                    guard !overflow else { throw .valuesTooLarge(layer: index, bits: 127) }
                    next = product
                }
                exactScale = next
                scale = pow(scale, Double(degree)) * Double(Int64(1) << g)
                layers.append(.polynomial(Polynomial(coefficients: coefficients)))
            }
            // Interval arithmetic through the layer just added.
            switch layers.last! {
            case .linear(let linear):
                (low, high) = Self.bounds(linear, low: low, high: high)
            case .polynomial(let polynomial):
                (low, high) = Self.bounds(polynomial, low: low, high: high)
            }
            let bits = log2(max(zip(low, high).map { max(abs($0), abs($1)) }.max() ?? 0, 1))
            guard bits < 126 else { throw .valuesTooLarge(layer: index, bits: bits) }
            boundBits.append(bits)
        }
        self.layers = layers
        inputCount = network.inputSide * network.inputSide
        inputLevels = quantization.inputLevels
        outputScale = scale
        layerBoundBits = boundBits
        outputBound = zip(low, high).map { max(abs($0), abs($1)) }.max() ?? 0
    }

    /// The image's pixels as the integer network's inputs. Pixels are clamped to [0, 1] (NaN
    /// reads as 0), the range the bounds hold for: an encrypted engine sized by
    /// ``outputBound`` stays exact on any image.
    public func quantizedInput(_ image: ArraySlice<Float>) -> [Int64] {
        image.map { pixel in
            let clamped = pixel.isNaN ? 0 : Swift.min(Swift.max(pixel, 0), 1)
            return Int64((clamped * Float(inputLevels)).rounded())
        }
    }

    /// The exact integer scores of one image.
    public func scores(_ image: ArraySlice<Float>) -> [Int128] {
        scores(quantizedInput: quantizedInput(image))
    }

    /// The exact integer scores from already quantized inputs.
    public func scores(quantizedInput: [Int64]) -> [Int128] {
        var x = quantizedInput.map { Int128($0) }
        for layer in layers {
            switch layer {
            case .linear(let l):
                x = (0..<l.outputCount).map { o in
                    var total = l.bias[o]
                    for t in l.rowStart[o]..<l.rowStart[o + 1] { total &+= Int128(l.weights[t]) &* x[Int(l.inputs[t])] }
                    return total
                }
            case .polynomial(let p):
                x = x.map { value in
                    var total: Int128 = 0, power: Int128 = 1
                    for c in p.coefficients {
                        total &+= c &* power
                        power &*= value
                    }
                    return total
                }
            }
        }
        return x
    }

    // MARK: Construction

    /// Weights rounded to `bits`-bit signed integers with the largest power-of-two scale 2^f,
    /// or the smallest at which they and the biases (rounded at `scale`·2^f) are exact.
    static func quantize(_ weights: [Float], bits: Int, biases: [Float], scale: Double, layer: Int) throws(FormError) -> ([Int64], Int) {
        guard weights.allSatisfy(\.isFinite) else { throw .notFinite(layer: layer) }
        let largest = Double(weights.map { abs($0) }.max() ?? 0)
        let limit = Double((1 << (bits - 1)) - 1)
        // The largest f with largest · 2^f ≤ limit (rounding may not push past it either).
        var f = largest > 0 ? Int(floor(log2(limit / largest))) : 0
        f = min(f, 40)
        while (largest * pow(2, Double(f))).rounded() > limit { f -= 1 }
        // Weights above the limit need a fractional scale, which no exact integer form has.
        guard f >= 0 else { throw .valuesTooLarge(layer: layer, bits: log2(largest) + Double(bits)) }
        // Weights and biases already exact at a smaller scale (an average pool's 1/4, no bias)
        // keep that scale: a larger one adds bits to every later value and no precision.
        func exact(_ value: Double) -> Bool { value.rounded() == value }
        while f > 0, weights.allSatisfy({ exact(Double($0) * pow(2, Double(f - 1))) }),
              biases.allSatisfy({ exact(Double($0) * scale * pow(2, Double(f - 1))) }) {
            f -= 1
        }
        let unit = pow(2, Double(f))
        return (weights.map { Int64((Double($0) * unit).rounded()) }, f)
    }

    private static func scaled(_ value: Int128, byPowerOfTwo f: Int, layer: Int) throws(FormError) -> Int128 {
        guard f >= 0 else {
            // A negative f (huge weights) makes the scale fractional; the exact scale then
            // cannot feed integer coefficients.
            throw .valuesTooLarge(layer: layer, bits: Double(-f) + 126)
        }
        let (product, overflow) = value.multipliedReportingOverflow(by: Int128(1) << Int128(f))
        guard !overflow else { throw .valuesTooLarge(layer: layer, bits: 127) }
        return product
    }

    static func round(_ value: Float, scale: Double, layer: Int) throws(FormError) -> Int128 {
        let scaled = (Double(value) * scale).rounded()
        guard scaled.isFinite, abs(scaled) < 0x1p120 else { throw .notFinite(layer: layer) }
        return Int128(scaled)
    }

    private static func linear(_ terms: [[(Int32, Int64)]], bias: [Int128], inputCount: Int,
                               kernelOffsets: [Int32] = [], kernelOffsetCount: Int = 0) -> Linear {
        var rowStart = [0]
        for row in terms { rowStart.append(rowStart.last! + row.count) }
        return Linear(rowStart: rowStart, inputs: terms.flatMap { $0.map(\.0) }, weights: terms.flatMap { $0.map(\.1) },
                      bias: bias, inputCount: inputCount, kernelOffsets: kernelOffsets, kernelOffsetCount: kernelOffsetCount)
    }

    /// Each output's interval: the bias plus, for every term, the weight times whichever end
    /// of the input's interval makes it smallest (largest). Rounded outward by 2^-40.
    private static func bounds(_ l: Linear, low: [Double], high: [Double]) -> ([Double], [Double]) {
        var outLow = [Double](repeating: 0, count: l.outputCount), outHigh = outLow
        for o in 0..<l.outputCount {
            var lo = Double(l.bias[o]), hi = lo
            for t in l.rowStart[o]..<l.rowStart[o + 1] {
                let w = Double(l.weights[t]), i = Int(l.inputs[t])
                let a = w * low[i], b = w * high[i]
                lo += min(a, b)
                hi += max(a, b)
            }
            let slack = max(abs(lo), abs(hi)) * 0x1p-40 + 1
            outLow[o] = lo - slack
            outHigh[o] = hi + slack
        }
        return (outLow, outHigh)
    }

    /// Each output's interval through the polynomial: exact for degree ≤ 2 (the ends and the
    /// vertex), otherwise Σ |c_k|·max|x|^k around c_0.
    private static func bounds(_ p: Polynomial, low: [Double], high: [Double]) -> ([Double], [Double]) {
        let c = p.coefficients.map { Double($0) }
        func value(_ x: Double) -> Double { c.reversed().reduce(0) { $0 * x + $1 } }
        var outLow = low, outHigh = high
        for i in low.indices {
            var lo: Double, hi: Double
            if p.degree <= 2 {
                var candidates = [value(low[i]), value(high[i])]
                if p.degree == 2 && c[2] != 0 {
                    let vertex = -c[1] / (2 * c[2])
                    if vertex > low[i] && vertex < high[i] { candidates.append(value(vertex)) }
                }
                lo = candidates.min()!
                hi = candidates.max()!
            } else {
                let m = max(abs(low[i]), abs(high[i]))
                let spread = c.enumerated().dropFirst().reduce(0) { $0 + abs($1.element) * pow(m, Double($1.offset)) }
                lo = c[0] - spread
                hi = c[0] + spread
            }
            let slack = max(abs(lo), abs(hi)) * 0x1p-40 + 1
            outLow[i] = lo - slack
            outHigh[i] = hi + slack
        }
        return (outLow, outHigh)
    }
}
