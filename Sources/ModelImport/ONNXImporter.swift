import Foundation
import NeuralNet
import SwiftProtobuf

/// Why an ONNX file cannot be imported: the node at fault and why, never a crash.
public enum ImportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Not an ONNX model, or a model without the parts an import needs.
    case malformed(String)
    /// An operator this importer does not translate.
    case unsupportedOperator(node: String, operator: String)
    /// A node whose inputs, attributes or shapes do not fit.
    case invalidNode(node: String, reason: String)

    public var description: String {
        switch self {
        case .malformed(let reason): "not an ONNX model this build imports: \(reason)"
        case .unsupportedOperator(let node, let op): "node '\(node)': operator \(op) is not supported"
        case .invalidNode(let node, let reason): "node '\(node)': \(reason)"
        }
    }
}

/// A float network read from an ONNX graph: the layers its data path computes, in order,
/// with Add, BatchNormalization and constant Mul folded into the linear layer before them (a
/// scalar one after a polynomial activation into its coefficients), an average pool right after
/// a convolution folded into it, and the shape arithmetic around Reshape (Shape, Gather,
/// Concat, Unsqueeze) folded to constants.
public struct ImportedNetwork: Sendable {
    /// A layer of the data path.
    public enum Layer: Sendable, Equatable {
        /// Sign(x − threshold) of the raw input: ±1 (the client's encoding).
        case binarize(threshold: Float)
        case convolution(PolynomialNetwork.Convolution)
        case dense(PolynomialNetwork.Dense)
        /// Σ c_k·x^k elementwise (x² from Mul(x, x) or Pow(x, 2)).
        case polynomial([Float])
        case relu
        /// Sign of the previous convolution's output (its bias is the negated threshold).
        case sign
        case maxPool(window: Int)
        case averagePool(window: Int)
        /// QuantizeLinear (→ Clip) → DequantizeLinear on the data: a quantization-aware
        /// network's activation quantization.
        case quantize(ActivationQuantization)
    }

    /// x ↦ (q − z)·s with q = clamp(round(x/s) + z, minimum, maximum), rounding half to even.
    public struct ActivationQuantization: Sendable, Equatable {
        public var scale: Double
        public var zeroPoint: Int
        public var minimum: Int
        public var maximum: Int
    }

    /// One record's shape (the batch dimension dropped).
    public let inputShape: TensorShape
    /// The layers.
    public let layers: [Layer]
    /// The operators of the file's nodes, in order.
    public let operators: [String]

    /// Whether the network is quantization-aware (a binarized input, integer-multiple weights):
    /// its integer form is its own, with nothing to calibrate.
    public var carriesItsIntegers: Bool {
        if case .binarize? = layers.first { true } else { false }
    }

    /// The network as a model file holds it: a ``PolynomialNetwork`` when it has only
    /// convolutions, dense layers, polynomial activations and average pooling (which becomes a
    /// convolution), so that the RLWE backends run it, its integer form quantized as
    /// `quantization` says; a ``ModelGraph`` when it is quantization-aware (binarized input).
    /// A float ReLU network needs calibration records: ``signForm(calibration:allowedLoss:)``.
    public func network(quantization: PolynomialQuantization = .init()) throws(ImportError) -> ModelFile.Network {
        guard inputShape.channels == 1, inputShape.height == inputShape.width else {
            throw .malformed("the input must be one square image channel, not \(inputShape)")
        }
        if case .binarize(let threshold)? = layers.first { return .graph(try binarizedGraph(threshold: threshold)) }
        var shape = inputShape
        if isPolynomial {
            var converted: [PolynomialNetwork.Layer] = []
            for layer in layers {
                switch layer {
                case .convolution(let c):
                    converted.append(.convolution(c))
                    shape = TensorShape(channels: c.outputChannels, height: c.outputSide, width: c.outputSide)
                case .dense(let d):
                    converted.append(.dense(d))
                    shape = .vector(d.outputCount)
                case .polynomial(let coefficients):
                    converted.append(.polynomial(coefficients))
                case .averagePool(let k):
                    // A depthwise average is a convolution whose off-diagonal channels are 0.
                    let c = shape.channels, area = k * k
                    let (product, overflow) = (c * c).multipliedReportingOverflow(by: area)
                    guard c <= 1 << 12, !overflow, product <= ONNXImporter.maxElements else {
                        throw .malformed("an average pool over \(c) channels is too large")
                    }
                    let weights = (0..<(c * c * area)).map { w in (w / area) / c == (w / area) % c ? 1 / Float(area) : 0 }
                    let pool = PolynomialNetwork.Convolution(inputChannels: c, outputChannels: c, kernelSide: k, stride: k, padding: 0,
                                                            inputSide: shape.height, weights: weights, bias: [Float](repeating: 0, count: c))
                    converted.append(.convolution(pool))
                    shape = TensorShape(channels: c, height: pool.outputSide, width: pool.outputSide)
                case .relu, .maxPool, .sign, .binarize, .quantize:
                    preconditionFailure("checked above")
                }
            }
            let network = PolynomialNetwork(inputSide: inputShape.height, layers: converted, quantization: quantization)
            guard network.isConsistent else { throw .malformed("the layers' sizes do not chain") }
            do {
                _ = try network.integerForm()
            } catch {
                throw .malformed("no exact integer form: \(error)")
            }
            return .polynomialNetwork(network)
        }
        throw .malformed("a float network with ReLU or max pooling is quantized for sign bootstraps with calibration records "
            + "(ImportedNetwork.signForm, as `obscura import` does)")
    }

    /// Whether the network has only convolutions, dense layers, polynomial activations and
    /// average pooling: the RLWE backends run it as it is.
    public var isPolynomial: Bool {
        layers.allSatisfy {
            switch $0 {
            case .relu, .maxPool, .sign, .quantize, .binarize: false
            default: true
            }
        }
    }
}

extension ImportedNetwork.Layer {
    /// The layer's kind in a word (descriptions and errors list layers by it).
    public var label: String {
        switch self {
        case .binarize: "binarize"
        case .sign: "sign"
        case .convolution: "conv"
        case .dense: "dense"
        case .polynomial: "poly"
        case .relu: "relu"
        case .maxPool: "max"
        case .averagePool: "average"
        case .quantize: "quantize"
        }
    }
}

