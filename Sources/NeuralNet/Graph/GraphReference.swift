import Foundation

/// The numbers a graph can be evaluated in: its exact integer form (Int128, wrapping, as an
/// RLWE engine computes modulo its plaintext modulus) or its trained float form.
public protocol GraphNumber: Comparable, Sendable {
    static var zero: Self { get }
    static func plus(_ a: Self, _ b: Self) -> Self
    static func times(_ a: Self, _ b: Self) -> Self
    /// +1 or −1: the client's sign encoding, or a sign activation's output.
    static func plusOrMinusOne(_ positive: Bool) -> Self
    /// Pixel x as the fixed-point layer hands it on.
    static func fixedPoint(_ x: Float, levels: Int) -> Self
    /// The layer's parameters in this number type.
    static func weights(_ c: GraphLayer.Convolution) -> (weights: [Self], bias: [Self])
    static func weights(_ d: GraphLayer.Dense) -> (weights: [Self], bias: [Self])
    static func thresholds(_ a: GraphLayer.SignActivation) -> [Self]
    static func coefficients(_ p: GraphLayer.PolynomialActivation) -> [Self]
    static func scales(_ m: GraphLayer.MagnitudeScale) -> (scales: [Self], shifts: [Self])
    static func magnitudes(_ m: GraphLayer.MagnitudeScale, image: ArraySlice<Float>, imageSide: Int, outputSide: Int) -> [Self]
    /// The threshold of a ``ModelGraph/Decision/threshold(integer:float:)`` decision in this form.
    static func threshold(integer: Int, float: Float) -> Self
}

extension Int128: GraphNumber {
    public static func plus(_ a: Int128, _ b: Int128) -> Int128 { a &+ b }
    public static func times(_ a: Int128, _ b: Int128) -> Int128 { a &* b }
    public static func plusOrMinusOne(_ positive: Bool) -> Int128 { positive ? 1 : -1 }
    public static func threshold(integer: Int, float: Float) -> Int128 { Int128(integer) }
    public static func fixedPoint(_ x: Float, levels: Int) -> Int128 {
        let clamped = x.isNaN ? 0 : Swift.min(Swift.max(x, 0), 1)
        return Int128((clamped * Float(levels)).rounded())
    }
    public static func weights(_ c: GraphLayer.Convolution) -> (weights: [Int128], bias: [Int128]) {
        (c.integerWeights.map { Int128($0) }, c.integerBias)
    }
    public static func weights(_ d: GraphLayer.Dense) -> (weights: [Int128], bias: [Int128]) {
        (d.integerWeights.map { Int128($0) }, d.integerBias)
    }
    public static func thresholds(_ a: GraphLayer.SignActivation) -> [Int128] { a.integerThresholds.map { Int128($0) } }
    public static func coefficients(_ p: GraphLayer.PolynomialActivation) -> [Int128] { p.integerCoefficients }
    public static func scales(_ m: GraphLayer.MagnitudeScale) -> (scales: [Int128], shifts: [Int128]) {
        (m.integerScales.map { Int128($0) }, m.integerShifts.map { Int128($0) })
    }
    public static func magnitudes(_ m: GraphLayer.MagnitudeScale, image: ArraySlice<Float>, imageSide: Int, outputSide: Int) -> [Int128] {
        m.quantizedMagnitudes(image, imageSide: imageSide, outputSide: outputSide).map { Int128($0) }
    }
}

extension Float: GraphNumber {
    public static func plus(_ a: Float, _ b: Float) -> Float { a + b }
    public static func times(_ a: Float, _ b: Float) -> Float { a * b }
    public static func plusOrMinusOne(_ positive: Bool) -> Float { positive ? 1 : -1 }
    public static func threshold(integer: Int, float: Float) -> Float { float }
    /// The float network reads the raw pixel.
    public static func fixedPoint(_ x: Float, levels: Int) -> Float { x }
    public static func weights(_ c: GraphLayer.Convolution) -> (weights: [Float], bias: [Float]) {
        (c.weights, c.bias.isEmpty ? [Float](repeating: 0, count: c.outputChannels) : c.bias)
    }
    public static func weights(_ d: GraphLayer.Dense) -> (weights: [Float], bias: [Float]) { (d.weights, d.bias) }
    public static func thresholds(_ a: GraphLayer.SignActivation) -> [Float] { a.thresholds }
    public static func coefficients(_ p: GraphLayer.PolynomialActivation) -> [Float] { p.coefficients }
    public static func scales(_ m: GraphLayer.MagnitudeScale) -> (scales: [Float], shifts: [Float]) { (m.scales, m.shifts) }
    public static func magnitudes(_ m: GraphLayer.MagnitudeScale, image: ArraySlice<Float>, imageSide: Int, outputSide: Int) -> [Float] {
        m.magnitudes(image, imageSide: imageSide, outputSide: outputSide)
    }
}

