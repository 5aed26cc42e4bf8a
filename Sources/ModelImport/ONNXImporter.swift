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
/// with Add, BatchNormalization and constant Mul folded into the linear layer before them and
/// the shape arithmetic around Reshape (Shape, Gather, Concat, Unsqueeze) folded to constants.
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
    }

    /// One record's shape (the batch dimension dropped).
    public let inputShape: TensorShape
    /// The layers.
    public let layers: [Layer]
    /// The operators of the file's nodes, in order.
    public let operators: [String]

    /// The network as a model file holds it: a ``PolynomialNetwork`` when it has only
    /// convolutions, dense layers, polynomial activations and average pooling (which becomes a
    /// convolution), so that the RLWE backends run it; otherwise a ``ModelGraph`` whose
    /// integer form is quantized post-training as `quantization` says.
    public func network(quantization: PolynomialQuantization = .init()) throws(ImportError) -> ModelFile.Network {
        guard inputShape.channels == 1, inputShape.height == inputShape.width else {
            throw .malformed("the input must be one square image channel, not \(inputShape)")
        }
        if case .binarize(let threshold)? = layers.first { return .graph(try binarizedGraph(threshold: threshold)) }
        var shape = inputShape
        let polynomialOnly = layers.allSatisfy {
            switch $0 {
            case .relu, .maxPool, .sign: false
            default: true
            }
        }
        if polynomialOnly {
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
                case .relu, .maxPool, .sign, .binarize:
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
        var graphLayers: [GraphLayer] = [.fixedPoint(.init(levels: quantization.inputLevels))]
        // An average pool is a sum pool whose 1/k² the next linear layer's float weights take.
        var pendingScale: Float = 1
        for layer in layers {
            switch layer {
            case .convolution(let c):
                graphLayers.append(.convolution(.init(outputChannels: c.outputChannels, kernelSide: c.kernelSide, stride: c.stride,
                                                      padding: c.padding, weights: c.weights.map { $0 * pendingScale }, bias: c.bias,
                                                      integerWeights: [], integerBias: [])))
                pendingScale = 1
            case .dense(let d):
                graphLayers.append(.dense(.init(outputCount: d.outputCount, weights: d.weights.map { $0 * pendingScale }, bias: d.bias,
                                                integerWeights: [], integerBias: [])))
                pendingScale = 1
            case .relu: graphLayers.append(.relu)
            case .maxPool(let k): graphLayers.append(.pool(.init(kind: .max, window: k)))
            case .averagePool(let k):
                graphLayers.append(.pool(.init(kind: .sum, window: k)))
                pendingScale /= Float(k * k)
            case .polynomial:
                throw .malformed("a network with both ReLU or max pooling and polynomial activations is not supported")
            case .sign, .binarize:
                throw .malformed("sign activations need binarized inputs (Sign of the input minus a threshold, first)")
            }
        }
        guard pendingScale == 1 else { throw .malformed("an average pool must be followed by a linear layer") }
        do {
            let graph = try ModelGraph.quantizing(inputShape: inputShape, layers: graphLayers, decision: .argmax,
                                                  quantization: quantization)
            _ = try graph.shapes()
            return .graph(graph)
        } catch {
            throw .malformed("\(error)")
        }
    }
}