extension ImportedNetwork {
    /// A network on binarized inputs, as a graph whose integer form is the network itself, up to
    /// the rounding of the dense layer's bias: Sign(x − c) → convolutions whose weights are
    /// integer multiples of one scale per filter → Sign, or a quantized ReLU (Relu → QDQ, max
    /// pooling on either side) → pooling → a dense layer whose weights are integer multiples of
    /// one scale. It runs on the sign-bootstrap path.
    ///
    /// - Sign(u·S + b) of an integer sum S is S > −b/u where −b/u is not an integer; at an integer
    ///   it differs from the graph's sign only when S = −b/u (ONNX's Sign gives 0 there), which
    ///   the sums' parity may rule out.
    /// - A quantized ReLU q = clamp(round(relu(u·S + b)/s) + z, q₀, q₁) is a thermometer: q ≥ k
    ///   ⟺ u·S + b ≥ (k − z − ½)·s for each level k above the lowest output, one sign per level
    ///   (a tie rounds to the even side). Max pooling commutes with it.
    /// - The dense layer then reads (q − z)·s = s·(q₀ − z + (Σ_k σ_k + L)/2) for the L signs σ_k:
    ///   its integer form is twice its scores over s·u_W, with the constant in the bias.
    func binarizedGraph(threshold: Float) throws(ImportError) -> ModelGraph {
        var graphLayers: [GraphLayer] = [.binarize(.init(thresholds: [threshold]))]
        var pendingScale: Float = 1
        var features: SignFeatures?
        var index = 1
        while index < layers.count {
            switch layers[index] {
            case .convolution(let c):
                guard pendingScale == 1, features == nil else {
                    throw .malformed("a binarized network has one convolution, on the binarized input")
                }
                let area = c.inputChannels * c.kernelSide * c.kernelSide
                var integerWeights: [Int64] = [], units: [Double] = []
                for f in 0..<c.outputChannels {
                    guard let (integers, unit) = Self.integerMultiples(c.weights[(f * area)..<((f + 1) * area)]) else {
                        throw .malformed("convolution filter \(f): its weights are not small integer multiples of one scale "
                            + "(binarized or quantization-aware weights: ±1, or a few bits with one scale per filter)")
                    }
                    integerWeights += integers
                    units.append(unit)
                }
                let activation = try activationAfterConvolution(at: index + 1)
                let graphConvolution = GraphLayer.Convolution(outputChannels: c.outputChannels, kernelSide: c.kernelSide, stride: c.stride,
                                                              padding: c.padding, weights: c.weights, bias: c.bias,
                                                              integerWeights: integerWeights,
                                                              integerBias: [Int128](repeating: 0, count: c.outputChannels))
                // Sums of ±1 times integers have one parity per filter when nothing is padded.
                let parities: [Int]? = c.padding == 0 ? (0..<c.outputChannels).map { f in
                    Int(integerWeights[(f * area)..<((f + 1) * area)].reduce(0, +) & 1)
                } : nil
                var floatThresholds: [Float] = [], integerThresholds: [Int] = []
                switch activation.quantization {
                case nil:
                    for f in 0..<c.outputChannels {
                        let t = -Double(c.bias[f]) / units[f]
                        guard abs(t) < 0x1p40 else { throw .malformed("convolution filter \(f): its threshold is beyond ±2^40") }
                        if t != t.rounded() {
                            integerThresholds.append(Int(t.rounded(.down)))
                        } else if let parities, (Int(t) - parities[f]) & 1 != 0 {
                            integerThresholds.append(Int(t))
                        } else {
                            throw .malformed("convolution filter \(f): its sums can equal its integer threshold \(Int(t)) (Sign gives 0 "
                                + "there): use sums of one parity (an odd number of ±1 terms, no padding) or thresholds between integers")
                        }
                        // The float convolution keeps its bias: its sign's threshold is 0.
                        floatThresholds.append(0)
                    }
                    features = .signs
                case let q?:
                    let lowest = activation.relu ? max(q.minimum, q.zeroPoint) : q.minimum
                    let levels = q.maximum - lowest
                    guard (1...15).contains(levels) else {
                        throw .malformed("a quantized activation has \(levels + 1) output values; sign bootstraps read 2 to 16 (1 to 4 bits)")
                    }
                    for f in 0..<c.outputChannels {
                        for k in (lowest + 1)...q.maximum {
                            let boundary = (Double(k - q.zeroPoint) - 0.5) * q.scale
                            let t = (boundary - Double(c.bias[f])) / units[f]
                            // q ≥ k ⟺ S ≥ t; at an integer t the tie rounds to even: k − z even counts it.
                            let threshold = t != t.rounded() ? t.rounded(.down) : (k - q.zeroPoint) % 2 == 0 ? t - 1 : t
                            guard abs(threshold) < 0x1p40 else { throw .malformed("convolution filter \(f): a threshold is beyond ±2^40") }
                            integerThresholds.append(Int(threshold))
                            floatThresholds.append(Float(boundary))
                        }
                    }
                    features = .quantized(channels: c.outputChannels, levels: levels, scale: q.scale, offset: lowest - q.zeroPoint)
                }
                graphLayers.append(.convolution(graphConvolution))
                graphLayers.append(.sign(.init(levels: integerThresholds.count / c.outputChannels, thresholds: floatThresholds,
                                               integerThresholds: integerThresholds)))
                if let window = activation.maxPool { graphLayers.append(.pool(.init(kind: .max, window: window))) }
                index = activation.next
            case .maxPool(let k):
                graphLayers.append(.pool(.init(kind: .max, window: k)))
                index += 1
            case .averagePool(let k):
                guard case .signs? = features else { throw .malformed("a quantized ReLU is followed by max pooling, not average pooling") }
                graphLayers.append(.pool(.init(kind: .sum, window: k)))
                pendingScale /= Float(k * k)
                index += 1
            case .dense(let d):
                guard let features, index == layers.count - 1 else {
                    throw .malformed("a binarized network ends with one dense layer after its convolution's activation")
                }
                let weights = d.weights.map { $0 * pendingScale }
                guard let (integers, unit) = Self.integerMultiples(weights[...]) else {
                    throw .malformed("the dense layer's weights are not small integer multiples of one scale (a quantization-aware "
                        + "export with one scale for the whole layer)")
                }
                let graphDense = try Self.denseOnSigns(d, weights: weights, integers: integers, unit: unit, features: features)
                graphLayers.append(.dense(graphDense))
                index += 1
            default:
                throw .malformed("a binarized network has integer-weight convolutions, Sign or quantized ReLU, pooling and one "
                    + "dense layer, not \(layers[index])")
            }
        }
        let graph = ModelGraph(inputShape: inputShape, layers: graphLayers, decision: .argmax)
        do {
            _ = try graph.shapes()
        } catch {
            throw .malformed("\(error)")
        }
        return graph
    }

    /// The activation that follows a convolution at `start`: a Sign, or ReLU and QDQ with at most
    /// one max pool among them; `next` is the layer after it.
    func activationAfterConvolution(at start: Int) throws(ImportError) -> (quantization: ActivationQuantization?, relu: Bool,
                                                                          maxPool: Int?, next: Int) {
        if start < layers.count, layers[start] == .sign { return (nil, false, nil, start + 1) }
        var index = start, relu = false, maxPool: Int?, quantization: ActivationQuantization?
        loop: while index < layers.count {
            switch layers[index] {
            case .relu where !relu && quantization == nil: relu = true
            case .maxPool(let k) where maxPool == nil: maxPool = k
            case .quantize(let q) where quantization == nil: quantization = q
            default: break loop
            }
            index += 1
        }
        guard let quantization else {
            throw .malformed("a convolution on binarized inputs is followed by Sign or by a quantized activation (Relu → "
                + "QuantizeLinear → DequantizeLinear): a float activation would need an encrypted table of its own")
        }
        return (quantization, relu, maxPool, index)
    }