extension ModelGraph {
    /// The graph with its parameters converted once to `Number`, ready to run record after record.
    public struct Reference<Number: GraphNumber>: Sendable {
        enum Step: Sendable {
            case binarize([Float])
            case fixedPoint(levels: Int)
            case convolution(GraphLayer.Convolution, weights: [Number], bias: [Number], input: TensorShape, output: TensorShape)
            case magnitudeScale(GraphLayer.MagnitudeScale, scales: [Number], shifts: [Number], shape: TensorShape)
            case sign(levels: Int, thresholds: [Number], shape: TensorShape)
            case polynomial([Number])
            case relu
            case pool(GraphLayer.Pool, input: TensorShape)
            case dense(outputs: Int, weights: [Number], bias: [Number])
        }

        let steps: [Step]
        let inputShape: TensorShape
        public let decision: Decision

        /// The reference of a graph that ``ModelGraph/shapes()`` accepts.
        public init(_ graph: ModelGraph) throws(ModelGraphError) {
            let shapes = try graph.shapes()
            inputShape = graph.inputShape
            decision = graph.decision
            steps = graph.layers.enumerated().map { index, layer in
                let input = index == 0 ? graph.inputShape : shapes[index - 1], output = shapes[index]
                switch layer {
                case .binarize(let b): return .binarize(b.thresholds)
                case .fixedPoint(let f): return .fixedPoint(levels: f.levels)
                case .convolution(let c):
                    let (weights, bias) = Number.weights(c)
                    return .convolution(c, weights: weights, bias: bias, input: input, output: output)
                case .magnitudeScale(let m):
                    let (scales, shifts) = Number.scales(m)
                    return .magnitudeScale(m, scales: scales, shifts: shifts, shape: output)
                case .sign(let a): return .sign(levels: a.levels, thresholds: Number.thresholds(a), shape: input)
                case .polynomial(let p): return .polynomial(Number.coefficients(p))
                case .relu: return .relu
                case .pool(let p): return .pool(p, input: input)
                case .dense(let d):
                    let (weights, bias) = Number.weights(d)
                    return .dense(outputs: d.outputCount, weights: weights, bias: bias)
                }
            }
        }

        /// The scores of one record (its values, in the graph's input order).
        public func outputs(_ record: ArraySlice<Float>) -> [Number] { outputs(record, layers: steps.count) }

        /// The client's encoding of one record (the first layer's output): what is encrypted.
        public func clientEncoding(_ record: ArraySlice<Float>) -> [Number] { outputs(record, layers: 1) }

