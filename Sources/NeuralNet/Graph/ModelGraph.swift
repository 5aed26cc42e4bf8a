import Foundation

/// Why a model graph is not a network this build can evaluate: the first layer at fault and why.
public enum ModelGraphError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Layer `index` (0-based, of kind `kind`) does not fit its input or holds bad parameters.
    case invalidLayer(index: Int, kind: String, reason: String)
    /// The graph as a whole: no layers, a bad input shape, or a decision its output cannot feed.
    case invalidGraph(String)

    public var description: String {
        switch self {
        case .invalidLayer(let index, let kind, let reason): "layer \(index) (\(kind)): \(reason)"
        case .invalidGraph(let reason): "model graph: \(reason)"
        }
    }
}

/// A network as a typed sequence of layers over one tensor: what a model file holds, what
/// every backend compiles from, and (``integerOutputs(_:)``) the exact integer reference that
/// encrypted inference must reproduce.
///
/// The client's encoding (``GraphLayer/binarize(_:)`` or ``GraphLayer/fixedPoint(_:)``) is
/// the first layer; everything after it runs on ciphertexts.
public struct ModelGraph: Codable, Sendable, Equatable {
    /// How the final scores decide the class.
    public enum Decision: Codable, Sendable, Equatable {
        /// The first largest score's index.
        case argmax
        /// One score: class 1 where it is at least the threshold (integer or float form), else 0.
        case threshold(integer: Int, float: Float)
    }

    /// The raw record: an image's [1, side, side] or a record's vector of features.
    public var inputShape: TensorShape
    /// The layers, in order.
    public var layers: [GraphLayer]
    /// How scores become a class.
    public var decision: Decision

    public init(inputShape: TensorShape, layers: [GraphLayer], decision: Decision) {
        self.inputShape = inputShape
        self.layers = layers
        self.decision = decision
    }

    /// The shape after each layer (the output's last), or the first layer that does not fit.
    public func shapes() throws(ModelGraphError) -> [TensorShape] {
        guard inputShape.isReasonable else {
            throw .invalidGraph("input shape \(inputShape) is empty or absurd")
        }
        guard !layers.isEmpty else { throw .invalidGraph("no layers") }
        var shape = inputShape, shapes: [TensorShape] = []
        for (index, layer) in layers.enumerated() {
            func fail(_ reason: String) -> ModelGraphError { .invalidLayer(index: index, kind: layer.kind, reason: reason) }
            // The encoding turns the raw record into the integers that are encrypted: exactly once, first.
            guard layer.isClientEncoding == (index == 0) else {
                throw fail(index == 0 ? "the first layer must be the client's encoding (binarize or fixed point)"
                                      : "the client's encoding must be the first layer")
            }
            shape = try Self.outputShape(of: layer, input: shape, previous: index > 0 ? layers[index - 1] : nil,
                                         graphInput: inputShape, fail: fail)
            guard shape.isReasonable else { throw fail("output shape \(shape) is empty or absurd") }
            shapes.append(shape)
        }
        switch decision {
        case .argmax:
            guard shape.count >= 2 else { throw .invalidGraph("argmax over \(shape.count) score") }
        case .threshold:
            guard shape.count == 1 else { throw .invalidGraph("a threshold decision needs one score, not \(shape.count)") }
        }
        return shapes
    }

    /// Whether the graph is valid (``shapes()`` succeeds).
    public var isValid: Bool { (try? shapes()) != nil }

    /// The number of scores.
    public var outputCount: Int { (try? shapes())?.last?.count ?? 0 }

    /// One line per layer: its index, what it does and its output's shape (for `obscura models`).
    public func layerSummaries() throws(ModelGraphError) -> [String] {
        let shapes = try shapes()
        return layers.enumerated().map { index, layer in
            let detail: String = switch layer {
            case .binarize(let b): b.thresholds.count == 1 ? "binarize at one threshold (client)" : "binarize, \(b.thresholds.count / inputShape.count) threshold(s) per input (client)"
            case .fixedPoint(let f): "fixed point, \(f.levels) levels (client)"
            case .convolution(let c): "convolution \(c.outputChannels)×\(c.kernelSide)×\(c.kernelSide), stride \(c.stride), padding \(c.padding)"
            case .magnitudeScale: "× the client's box-filtered magnitudes, α and shift per channel"
            case .sign(let a): a.levels == 1 ? "sign" : "sign at \(a.levels) thresholds per channel"
            case .polynomial(let p): "polynomial of degree \(p.integerCoefficients.count - 1)"
            case .relu: "ReLU"
            case .pool(let p): "\(p.kind.rawValue) pool \(p.window)×\(p.window)"
            case .dense(let d): "dense, \(d.weights.count / d.outputCount) inputs"
            }
            return "\(index): \(detail) → \(shapes[index])"
        }
    }