    /// What the dense layer of a binarized network reads.
    enum SignFeatures {
        /// The ±1 signs themselves.
        case signs
        /// (q − z)·s with q = `lowest` + the number of the channel's `levels` signs that are +1.
        case quantized(channels: Int, levels: Int, scale: Double, offset: Int)
    }

    /// The dense layer over the sign channels. On signs: integer weights over the unit u, bias
    /// b/u rounded. On quantized features: twice the scores over s·u, each weight repeated for
    /// its channel's L levels (channel c's level k is channel c·L + k), the constant part
    /// Σ_j w_j·(2(q₀ − z) + L) exact in the bias; the float form keeps the network's scores.
    static func denseOnSigns(_ d: PolynomialNetwork.Dense, weights: [Float], integers: [Int64], unit: Double,
                             features: SignFeatures) throws(ImportError) -> GraphLayer.Dense {
        let inputs = d.inputCount
        let rows = (0..<d.outputCount).map { o in (o * inputs)..<((o + 1) * inputs) }
        switch features {
        case .signs:
            let bias = d.bias.map { Double($0) / unit }
            guard bias.allSatisfy({ abs($0) < 0x1p60 }) else { throw .malformed("the dense layer's bias is beyond 2^60 at its integer scale") }
            return .init(outputCount: d.outputCount, weights: weights, bias: d.bias, integerWeights: integers,
                         integerBias: bias.map { Int128($0.rounded()) })
        case .quantized(let channels, let levels, let s, let offset):
            guard inputs % channels == 0 else { throw .malformed("the dense layer reads \(inputs) values, not whole maps of \(channels) channels") }
            let area = inputs / channels, constant = 2 * offset + levels
            func expanded<T>(_ row: ArraySlice<T>) -> [T] {
                (0..<channels).flatMap { c in (0..<levels).flatMap { _ in row[(row.startIndex + c * area)..<(row.startIndex + (c + 1) * area)] } }
            }
            var integerBias: [Int128] = [], floatBias: [Float] = []
            for (o, row) in rows.enumerated() {
                let scaled = 2 * Double(d.bias[o]) / (s * unit)
                guard abs(scaled) < 0x1p60 else { throw .malformed("the dense layer's bias is beyond 2^60 at its integer scale") }
                integerBias.append(Int128(scaled.rounded()) + integers[row].reduce(Int128(0)) { $0 + Int128($1) } * Int128(constant))
                floatBias.append(Float(Double(d.bias[o]) + weights[row].reduce(0.0) { $0 + Double($1) } * s * Double(constant) / 2))
            }
            return .init(outputCount: d.outputCount, weights: rows.flatMap { expanded(weights[$0].map { Float(Double($0) * s / 2) }[...]) },
                         bias: floatBias, integerWeights: rows.flatMap { expanded(integers[$0]) }, integerBias: integerBias)
        }
    }

    /// Values that are integer multiples of one unit, as (integers, unit): the unit is 1 when they
    /// are integers already, otherwise the smallest magnitude over 1…8 or the largest over
    /// 2^(b−1) − 1 for b = 2…16; nil when none fits within 10^-3 or an integer would pass 2^20.
    static func integerMultiples(_ values: ArraySlice<Float>) -> ([Int64], Double)? {
        if values.allSatisfy({ $0 == $0.rounded() && abs($0) < 0x1p20 }) { return (values.map { Int64($0) }, 1) }
        guard let smallest = values.lazy.map({ abs(Double($0)) }).filter({ $0 > 0 }).min() else { return nil }
        let largest = values.lazy.map { abs(Double($0)) }.max()!
        // The smallest value a small multiple of the unit, or the largest the top of a b-bit grid
        // (post-training quantization puts it there; its smallest integer may be large).
        let units = (1...8).map { smallest / Double($0) } + (2...16).map { largest / Double((1 << ($0 - 1)) - 1) }
        for unit in units {
            let ratios = values.map { Double($0) / unit }
            if ratios.allSatisfy({ abs($0 - $0.rounded()) < 1e-3 && abs($0) < 0x1p20 }) { return (ratios.map { Int64($0.rounded()) }, unit) }
        }
        return nil
    }
}

/// Reads ONNX files (protobuf, as exporters such as PyTorch's write them).
public enum ONNXImporter {
    /// The most values a tensor or an activation may hold: far above these networks, far below memory.
    static let maxElements = 1 << 26

    /// The network in an ONNX file's bytes.
    public static func read(_ bytes: Data) throws(ImportError) -> ImportedNetwork {
        let model: Onnx_ModelProto
        do {
            model = try Onnx_ModelProto(serializedBytes: bytes)
        } catch {
            throw .malformed("not a protobuf ModelProto (\(error))")
        }
        guard model.hasGraph, !model.graph.node.isEmpty else { throw .malformed("no graph, or a graph without nodes") }
        var walker = try GraphWalker(model.graph)
        for node in model.graph.node { try walker.visit(node) }
        return try walker.finish()
    }
}

/// A tensor of constants (initializers and what folds from them), as doubles.
struct ConstantTensor {
    var dims: [Int]
    var values: [Double]
    /// The values an 8-bit integer tensor's type holds (a zero point's type sets what
    /// QuantizeLinear saturates to); nil for other types.
    var integerRange: ClosedRange<Double>?

    init(dims: [Int], values: [Double], integerRange: ClosedRange<Double>? = nil) {
        self.dims = dims
        self.values = values
        self.integerRange = integerRange
    }

    init(_ proto: Onnx_TensorProto, node: String) throws(ImportError) {
        let dims = proto.dims.map { Int(clamping: $0) }
        guard dims.allSatisfy({ $0 >= 0 && $0 <= ONNXImporter.maxElements }),
              dims.reduce(1, { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }) <= ONNXImporter.maxElements else {
            throw .invalidNode(node: node, reason: "tensor '\(proto.name)' has an absurd shape \(proto.dims)")
        }
        let count = dims.reduce(1, *)
        let raw = [UInt8](proto.rawData)
        func fromRaw<T>(_ width: Int, _ read: (UnsafeRawBufferPointer, Int) -> T) -> [T]? {
            guard raw.count == count * width else { return nil }
            return raw.withUnsafeBytes { buffer in (0..<count).map { read(buffer, $0 * width) } }
        }
        let values: [Double]?
        switch Onnx_TensorProto.DataType(rawValue: Int(proto.dataType)) {
        case .float:
            values = proto.floatData.isEmpty
                ? fromRaw(4) { Double(Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: UInt32.self)))) }
                : proto.floatData.map(Double.init)
        case .double:
            values = proto.doubleData.isEmpty
                ? fromRaw(8) { Double(bitPattern: UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: UInt64.self))) }
                : proto.doubleData
        case .int64:
            values = proto.int64Data.isEmpty
                ? fromRaw(8) { Double(Int64(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int64.self))) }
                : proto.int64Data.map(Double.init)
        case .int32, .int8, .uint8:
            let width = proto.dataType == Int32(Onnx_TensorProto.DataType.int32.rawValue) ? 4 : 1
            let signed = proto.dataType != Int32(Onnx_TensorProto.DataType.uint8.rawValue)
            values = proto.int32Data.isEmpty
                ? fromRaw(width) { buffer, offset in
                    width == 4 ? Double(Int32(littleEndian: buffer.loadUnaligned(fromByteOffset: offset, as: Int32.self)))
                        : signed ? Double(Int8(bitPattern: buffer[offset])) : Double(buffer[offset])
                }
                : proto.int32Data.map(Double.init)
        default:
            throw .invalidNode(node: node, reason: "tensor '\(proto.name)' has data type \(proto.dataType), not float, double or integer")
        }
        guard let values, values.count == count else {
            throw .invalidNode(node: node, reason: "tensor '\(proto.name)' holds a number of values that does not match its shape \(dims)")
        }
        self.dims = dims
        self.values = values
        switch Onnx_TensorProto.DataType(rawValue: Int(proto.dataType)) {
        case .int8: integerRange = -128...127
        case .uint8: integerRange = 0...255
        default: integerRange = nil
        }
    }

    var count: Int { values.count }
    var floats: [Float] { values.map { Float($0) } }
}