extension ImportedNetwork {
    /// A binarized network (Sign(x − c) → ±1 convolutions → Sign → pooling → a dense layer with
    /// integer weights) as a graph whose integer form is the network itself: nothing is rounded,
    /// so it loses no accuracy, and it runs on the sign-bootstrap path.
    ///
    /// Sign(S + b) of an integer sum S is S > −b where −b is not an integer; at an integer −b it
    /// differs from the graph's sign only when S = −b (ONNX's Sign gives 0 there). An odd number
    /// of ±1 terms makes S odd, so an odd threshold t reads as t + 1 (S > t ⟺ S > t + 1), the
    /// even thresholds `pbs` mode needs.
    func binarizedGraph(threshold: Float) throws(ImportError) -> ModelGraph {
        var graphLayers: [GraphLayer] = [.binarize(.init(thresholds: [threshold]))]
        var pendingScale: Float = 1
        for (index, layer) in layers.enumerated().dropFirst() {
            switch layer {
            case .convolution(let c):
                guard c.weights.allSatisfy({ $0 == 1 || $0 == -1 }), index + 1 < layers.count, layers[index + 1] == .sign, pendingScale == 1 else {
                    throw .malformed("a binarized network's convolutions have ±1 weights, a Sign after them and no pooling before them")
                }
                let oddSums = (c.inputChannels * c.kernelSide * c.kernelSide) % 2 == 1 && c.padding == 0
                let thresholds = c.bias.map { -Double($0) }
                // Where S can equal an integer threshold, ONNX's Sign gives 0, which no ±1 network computes.
                guard oddSums || thresholds.allSatisfy({ $0 != $0.rounded() }) else {
                    throw .malformed("a convolution whose ±1 sums can equal its integer threshold (Sign gives 0 there): "
                        + "use an odd number of terms without padding, or thresholds between integers")
                }
                let integer = thresholds.map { t -> Int in
                    let floor = Int(t.rounded(.down))
                    return oddSums && floor % 2 != 0 ? floor + 1 : floor
                }
                guard integer.allSatisfy({ abs($0) < 1 << 20 }) else { throw .malformed("a convolution bias is beyond ±2^20") }
                graphLayers.append(.convolution(.init(outputChannels: c.outputChannels, kernelSide: c.kernelSide, stride: c.stride,
                                                      padding: c.padding, weights: c.weights, bias: [], integerWeights: c.weights.map { Int64($0) },
                                                      integerBias: [Int128](repeating: 0, count: c.outputChannels))))
                graphLayers.append(.sign(.init(levels: 1, thresholds: thresholds.map { Float($0) }, integerThresholds: integer)))
            case .sign:
                continue
            case .maxPool(let k):
                graphLayers.append(.pool(.init(kind: .max, window: k)))
            case .averagePool(let k):
                graphLayers.append(.pool(.init(kind: .sum, window: k)))
                pendingScale /= Float(k * k)
            case .dense(let d):
                let weights = d.weights.map { $0 * pendingScale }
                guard weights.allSatisfy({ $0 == $0.rounded() && abs($0) < 0x1p20 }), d.bias.allSatisfy({ $0 == $0.rounded() && abs($0) < 0x1p20 }),
                      index == layers.count - 1 else {
                    throw .malformed("a binarized network ends with one dense layer of integer weights and biases (a quantization-aware export)")
                }
                graphLayers.append(.dense(.init(outputCount: d.outputCount, weights: weights, bias: d.bias,
                                                integerWeights: weights.map { Int64($0) }, integerBias: d.bias.map { Int128(Int64($0)) })))
                pendingScale = 1
            default:
                throw .malformed("a binarized network has ±1 convolutions, Sign, pooling and one dense layer, not \(layer)")
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

    init(dims: [Int], values: [Double]) {
        self.dims = dims
        self.values = values
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
            try append(node.opType == "MaxPool" ? .maxPool(window: window) : .averagePool(window: window), output: output,
                   shape: [shape[0], shape[1] / window, shape[2] / window])
        case "BatchNormalization":
            try foldBatchNormalization(node, input: x, output: output)
        case "QuantizeLinear", "DequantizeLinear":
            throw .invalidNode(node: node.label, reason: "quantization of activations (\(node.opType) on the data path) is not supported; "
                + "quantized weights (\(node.opType) on initializers) are")
        default:
            throw .unsupportedOperator(node: node.label, operator: node.opType)
        }
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
        guard let last = lastLinear(input) else {
            throw .invalidNode(node: node.label, reason: "\(node.opType) with constants must follow a convolution or dense layer")
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