    private static func outputShape(of layer: GraphLayer, input s: TensorShape, previous: GraphLayer?, graphInput: TensorShape,
                                    fail: (String) -> ModelGraphError) throws(ModelGraphError) -> TensorShape {
        switch layer {
        case .binarize(let b):
            guard !b.thresholds.isEmpty, b.thresholds.allSatisfy(\.isFinite) else { throw fail("thresholds missing or not finite") }
            if b.thresholds.count == 1 || b.thresholds.count == s.count { return s }
            guard b.thresholds.count % s.count == 0 else {
                throw fail("\(b.thresholds.count) thresholds for \(s.count) inputs (need 1 or a multiple)")
            }
            return .vector(b.thresholds.count)
        case .fixedPoint(let f):
            guard (1...255).contains(f.levels) else { throw fail("\(f.levels) levels (1…255)") }
            return s
        case .convolution(let c):
            guard s.height == s.width else { throw fail("input maps are \(s.height)×\(s.width), not square") }
            guard (1...65536).contains(c.outputChannels), (1...4096).contains(c.kernelSide), (1...4096).contains(c.stride),
                  c.padding >= 0, c.padding < c.kernelSide,
                  c.outputChannels <= 1 << 16, c.kernelSide <= s.height + 2 * c.padding else {
                throw fail("kernel \(c.kernelSide), stride \(c.stride), padding \(c.padding), \(c.outputChannels) channels do not fit \(s)")
            }
            let weights = c.outputChannels * s.channels * c.kernelSide * c.kernelSide
            guard c.weights.count == weights, c.integerWeights.count == weights else {
                throw fail("\(c.integerWeights.count) integer and \(c.weights.count) float weights where \(weights) are needed")
            }
            guard c.integerBias.count == c.outputChannels, c.bias.isEmpty || c.bias.count == c.outputChannels else {
                throw fail("biases do not match \(c.outputChannels) output channels")
            }
            try checkFinite(c.weights + c.bias, fail)
            let side = c.outputSide(s.height)
            return TensorShape(channels: c.outputChannels, height: side, width: side)
        case .magnitudeScale(let m):
            guard case .convolution(let c)? = previous, c.kernelSide == m.kernelSide, c.stride == m.stride, c.padding == 0,
                  graphInput.channels == 1, graphInput.height == graphInput.width,
                  c.outputSide(graphInput.height) == s.height else {
                throw fail("must follow an unpadded convolution over the one-channel input image with the same window")
            }
            guard m.pixelDeviation > 0, m.pixelDeviation.isFinite, m.pixelMean.isFinite, (0...16).contains(m.fractionBits) else {
                throw fail("pixel statistics or fraction bits out of range")
            }
            guard [m.scales.count, m.shifts.count, m.integerScales.count, m.integerShifts.count].allSatisfy({ $0 == s.channels }) else {
                throw fail("needs one scale and shift per channel (\(s.channels))")
            }
            try checkFinite(m.scales + m.shifts, fail)
            try checkMagnitude(m.integerScales + m.integerShifts, fail)
            return s
        case .sign(let a):
            guard a.levels >= 1, a.levels <= 64, a.thresholds.count == s.channels * a.levels,
                  a.integerThresholds.count == a.thresholds.count else {
                throw fail("needs \(s.channels) × \(a.levels) thresholds")
            }
            try checkFinite(a.thresholds, fail)
            try checkMagnitude(a.integerThresholds, fail)
            return TensorShape(channels: s.channels * a.levels, height: s.height, width: s.width)
        case .polynomial(let p):
            guard p.integerCoefficients.count >= 2, p.integerCoefficients.count <= 9, p.coefficients.count == p.integerCoefficients.count else {
                throw fail("degree must be 1…8, with as many float as integer coefficients")
            }
            try checkFinite(p.coefficients, fail)
            return s
        case .relu:
            return s
        case .pool(let p):
            guard p.window >= 1, p.window <= s.height, p.window <= s.width, p.window <= 4096 else { throw fail("window \(p.window) does not fit \(s)") }
            return TensorShape(channels: s.channels, height: s.height / p.window, width: s.width / p.window)
        case .dense(let d):
            guard (1...65536).contains(d.outputCount) else { throw fail("\(d.outputCount) outputs") }
            let weights = d.outputCount * s.count
            guard d.weights.count == weights, d.integerWeights.count == weights else {
                throw fail("\(d.integerWeights.count) integer and \(d.weights.count) float weights where \(weights) are needed")
            }
            guard d.integerBias.count == d.outputCount, d.bias.count == d.outputCount else {
                throw fail("biases do not match \(d.outputCount) outputs")
            }
            try checkFinite(d.weights + d.bias, fail)
            return .vector(d.outputCount)
        }
    }

    private static func checkFinite(_ values: [Float], _ fail: (String) -> ModelGraphError) throws(ModelGraphError) {
        guard values.allSatisfy(\.isFinite) else { throw fail("a parameter is not a finite number") }
    }

    /// Integer parameters that multiply ±1 or small values stay far from overflow.
    private static func checkMagnitude(_ values: [Int], _ fail: (String) -> ModelGraphError) throws(ModelGraphError) {
        guard values.allSatisfy({ $0.magnitude < 1 << 40 }) else { throw fail("an integer parameter is beyond 2^40") }
    }
}