/// Walks an ONNX graph's nodes in order, keeping constants folded and the one data path's shape.
struct GraphWalker {
    enum Value {
        case constant(ConstantTensor)
        /// The data path, its shape per record.
        case data([Int])
    }

    let graph: Onnx_GraphProto
    var values: [String: Value] = [:]
    var layers: [ImportedNetwork.Layer] = []
    /// The data tensor that the last layer wrote (folding an Add or BatchNormalization into it
    /// is only right when it reads exactly that).
    var lastLayerOutput: String?
    let inputShape: TensorShape
    /// Every name some node writes, to tell a cycle (or a graph out of order) from a missing input.
    let produced: Set<String>
    /// The raw input, and the raw input minus a constant (a binarization threshold to come).
    let inputName: String
    var shiftedInput: (name: String, threshold: Double)?
    /// The latest data tensor: the layers form one chain, and each data node must read its end.
    var head: String
    /// A QuantizeLinear on the data, waiting for its (Clip and) DequantizeLinear.
    var pendingQuantization: (name: String, quantization: ImportedNetwork.ActivationQuantization)?

    init(_ graph: Onnx_GraphProto) throws(ImportError) {
        self.graph = graph
        var constants: [String: Value] = [:]
        for initializer in graph.initializer {
            constants[initializer.name] = .constant(try ConstantTensor(initializer, node: "initializer"))
        }
        guard let input = graph.input.first(where: { constants[$0.name] == nil }) else { throw .malformed("no data input") }
        let dims = input.type.tensorType.shape.dim.map { if case .dimValue(let v)? = $0.value { Int(clamping: v) } else { 1 } }
        // [batch, channels, height, width] or [batch, features]; a symbolic batch reads as 1.
        let shape = Array(dims.dropFirst())
        guard [1, 3].contains(shape.count), shape.allSatisfy({ $0 > 0 && $0 <= 4096 }) else {
            throw .malformed("input '\(input.name)' has shape \(dims); expected [batch, channels, height, width] or [batch, features]")
        }
        inputShape = shape.count == 3 ? TensorShape(channels: shape[0], height: shape[1], width: shape[2]) : .vector(shape[0])
        constants[input.name] = .data(shape)
        inputName = input.name
        head = input.name
        values = constants
        produced = Set(graph.node.flatMap(\.output))
    }

    func constant(_ name: String, of node: Onnx_NodeProto) throws(ImportError) -> ConstantTensor {
        guard case .constant(let tensor)? = values[name] else {
            throw .invalidNode(node: node.label, reason: "input '\(name)' must be a constant (an initializer or folded from them)")
        }
        return tensor
    }

    func dataShape(_ name: String, of node: Onnx_NodeProto) throws(ImportError) -> [Int] {
        guard case .data(let shape)? = values[name] else {
            throw .invalidNode(node: node.label, reason: "input '\(name)' must be the network's data")
        }
        return shape
    }

    mutating func visit(_ node: Onnx_NodeProto) throws(ImportError) {
        for input in node.input where !input.isEmpty && values[input] == nil {
            throw produced.contains(input)
                ? .invalidNode(node: node.label, reason: "reads '\(input)' before any node writes it: the graph is cyclic or out of order")
                : .invalidNode(node: node.label, reason: "input '\(input)' is never defined")
        }
        guard let output = node.output.first, !output.isEmpty else { throw .invalidNode(node: node.label, reason: "no output") }
        let dataInputs = node.input.filter { if case .data? = values[$0] { true } else { false } }
        if dataInputs.isEmpty {
            values[output] = .constant(try fold(node))
            return
        }
        let x = dataInputs[0], shape = try dataShape(x, of: node)
        let operands = ["Conv": 2, "Gemm": 2, "MatMul": 2, "Reshape": 2, "Add": 2, "Sub": 2, "Mul": 2, "Pow": 2, "BatchNormalization": 5]
        if let needed = operands[node.opType], node.input.count < needed {
            throw .invalidNode(node: node.label, reason: "\(node.opType) needs \(needed) inputs, not \(node.input.count)")
        }
        guard x == head || node.opType == "Shape" else {
            throw .invalidNode(node: node.label, reason: "reads '\(x)', not the latest data tensor '\(head)': only one chain of layers is supported")
        }
        if let pending = pendingQuantization, pending.name == x, !["Clip", "DequantizeLinear"].contains(node.opType) {
            throw .invalidNode(node: node.label, reason: "a QuantizeLinear on the data must be followed by DequantizeLinear (a Clip between them may narrow its range)")
        }
        if node.opType != "Shape" { head = output }
        if let shifted = shiftedInput, node.input.contains(shifted.name), node.opType != "Sign" {
            throw .invalidNode(node: node.label, reason: "the input minus a constant must feed a Sign (binarization); other input normalization is not supported")
        }
        switch node.opType {
        case "Identity", "Dropout":
            values[output] = .data(shape)
        case "Shape":
            // The one operator on the data path whose result is a constant (batch of 1).
            values[output] = .constant(ConstantTensor(dims: [shape.count + 1], values: ([1] + shape).map(Double.init)))
        case "Flatten", "Reshape", "Squeeze", "Unsqueeze":
            values[output] = .data(try reshaped(node, shape: shape))
        case "Conv":
            try convolution(node, input: x, shape: shape, output: output)
        case "Gemm", "MatMul":
            try dense(node, input: x, shape: shape, output: output)
        case "Add", "Sub":
            if x == inputName && layers.isEmpty {
                // x − c on the raw input: the threshold of a Sign that binarizes it.
                guard node.input[0] == x, let c = try? constant(node.input[1], of: node), c.count == 1 else {
                    throw .invalidNode(node: node.label, reason: "only input minus a scalar (a binarization threshold) is supported on the raw input")
                }
                shiftedInput = (output, node.opType == "Sub" ? c.values[0] : -c.values[0])
                values[output] = .data(shape)
            } else {
                try addConstant(node, input: x, output: output, subtract: node.opType == "Sub")
            }
        case "Sign":
            if let shifted = shiftedInput, shifted.name == x, layers.isEmpty {
                try append(.binarize(threshold: Float(shifted.threshold)), output: output, shape: shape)
            } else if lastLinear(x) != nil, case .convolution? = layers.last {
                try append(.sign, output: output, shape: shape)
            } else {
                throw .invalidNode(node: node.label, reason: "Sign binarizes the input (after subtracting a threshold) or follows a convolution")
            }
        case "Mul":
            if node.input.count == 2 && node.input[0] == node.input[1] {
                try append(.polynomial([0, 0, 1]), output: output, shape: shape)
            } else {
                try scaleByConstant(node, input: x, output: output)
            }
        case "Pow":
            guard node.input.count == 2, try constant(node.input[1], of: node).values == [2] else {
                throw .invalidNode(node: node.label, reason: "only the square (exponent 2) is supported")
            }
            try append(.polynomial([0, 0, 1]), output: output, shape: shape)
        case "Relu":
            try append(.relu, output: output, shape: shape)
        case "MaxPool", "AveragePool":
            let window = try poolWindow(node, shape: shape)
            if node.opType == "AveragePool", let last = lastLinear(x), case .convolution(let c) = layers[last],
               let folded = Self.averaged(c, window: window) {
                layers[last] = .convolution(folded)
                lastLayerOutput = output
                values[output] = .data([shape[0], shape[1] / window, shape[2] / window])
                return
            }
            try append(node.opType == "MaxPool" ? .maxPool(window: window) : .averagePool(window: window), output: output,
                   shape: [shape[0], shape[1] / window, shape[2] / window])
        case "BatchNormalization":
            try foldBatchNormalization(node, input: x, output: output)
        case "QuantizeLinear", "Clip", "DequantizeLinear":
            try quantizeActivation(node, input: x, output: output, shape: shape)
        default:
            throw .unsupportedOperator(node: node.label, operator: node.opType)
        }
    }