        /// The output of the first `count` layers (what a backend's step that ends there must give).
        // Specialized here: callers in other modules would otherwise run the generic code,
        // one witness call per multiply-add (10-20x slower over a test set).
        @_specialize(where Number == Int128)
        @_specialize(where Number == Float)
        public func outputs(_ record: ArraySlice<Float>, layers count: Int) -> [Number] {
            precondition(record.count == inputShape.count, "expected \(inputShape.count) inputs")
            var x: [Number] = []
            for step in steps.prefix(count) {
                switch step {
                case .binarize(let thresholds):
                    let n = record.count, base = record.startIndex
                    x = (0..<(thresholds.count == 1 ? n : thresholds.count)).map { i in
                        Number.plusOrMinusOne(record[base + i % n] >= thresholds[thresholds.count == 1 ? 0 : i])
                    }
                case .fixedPoint(let levels):
                    x = record.map { Number.fixedPoint($0, levels: levels) }
                case .convolution(let c, let weights, let bias, let input, let output):
                    x = Self.convolve(x, c, weights: weights, bias: bias, input: input, output: output)
                case .magnitudeScale(let m, let scales, let shifts, let shape):
                    let k = Number.magnitudes(m, image: record, imageSide: inputShape.height, outputSide: shape.height)
                    let area = shape.height * shape.width
                    x = x.indices.map { p in
                        Number.plus(Number.times(Number.times(x[p], k[p % area]), scales[p / area]), shifts[p / area])
                    }
                case .sign(let levels, let thresholds, let shape):
                    let area = shape.height * shape.width
                    x = (0..<(shape.channels * levels * area)).map { q in
                        let channel = q / area
                        return Number.plusOrMinusOne(x[(channel / levels) * area + q % area] > thresholds[channel])
                    }
                case .polynomial(let coefficients):
                    x = x.map { value in coefficients.reversed().reduce(Number.zero) { Number.plus(Number.times($0, value), $1) } }
                case .relu:
                    x = x.map { Swift.max($0, .zero) }
                case .pool(let p, let input):
                    x = Self.pool(x, p, input: input)
                case .dense(let outputs, let weights, let bias):
                    let n = x.count
                    x = (0..<outputs).map { k in
                        var total = bias[k]
                        for j in 0..<n { total = Number.plus(total, Number.times(weights[k * n + j], x[j])) }
                        return total
                    }
                }
            }
            return x
        }

        /// The class the scores decide.
        public func decide(_ scores: [Number]) -> Int {
            switch decision {
            case .argmax: return BinarizedCNN.argmax(scores)
            case .threshold(let integer, let float): return scores[0] >= Number.threshold(integer: integer, float: float) ? 1 : 0
            }
        }

        /// Accuracy on `samples` of `data`, on all cores.
        public func accuracy(on data: Dataset, samples: [Int]) -> Double {
            guard !samples.isEmpty else { return 0 }
            let correct = Parallel.sum(count: samples.count) { i in
                decide(outputs(data.sample(samples[i]))) == data.labels[samples[i]] ? 1 : 0
            }
            return Double(correct) / Double(samples.count)
        }

        @_specialize(where Number == Int128)
        @_specialize(where Number == Float)
        static func convolve(_ x: [Number], _ c: GraphLayer.Convolution, weights: [Number], bias: [Number],
                             input: TensorShape, output: TensorShape) -> [Number] {
            let side = output.height, k = c.kernelSide, inSide = input.height
            var out = [Number](repeating: .zero, count: output.count)
            for o in 0..<output.channels {
                for i in 0..<side {
                    for j in 0..<side {
                        var total = bias[o]
                        for ch in 0..<input.channels {
                            for u in 0..<k {
                                let row = i * c.stride + u - c.padding
                                guard row >= 0 && row < inSide else { continue }
                                for v in 0..<k {
                                    let column = j * c.stride + v - c.padding
                                    guard column >= 0 && column < inSide else { continue }
                                    total = Number.plus(total, Number.times(weights[((o * input.channels + ch) * k + u) * k + v],
                                                                            x[(ch * inSide + row) * inSide + column]))
                                }
                            }
                        }
                        out[(o * side + i) * side + j] = total
                    }
                }
            }
            return out
        }

        @_specialize(where Number == Int128)
        @_specialize(where Number == Float)
        static func pool(_ x: [Number], _ p: GraphLayer.Pool, input: TensorShape) -> [Number] {
            (0..<(input.channels * (input.height / p.window) * (input.width / p.window))).map { q in
                let window = input.poolWindow(q, side: p.window), first = x[window.first!]
                return p.kind == .max ? window.dropFirst().reduce(first) { Swift.max($0, x[$1]) }
                    : window.dropFirst().reduce(first) { Number.plus($0, x[$1]) }
            }
        }
    }

    /// The exact integer reference.
    public func integerReference() throws(ModelGraphError) -> Reference<Int128> { try Reference(self) }
    /// The trained float network.
    public func floatReference() throws(ModelGraphError) -> Reference<Float> { try Reference(self) }
}