    /// QuantizeLinear → (Clip →) DequantizeLinear on the data becomes one ``ImportedNetwork/Layer/quantize(_:)``:
    /// a per-tensor scale and zero point, the range of the zero point's type narrowed by the Clip.
    mutating func quantizeActivation(_ node: Onnx_NodeProto, input: String, output: String, shape: [Int]) throws(ImportError) {
        func scaleAndZero() throws(ImportError) -> (Double, ConstantTensor?) {
            let scale = try constant(node.input[1], of: node)
            let zero = node.input.count > 2 && !node.input[2].isEmpty ? try constant(node.input[2], of: node) : nil
            guard scale.count == 1, scale.values[0] > 0, scale.values[0].isFinite, zero.map({ $0.count == 1 && $0.values[0] == $0.values[0].rounded() }) ?? true else {
                throw .invalidNode(node: node.label, reason: "activations are quantized with one positive scale and one integer zero point")
            }
            return (scale.values[0], zero)
        }
        guard node.opType == "QuantizeLinear" || pendingQuantization?.name == input else {
            throw .invalidNode(node: node.label, reason: "\(node.opType) on the data must follow a QuantizeLinear")
        }
        switch node.opType {
        case "QuantizeLinear":
            guard node.input.count >= 2 else { throw .invalidNode(node: node.label, reason: "QuantizeLinear needs a scale") }
            let (scale, zero) = try scaleAndZero()
            let range = zero?.integerRange ?? (zero == nil ? 0...255 : nil)
            guard let range else { throw .invalidNode(node: node.label, reason: "the zero point must be an 8-bit integer") }
            pendingQuantization = (output, .init(scale: scale, zeroPoint: Int(zero?.values[0] ?? 0), minimum: Int(range.lowerBound),
                                                 maximum: Int(range.upperBound)))
        case "Clip":
            var q = pendingQuantization!.quantization
            let attribute = { (name: String) in node.attribute.first { $0.name == name }.map { Double($0.f) } }
            var bounds: [Double?] = [nil, nil]
            for i in 1..<min(node.input.count, 3) where !node.input[i].isEmpty {
                bounds[i - 1] = try constant(node.input[i], of: node).values.first
            }
            let low = bounds[0] ?? attribute("min"), high = bounds[1] ?? attribute("max")
            // The quantized values are integers: the clip keeps those within its bounds.
            q.minimum = max(q.minimum, Int(min(max((low ?? -1e9).rounded(.up), -1e9), 1e9)))
            q.maximum = min(q.maximum, Int(min(max((high ?? 1e9).rounded(.down), -1e9), 1e9)))
            guard q.minimum < q.maximum else { throw .invalidNode(node: node.label, reason: "the clip leaves fewer than two values") }
            pendingQuantization = (output, q)
        default:
            guard node.input.count >= 2 else { throw .invalidNode(node: node.label, reason: "DequantizeLinear needs a scale") }
            let (scale, zero) = try scaleAndZero(), q = pendingQuantization!.quantization
            guard scale == q.scale, Int(zero?.values[0] ?? 0) == q.zeroPoint else {
                throw .invalidNode(node: node.label, reason: "dequantizes with another scale or zero point than its QuantizeLinear")
            }
            pendingQuantization = nil
            try append(.quantize(q), output: output, shape: shape)
            return
        }
        values[output] = .data(shape)
    }

    mutating func append(_ layer: ImportedNetwork.Layer, output: String, shape: [Int]) throws(ImportError) {
        guard shape.allSatisfy({ $0 > 0 && $0 <= ONNXImporter.maxElements }),
              shape.reduce(1, { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }) <= 1 << 22 else {
            throw .malformed("layer \(layers.count) would hold \(shape) values: empty or absurd")
        }
        layers.append(layer)
        lastLayerOutput = output
        values[output] = .data(shape)
    }

    func finish() throws(ImportError) -> ImportedNetwork {
        guard let output = graph.output.first?.name, output == head, case .data(let shape)? = values[output] else {
            throw .malformed("the graph's output is not computed from its input")
        }
        guard shape.reduce(1, *) >= 2, !layers.isEmpty else { throw .malformed("the output has \(shape) values; a classifier needs two or more") }
        return ImportedNetwork(inputShape: inputShape, layers: layers, operators: graph.node.map(\.opType))
    }

    // MARK: Shapes

    func reshaped(_ node: Onnx_NodeProto, shape: [Int]) throws(ImportError) -> [Int] {
        let count = shape.reduce(1, *)
        switch node.opType {
        case "Flatten":
            guard (node.attribute.first { $0.name == "axis" }?.i ?? 1) == 1 else {
                throw .invalidNode(node: node.label, reason: "Flatten must keep the batch axis (axis 1)")
            }
            return [count]
        case "Reshape":
            let target = try integers(try constant(node.input[1], of: node), node)
            // The batch dimension first (1, 0 for "as is", or −1), then the record's shape.
            guard let first = target.first, [0, 1, -1].contains(first) else {
                throw .invalidNode(node: node.label, reason: "reshape to \(target) changes the batch dimension")
            }
            // Flattening, or keeping the shape: the layers read a record as maps or as a vector.
            let record = Array(target.dropFirst())
            if record == [-1] || record == [count] { return [count] }
            guard record == shape else {
                throw .invalidNode(node: node.label, reason: "reshape \(shape) to \(target): only flattening is supported")
            }
            return record
        default:
            // Squeeze and Unsqueeze of size-1 axes: the values stay in order.
            return shape.filter { $0 != 1 }.isEmpty ? [count] : shape.filter { $0 != 1 }.count == 1 ? [count] : shape
        }
    }

    func ints(_ node: Onnx_NodeProto, _ name: String) -> [Int]? {
        node.attribute.first { $0.name == name }.map { $0.ints.map { Int(clamping: $0) } }
    }

    func poolWindow(_ node: Onnx_NodeProto, shape: [Int]) throws(ImportError) -> Int {
        guard shape.count == 3, let kernel = ints(node, "kernel_shape"), kernel.count == 2, kernel[0] == kernel[1], kernel[0] >= 1,
              kernel[0] <= shape[1], kernel[0] <= shape[2] else {
            throw .invalidNode(node: node.label, reason: "pooling needs a square kernel_shape that fits the \(shape) input")
        }
        let window = kernel[0]
        let autoPad = node.attribute.first { $0.name == "auto_pad" }.map { String(decoding: $0.s, as: UTF8.self) } ?? "NOTSET"
        guard (ints(node, "strides") ?? [1, 1]) == [window, window], (ints(node, "pads") ?? [0, 0, 0, 0]).allSatisfy({ $0 == 0 }),
              (ints(node, "dilations") ?? [1, 1]).allSatisfy({ $0 == 1 }), ["NOTSET", "", "VALID"].contains(autoPad),
              (node.attribute.first { $0.name == "ceil_mode" }?.i ?? 0) == 0 else {
            throw .invalidNode(node: node.label, reason: "pooling windows must not overlap or pad (strides equal to the kernel, no pads)")
        }
        return window
    }

    /// The convolution followed by a `window`² average pool, as one convolution: kernel
    /// k + s(p − 1), stride s·p, W′[a][b] = Σ W[a − s·i][b − s·j] / p² over the window's (i, j).
    /// It reads the same inputs: for a 5×5 kernel at stride 1, 36 products per pooled output
    /// instead of 4·25 (and no pool layer after it). Nil when the folded weights or the work to
    /// make them would be absurd (a hostile file): the pool then stays a layer of its own.
    static func averaged(_ c: PolynomialNetwork.Convolution, window p: Int) -> PolynomialNetwork.Convolution? {
        let (k, s) = (c.kernelSide, c.stride)
        let planes = c.outputChannels.multipliedReportingOverflow(by: c.inputChannels)
        let reach = s.multipliedReportingOverflow(by: p - 1)
        guard !planes.overflow, !reach.overflow, k.addingReportingOverflow(reach.partialValue).overflow == false else { return nil }
        let side = k + reach.partialValue
        let (area, areaOverflow) = side.multipliedReportingOverflow(by: side)
        let (count, countOverflow) = planes.partialValue.multipliedReportingOverflow(by: area)
        // Every weight is added to p² places.
        let (work, workOverflow) = c.weights.count.multipliedReportingOverflow(by: p * p)
        guard !areaOverflow, !countOverflow, !workOverflow, count <= ONNXImporter.maxElements, work <= 1 << 30 else { return nil }
        var weights = [Float](repeating: 0, count: c.outputChannels * c.inputChannels * side * side)
        for plane in 0..<(c.outputChannels * c.inputChannels) {
            for u in 0..<k {
                for v in 0..<k {
                    let w = Double(c.weights[(plane * k + u) * k + v]) / Double(p * p)
                    for i in 0..<p {
                        for j in 0..<p { weights[(plane * side + u + s * i) * side + v + s * j] += Float(w) }
                    }
                }
            }
        }
        return PolynomialNetwork.Convolution(inputChannels: c.inputChannels, outputChannels: c.outputChannels, kernelSide: side,
                                             stride: s * p, padding: c.padding, inputSide: c.inputSide, weights: weights, bias: c.bias)
    }

    // MARK: Linear layers

    mutating func convolution(_ node: Onnx_NodeProto, input: String, shape: [Int], output: String) throws(ImportError) {
        let weights = try constant(node.input[1], of: node)
        guard shape.count == 3, shape[1] == shape[2], weights.dims.count == 4, weights.dims[1] == shape[0], weights.dims[2] == weights.dims[3] else {
            throw .invalidNode(node: node.label, reason: "weights \(weights.dims) do not fit input \(shape) (square maps, group 1)")
        }
        let (outputs, kernel, side) = (weights.dims[0], weights.dims[2], shape[1])
        guard (node.attribute.first { $0.name == "group" }?.i ?? 1) == 1, (ints(node, "dilations") ?? [1, 1]).allSatisfy({ $0 == 1 }) else {
            throw .invalidNode(node: node.label, reason: "grouped or dilated convolutions are not supported")
        }
        let strides = ints(node, "strides") ?? [1, 1]
        guard strides.count == 2, strides[0] == strides[1], strides[0] >= 1 else { throw .invalidNode(node: node.label, reason: "strides \(strides)") }
        let stride = strides[0]
        guard stride <= side else { throw .invalidNode(node: node.label, reason: "stride \(stride) is larger than the \(side)×\(side) input") }
        var padding: Int
        let autoPad = node.attribute.first { $0.name == "auto_pad" }.map { String(decoding: $0.s, as: UTF8.self) } ?? "NOTSET"
        switch autoPad {
        case "NOTSET", "":
            let pads = ints(node, "pads") ?? [0, 0, 0, 0]
            guard pads.count == 4, Set(pads).count == 1 else { throw .invalidNode(node: node.label, reason: "pads \(pads) are not the same on every side") }
            padding = pads[0]
        case "VALID":
            padding = 0
        case "SAME_UPPER", "SAME_LOWER":
            let total = max(0, ((side + stride - 1) / stride - 1) * stride + kernel - side)
            guard total % 2 == 0 else { throw .invalidNode(node: node.label, reason: "auto_pad \(autoPad) pads unevenly here") }
            padding = total / 2
        default:
            throw .invalidNode(node: node.label, reason: "auto_pad \(autoPad)")
        }
        guard padding >= 0, padding < kernel, kernel <= side + 2 * padding else {
            throw .invalidNode(node: node.label, reason: "kernel \(kernel) with padding \(padding) does not fit \(side)×\(side)")
        }
        let bias = node.input.count > 2 && !node.input[2].isEmpty ? try constant(node.input[2], of: node).floats : [Float](repeating: 0, count: outputs)
        guard bias.count == outputs else { throw .invalidNode(node: node.label, reason: "\(bias.count) biases for \(outputs) channels") }
        let c = PolynomialNetwork.Convolution(inputChannels: shape[0], outputChannels: outputs, kernelSide: kernel, stride: stride, padding: padding,
                                              inputSide: side, weights: weights.floats, bias: bias)
        try checkFinite(c.weights + c.bias, node)
        try append(.convolution(c), output: output, shape: [outputs, c.outputSide, c.outputSide])
    }

    mutating func dense(_ node: Onnx_NodeProto, input: String, shape: [Int], output: String) throws(ImportError) {
        guard shape.count == 1 else {
            throw .invalidNode(node: node.label, reason: "a dense layer needs a flat input, not \(shape) (Flatten first)")
        }
        guard node.input[0] == input else { throw .invalidNode(node: node.label, reason: "the data must be the first operand") }
        let b = try constant(node.input[1], of: node)
        let attribute = { (name: String) in node.attribute.first { $0.name == name } }
        let transposed = node.opType == "Gemm" && (attribute("transB")?.i ?? 0) == 1
        guard node.opType == "MatMul" || (attribute("transA")?.i ?? 0) == 0 else { throw .invalidNode(node: node.label, reason: "transA") }
        guard b.dims.count == 2, b.dims[transposed ? 1 : 0] == shape[0] else {
            throw .invalidNode(node: node.label, reason: "weights \(b.dims) do not fit \(shape[0]) inputs")
        }
        let (inputs, outputs) = (shape[0], b.dims[transposed ? 0 : 1])
        let alpha = node.opType == "Gemm" ? Double(attribute("alpha")?.f ?? 1) : 1
        let beta = node.opType == "Gemm" ? Double(attribute("beta")?.f ?? 1) : 1
        let weights = (0..<(outputs * inputs)).map { w in
            let (o, i) = (w / inputs, w % inputs)
            return Float(alpha * b.values[transposed ? o * inputs + i : i * outputs + o])
        }
        var bias = [Float](repeating: 0, count: outputs)
        if node.opType == "Gemm", node.input.count > 2, !node.input[2].isEmpty {
            let c = try constant(node.input[2], of: node)
            guard c.count == outputs || c.count == 1 else { throw .invalidNode(node: node.label, reason: "\(c.count) biases for \(outputs) outputs") }
            bias = (0..<outputs).map { Float(beta * c.values[c.count == 1 ? 0 : $0]) }
        }
        try checkFinite(weights + bias, node)
        try append(.dense(.init(inputCount: inputs, outputCount: outputs, weights: weights, bias: bias)), output: output, shape: [outputs])
    }

    func checkFinite(_ values: [Float], _ node: Onnx_NodeProto) throws(ImportError) {
        guard values.allSatisfy({ $0.isFinite && abs($0) < 1e9 }) else {
            throw .invalidNode(node: node.label, reason: "a weight or bias is not finite or beyond 10^9")
        }
    }

    /// The last layer, if `input` is its output and it is linear.
    func lastLinear(_ input: String) -> Int? {
        guard input == lastLayerOutput, let last = layers.indices.last else { return nil }
        switch layers[last] {
        case .convolution, .dense: return last
        default: return nil
        }
    }

    /// out = w·x + b per output (dense) or channel (convolution), applied to the last layer.
    /// `broadcast`: the ONNX shape of an Add/Sub/Mul constant (nil: one value per channel, BatchNormalization's).
    mutating func affine(_ node: Onnx_NodeProto, input: String, output: String, scale: [Double], shift: [Double],
                         broadcast: [Int]? = nil) throws(ImportError) {
        if input == lastLayerOutput, case .polynomial(let coefficients)? = layers.last {
            // a·p(x) + b is again one polynomial when a and b are scalars: CryptoDL's fitted
            // activations export as c₂·(x + s)² + r, the shift folded into the layer before.
            guard scale.count == 1, shift.count == 1 else {
                throw .invalidNode(node: node.label, reason: "\(node.opType) after a polynomial activation must use one scalar constant")
            }
            var folded = coefficients.map { Float(Double($0) * scale[0]) }
            folded[0] += Float(shift[0])
            try checkFinite(folded, node)
            layers[layers.count - 1] = .polynomial(folded)
            lastLayerOutput = output
            values[output] = values[input]
            return
        }
        guard let last = lastLinear(input) else {
            throw .invalidNode(node: node.label, reason: "\(node.opType) with constants must follow a convolution, a dense layer or a polynomial activation")
        }
        if let dims = broadcast, dims.reduce(1, *) != 1 {
            // ONNX broadcasts from the last axis: per channel of [C, H, W] is [C, 1, 1]; per output of a vector is [n].
            let trimmed = Array(dims.drop(while: { $0 == 1 }))
            let perChannel: Bool
            switch layers[last] {
            case .convolution(let c): perChannel = trimmed == [c.outputChannels, 1, 1]
            case .dense(let d): perChannel = trimmed == [d.outputCount]
            default: perChannel = false
            }
            guard perChannel else { throw .invalidNode(node: node.label, reason: "a constant of shape \(dims) does not broadcast per channel") }
        }
        func pick(_ values: [Double], _ i: Int) -> Double { values.count == 1 ? values[0] : values[i] }
        switch layers[last] {
        case .convolution(var c):
            guard [1, c.outputChannels].contains(scale.count), [1, c.outputChannels].contains(shift.count) else {
                throw .invalidNode(node: node.label, reason: "constants do not broadcast over \(c.outputChannels) channels")
            }
            let per = c.inputChannels * c.kernelSide * c.kernelSide
            c.weights = c.weights.indices.map { Float(Double(c.weights[$0]) * pick(scale, $0 / per)) }
            c.bias = c.bias.indices.map { Float(Double(c.bias[$0]) * pick(scale, $0) + pick(shift, $0)) }
            try checkFinite(c.weights + c.bias, node)
            layers[last] = .convolution(c)
        case .dense(var d):
            guard [1, d.outputCount].contains(scale.count), [1, d.outputCount].contains(shift.count) else {
                throw .invalidNode(node: node.label, reason: "constants do not broadcast over \(d.outputCount) outputs")
            }
            d.weights = d.weights.indices.map { Float(Double(d.weights[$0]) * pick(scale, $0 / d.inputCount)) }
            d.bias = d.bias.indices.map { Float(Double(d.bias[$0]) * pick(scale, $0) + pick(shift, $0)) }
            try checkFinite(d.weights + d.bias, node)
            layers[last] = .dense(d)
        default:
            preconditionFailure("lastLinear returns linear layers")
        }
        lastLayerOutput = output
        values[output] = values[input]
    }

    mutating func addConstant(_ node: Onnx_NodeProto, input: String, output: String, subtract: Bool) throws(ImportError) {
        guard node.input.count == 2, let other = node.input.first(where: { $0 != input }) else {
            throw .invalidNode(node: node.label, reason: "adding the data to itself is not supported")
        }
        guard !subtract || node.input[0] == input else { throw .invalidNode(node: node.label, reason: "constant minus data is not supported") }
        let constant = try constant(other, of: node)
        try affine(node, input: input, output: output, scale: [1], shift: constant.values.map { subtract ? -$0 : $0 }, broadcast: constant.dims)
    }

    mutating func scaleByConstant(_ node: Onnx_NodeProto, input: String, output: String) throws(ImportError) {
        guard node.input.count == 2, let other = node.input.first(where: { $0 != input }) else {
            throw .invalidNode(node: node.label, reason: "Mul needs the data and a constant, or the data twice (its square)")
        }
        let constant = try constant(other, of: node)
        try affine(node, input: input, output: output, scale: constant.values, shift: [0], broadcast: constant.dims)
    }

    mutating func foldBatchNormalization(_ node: Onnx_NodeProto, input: String, output: String) throws(ImportError) {
        guard node.input.count == 5 else { throw .invalidNode(node: node.label, reason: "needs scale, bias, mean and variance") }
        let (gamma, beta, mean, variance) = (try constant(node.input[1], of: node).values, try constant(node.input[2], of: node).values,
                                             try constant(node.input[3], of: node).values, try constant(node.input[4], of: node).values)
        let epsilon = Double(node.attribute.first { $0.name == "epsilon" }?.f ?? 1e-5)
        guard Set([gamma.count, beta.count, mean.count, variance.count]).count == 1, variance.allSatisfy({ $0 + epsilon > 0 }) else {
            throw .invalidNode(node: node.label, reason: "scale, bias, mean and variance must be one per channel, variance ≥ 0")
        }
        let scale = gamma.indices.map { gamma[$0] / (variance[$0] + epsilon).squareRoot() }
        try affine(node, input: input, output: output, scale: scale, shift: scale.indices.map { beta[$0] - mean[$0] * scale[$0] })
    }

    // MARK: Constant folding

    /// A constant's values as integers (shapes, indices), each within ±2^40.
    func integers(_ tensor: ConstantTensor, _ node: Onnx_NodeProto) throws(ImportError) -> [Int] {
        guard tensor.values.allSatisfy({ $0 == $0.rounded() && abs($0) < 0x1p40 }) else {
            throw .invalidNode(node: node.label, reason: "expected integers, found \(tensor.values.prefix(4))")
        }
        return tensor.values.map { Int($0) }
    }

    /// A node all of whose inputs are constants: the shape arithmetic exporters emit around a
    /// Reshape, constants, and dequantized weights.
    func fold(_ node: Onnx_NodeProto) throws(ImportError) -> ConstantTensor {
        let folded = try foldUnbounded(node)
        guard folded.count <= ONNXImporter.maxElements else { throw .invalidNode(node: node.label, reason: "folds to an absurd constant") }
        return folded
    }

    func foldUnbounded(_ node: Onnx_NodeProto) throws(ImportError) -> ConstantTensor {
        let inputs = try node.input.filter { !$0.isEmpty }.map { name throws(ImportError) in try constant(name, of: node) }
        guard node.opType == "Constant" || !inputs.isEmpty else { throw .invalidNode(node: node.label, reason: "no inputs") }
        switch node.opType {
        case "Constant":
            guard let value = node.attribute.first(where: { $0.name == "value" }) else {
                throw .invalidNode(node: node.label, reason: "a Constant needs a 'value' tensor")
            }
            return try ConstantTensor(value.t, node: node.label)
        case "Identity":
            return inputs[0]
        case "Gather":
            guard inputs.count == 2, inputs[0].dims.count <= 1 else { throw .invalidNode(node: node.label, reason: "only 1-D gathers fold") }
            let indices = try integers(inputs[1], node).map { i throws(ImportError) in
                let index = i < 0 ? i + inputs[0].count : i
                guard inputs[0].values.indices.contains(index) else { throw .invalidNode(node: node.label, reason: "index \(i) out of range") }
                return index
            }
            return ConstantTensor(dims: inputs[1].dims, values: indices.map { inputs[0].values[$0] })
        case "Concat":
            let values = inputs.flatMap(\.values)
            return ConstantTensor(dims: [values.count], values: values)
        case "Unsqueeze", "Squeeze", "Reshape", "Flatten":
            return ConstantTensor(dims: [inputs[0].count], values: inputs[0].values)
        case "Cast":
            return inputs[0]
        case "Clip":
            // Opset 11+: bounds as inputs; earlier, as attributes.
            let attribute = { (name: String) in node.attribute.first { $0.name == name }.map { Double($0.f) } }
            let low = inputs.count > 1 ? inputs[1].values.first : attribute("min"), high = inputs.count > 2 ? inputs[2].values.first : attribute("max")
            var clipped = inputs[0]
            clipped.values = clipped.values.map { min(max($0, low ?? -.infinity), high ?? .infinity) }
            return clipped
        case "QuantizeLinear":
            // round(x / scale) + zero point, half to even, saturated to the zero point's type.
            // Per tensor, or per output channel (axis 0) as quantization-aware exporters write filters.
            guard (2...3).contains(inputs.count) else { throw .invalidNode(node: node.label, reason: "needs x, scale and an optional zero point") }
            let (x, scale) = (inputs[0], inputs[1].values)
            let zero = inputs.count == 3 ? inputs[2].values : [0]
            let axis = node.attribute.first { $0.name == "axis" }?.i ?? 1
            guard !scale.isEmpty, scale.allSatisfy({ $0 > 0 }), zero.count == 1 || zero.count == scale.count,
                  scale.count == 1 || (axis == 0 && x.dims.first == scale.count) else {
                throw .invalidNode(node: node.label, reason: "weights are quantized with positive scales per tensor or per output channel (axis 0)")
            }
            let range = inputs.count == 3 ? inputs[2].integerRange ?? -128...127 : 0...255
            let per = x.count / scale.count
            return ConstantTensor(dims: x.dims, values: x.values.indices.map { i in
                let channel = scale.count == 1 ? 0 : i / per
                let q = (x.values[i] / scale[channel]).rounded(.toNearestOrEven) + zero[zero.count == 1 ? 0 : channel]
                return min(max(q, range.lowerBound), range.upperBound)
            }, integerRange: range)
        case "DequantizeLinear":
            // (q − zero point) · scale, per tensor or per output channel (axis 0).
            guard (2...3).contains(inputs.count) else { throw .invalidNode(node: node.label, reason: "needs x, scale and an optional zero point") }
            let (q, scale) = (inputs[0], inputs[1].values)
            let zero = inputs.count == 3 ? inputs[2].values : [0]
            let per = q.count / max(1, scale.count)
            let axis = node.attribute.first { $0.name == "axis" }?.i ?? 1
            guard !scale.isEmpty, zero.count == 1 || zero.count == scale.count,
                  scale.count == 1 || (axis == 0 && q.dims.first == scale.count),
                  (node.attribute.first { $0.name == "block_size" }?.i ?? 0) == 0 else {
                throw .invalidNode(node: node.label, reason: "scale and zero point must be per tensor or per output channel (axis 0)")
            }
            return ConstantTensor(dims: q.dims, values: q.values.indices.map { i in
                let channel = scale.count == 1 ? 0 : i / per
                return (q.values[i] - zero[zero.count == 1 ? 0 : channel]) * scale[channel]
            })
        default:
            throw .unsupportedOperator(node: node.label, operator: node.opType + " (on constants)")
        }
    }
}

extension Onnx_NodeProto {
    /// The node's name, or its operator and first output where it has none.
    var label: String { name.isEmpty ? "\(opType) → \(output.first ?? "?")" : name }
}
