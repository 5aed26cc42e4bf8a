import Foundation
@testable import ModelImport
import InferenceBackend
import NeuralNet
import PrivateInference
import SIMDInference
import SwiftProtobuf
import Testing
import TFHE

/// The networks under `examples/`, trained and exported by PyTorch (scripts/train_onnx_models.py).
enum Examples {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../examples").standardized.path
    static let mnistFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../../../shared/data/mnist").standardized.path

    struct Sidecar: Decodable {
        let test_accuracy: Double
        let first_test_scores: [[Double]]
    }

    static func bytes(_ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(name).onnx")) }
    static func sidecar(_ name: String) throws -> Sidecar {
        try JSONDecoder().decode(Sidecar.self, from: Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(name).json")))
    }
}

struct ONNXImportTests {
    static let test = try! Dataset.mnist(folder: Examples.mnistFolder)
    static let training = try! Dataset.mnist(folder: Examples.mnistFolder, split: "train")

    /// Imports an example as `obscura import` does (2,000 calibration images).
    static func imported(_ name: String) throws -> ModelImporter.Result {
        try ModelImporter.importONNX(path: "\(Examples.folder)/\(name).onnx", name: name, datasetKind: .mnist,
                                     calibration: training.subset(0..<2000), evaluation: test)
    }

    @Test("PyTorch's CryptoNets-style export: read as conv, x², dense, x², dense; float scores as PyTorch's; accuracy as PyTorch's; integer form within 1 point; a polynomial network for the RLWE backends",
          arguments: ["user-cryptonets"])
    func polynomialExport(name: String) throws {
        let sidecar = try Examples.sidecar(name)
        let result = try Self.imported(name)
        #expect(result.imported.layers.map(\.label) == ["conv", "poly", "dense", "poly", "dense"])
        guard case .polynomialNetwork(let network) = result.model.network else {
            Issue.record("not imported as a polynomial network")
            return
        }
        for (index, expected) in sidecar.first_test_scores.enumerated() {
            let scores = network.floatScores(Self.test.sample(index))
            #expect(zip(scores, expected).allSatisfy { abs(Double($0) - $1) <= 1e-3 * max(1, abs($1)) }, "image \(index)")
        }
        #expect(abs(result.model.floatAccuracy - sidecar.test_accuracy) <= 0.0005)
        #expect(result.model.integerAccuracy >= result.model.floatAccuracy - 0.01)
        // The importer's integer form is the graph's: the plan for `pbs` refuses it at the encoding.
        #expect(throws: InferenceError.self) { try InferencePlan(model: result.model) }
    }

    @Test("CryptoDL's kind of network (scripts/train_cryptodl.py): conv → batch norm → average pool → fitted quadratic, twice, then dense; the bundled cryptodl-cnn-mnist reads it with each pool folded into its convolution, the activation as CryptoDL's fit, PyTorch's scores and accuracy, and an integer form within half a point of it and above HCNN's 99%")
    func cryptoDLExport() throws {
        let sidecar = try Examples.sidecar("cryptodl-cnn")
        let imported = try ONNXImporter.read(try Examples.bytes("cryptodl-cnn"))
        #expect(imported.layers.map(\.label) == ["conv", "poly", "conv", "poly", "dense"])
        // The file as read now gives PyTorch's scores; the bundled model is that network.
        guard case .polynomialNetwork(let read) = try imported.network() else {
            Issue.record("not read as a polynomial network")
            return
        }
        for (index, scores) in sidecar.first_test_scores.enumerated() {
            let ours = read.floatScores(Self.test.sample(index))
            #expect(zip(ours, scores).allSatisfy { abs(Double($0) - $1) <= 1e-3 * max(1, abs($1)) }, "image \(index): \(ours)")
        }
        let network = try #require(try ModelCatalog.load("cryptodl-cnn-mnist").polynomialNetwork)
        #expect(network.layers == read.layers)
        guard case .convolution(let first) = network.layers[0], case .convolution(let second) = network.layers[2],
              case .polynomial(let activation) = network.layers[1] else {
            Issue.record("unexpected layers \(network.layers.count)")
            return
        }
        // 5×5 at stride 1, then a 2×2 average: one 6×6 convolution at stride 2.
        #expect([first.kernelSide, first.stride, first.outputSide, second.kernelSide, second.stride, second.outputSide] as [Int] == [6, 2, 12, 6, 2, 4])
        // Exported as c₂·(x + s)² + r: the shift is in the convolution's bias, the rest is CryptoDL's fit.
        let fit = PolynomialNetwork.reluApproximation(degree: 2, bound: 4).map(Double.init)
        let expected = [fit[0] - fit[1] * fit[1] / (4 * fit[2]), 0, fit[2]]
        #expect(activation.count == 3 && zip(activation, expected).allSatisfy { abs(Double($0) - $1) < 1e-5 }, "\(activation) against \(expected)")
        let model = try ModelCatalog.load("cryptodl-cnn-mnist")
        #expect(abs(model.floatAccuracy - sidecar.test_accuracy) <= 0.0005)
        #expect(model.integerAccuracy >= model.floatAccuracy - 0.005 && model.integerAccuracy > 0.99)
    }

    @Test("an average pool after a convolution folds into it: the same outputs on random inputs, at stride 1 and at stride 2 with padding and an odd side; not when the folded weights would be absurd")
    func averagePoolFolds() throws {
        var rng = SplitMix64(seed: 5)
        for (kernel, stride, padding, side) in [(5, 1, 0, 12), (3, 2, 1, 9)] {
            let c = PolynomialNetwork.Convolution(inputChannels: 2, outputChannels: 3, kernelSide: kernel, stride: stride, padding: padding,
                                                  inputSide: side, weights: (0..<(6 * kernel * kernel)).map { _ in Float(rng.next() % 2001) / 1000 - 1 },
                                                  bias: [0.5, -0.25, 0])
            let out = c.outputSide
            let pool = PolynomialNetwork.Convolution(inputChannels: 3, outputChannels: 3, kernelSide: 2, stride: 2, padding: 0, inputSide: out,
                                                     weights: (0..<36).map { ($0 / 4) / 3 == ($0 / 4) % 3 ? 0.25 : 0 }, bias: [0, 0, 0])
            let folded = try #require(GraphWalker.averaged(c, window: 2))
            #expect(folded.outputSide == out / 2)
            let twoLayers = PolynomialNetwork(inputSide: side, layers: [.convolution(c), .convolution(pool)])
            let oneLayer = PolynomialNetwork(inputSide: side, layers: [.convolution(folded)])
            for _ in 0..<5 {
                let image = (0..<(2 * side * side)).map { _ in Float(rng.next() % 1001) / 1000 }[...]
                let (a, b) = (twoLayers.floatScores(image), oneLayer.floatScores(image))
                #expect(a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) < 1e-5 }, "k=\(kernel) s=\(stride)")
            }
        }
        // A hostile size: 256 × 256 planes of 64 × 64 folded weights would be 2^28 of them; the
        // pool then stays a layer of its own (which the lowering refuses, by its own limit).
        let wide = PolynomialNetwork.Convolution(inputChannels: 256, outputChannels: 256, kernelSide: 1, stride: 1, padding: 0, inputSide: 64,
                                                 weights: [Float](repeating: 0, count: 65536), bias: [Float](repeating: 0, count: 256))
        #expect(GraphWalker.averaged(wide, window: 64) == nil)
    }

    /// Imports an example that becomes a graph, checking its layers, PyTorch's scores on the
    /// recorded images (within 10^-3) and its float accuracy (within 0.05 point); nil (with an
    /// issue recorded) when it is not a graph.
    static func importedGraph(_ name: String, layers: [String]) throws -> (ModelImporter.Result, ModelGraph, Examples.Sidecar)? {
        let sidecar = try Examples.sidecar(name)
        let result = try imported(name)
        #expect(result.imported.layers.map(\.label) == layers)
        guard case .graph(let graph) = result.model.network else {
            Issue.record("not imported as a graph")
            return nil
        }
        let float = try graph.floatReference()
        for (index, expected) in sidecar.first_test_scores.enumerated() {
            let scores = float.outputs(test.sample(index))
            #expect(zip(scores, expected).allSatisfy { abs(Double($0) - $1) <= 1e-3 * max(1, abs($1)) }, "image \(index): \(scores)")
        }
        #expect(abs(result.model.floatAccuracy - sidecar.test_accuracy) <= 0.0005)
        return (result, graph, sidecar)
    }

    @Test("PyTorch's float Conv → Relu → MaxPool → Gemm export: read with PyTorch's scores and accuracy, rewritten post-training for sign bootstraps (binarized input, integer conv, ReLU as a few levels, integer dense), its integer form within 1 point of PyTorch's accuracy on the 10,000 test images, and planned for pbs with one bootstrap per neuron and one per pooled level, its answer within 64 KiB")
    func reluExport() throws {
        let sidecar = try Examples.sidecar("user-relu-cnn")
        let result = try Self.imported("user-relu-cnn")
        #expect(result.imported.layers.map(\.label) == ["conv", "relu", "max", "dense"])
        let (convolution, maxPool, dense) = try result.imported.signFormShape()
        let float = try ImportedNetwork.floatGraph(inputShape: result.imported.inputShape, first: .fixedPoint(.init(levels: 255)),
                                                   convolution: convolution, maxPool: maxPool, dense: dense).floatReference()
        for (index, expected) in sidecar.first_test_scores.enumerated() {
            let scores = float.outputs(Self.test.sample(index))
            #expect(zip(scores, expected).allSatisfy { abs(Double($0) - $1) <= 1e-3 * max(1, abs($1)) }, "image \(index): \(scores)")
        }
        #expect(abs(float.accuracy(on: Self.test, samples: Array(0..<Self.test.count)) - sidecar.test_accuracy) <= 0.0005)

        let report = try #require(result.signForm)
        #expect((4...5).contains(report.stages.count) && report.stages[0].accuracy == result.calibrationFloatAccuracy)
        #expect(report.candidates.count == SignFormQuantization.reachCandidates.count * SignFormQuantization.levelCandidates.count
            * SignFormQuantization.clipCandidates.count + SignFormQuantization.denseBitCandidates.count - 1)
        #expect(report.stages.last!.accuracy == report.candidates.first { $0.quantization == report.chosen }!.accuracy)
        #expect(result.model.integerAccuracy >= sidecar.test_accuracy - 0.01, "\(result.model.integerAccuracy)")
        guard case .graph(let graph) = result.model.network else {
            Issue.record("not imported as a graph")
            return
        }
        #expect(graph.layers.map(\.kind) == ["binarize", "convolution", "sign", "max pool", "dense"])
        // The float network's dense layer needs finer weights than int4-128's bootstrap noise
        // decodes: a server serves it (and a client compiles it) on the planner's choice, which
        // decodes it within 64 KiB.
        let plan = try InferencePlan.served(model: result.model)
        #expect(plan.parameters != .integer4Bit128)
        #expect(plan.bootstrapsPerInference == 4 * 26 * 26 + 4 * report.chosen.levels * 13 * 13)
        #expect(plan.failureLog2 < InferencePlan.failureTargetLog2 && plan.resultBytes <= 64 << 10)
    }

    @Test("a float Conv → Relu → MaxPool → Gemm network rewritten for sign bootstraps runs encrypted on the planner's set and decrypts to its integer reference, score for score")
    func signFormRunsEncrypted() throws {
        // A small network with fixed weights, calibrated on records whose labels are its own decisions.
        let side = 10, filters = 3, pooled = 4
        func wave(_ i: Int, _ period: Int) -> Float { Float((i * 37 + 11) % period) / Float(period) - 0.5 }
        // Pixels 0 or 1 and weights in {−0.1, 0, 0.1}: the input and conv rewrites are exact, the
        // ReLU's levels and the dense layer's 8 bits round.
        let convolution = PolynomialNetwork.Convolution(inputChannels: 1, outputChannels: filters, kernelSide: 3, stride: 1, padding: 0,
                                                        inputSide: side, weights: (0..<(filters * 9)).map { Float(($0 * 7) % 3 - 1) / 10 },
                                                        bias: [0.05, -0.1, 0.2])
        let dense = PolynomialNetwork.Dense(inputCount: filters * pooled * pooled, outputCount: 4,
                                            weights: (0..<(4 * filters * pooled * pooled)).map { wave($0, 29) }, bias: [0.1, 0, -0.1, 0.2])
        let network = ImportedNetwork(inputShape: TensorShape(channels: 1, height: side, width: side),
                                      layers: [.convolution(convolution), .relu, .maxPool(window: 2), .dense(dense)],
                                      operators: ["Conv", "Relu", "MaxPool", "Gemm"])
        let area = side * side
        let records: [Float] = (0..<(300 * area)).map { i in
            let r = i / area, p = i % area
            return (r * 131 + p * p * 17) % 23 < 9 ? 1 : 0
        }
        let float = try ImportedNetwork.floatGraph(inputShape: network.inputShape, first: .fixedPoint(.init(levels: 255)),
                                                   convolution: convolution, maxPool: 2, dense: dense).floatReference()
        let labels: [Int] = (0..<300).map { r in float.decide(float.outputs(records[(r * area)..<((r + 1) * area)])) }
        let calibration = try Dataset(name: "synthetic", sampleShape: [1, side, side], features: records, labels: labels,
                                      classNames: ["0", "1", "2", "3"])
        let (graph, report) = try network.signForm(calibration: calibration, allowedLoss: 0.05)
        #expect(report.stages[0].accuracy == 1)
        // The rewrite keeps the network's decisions (a wrong scale, bias or channel order would not).
        #expect(report.stages.last!.accuracy >= 0.9, "\(report.stages)")
        let plan = try ParameterChoice(modelName: "synthetic", graph: graph).plan
        let bootstraps = filters * 8 * 8 + filters * report.chosen.levels * pooled * pooled
        #expect(plan.bootstrapsPerInference == bootstraps)
        var client = InferenceClient(plan: plan)
        let server = try PBSInferenceEvaluator(plan: plan, key: EvaluationKey(client.makeEvaluationKey()))
        for r in [0, 1] {
            let record = calibration.sample(r)
            let answer = try server.answer(upload: try client.encryptForUpload(record))
            #expect(try client.decryptScores(serialized: answer).map { Int128($0) } == plan.reference.outputs(record), "record \(r)")
        }
    }

    @Test("the sign-form rewrite refuses, naming why, what it does not cover: a padded convolution, two ReLUs, a convolution without ReLU, calibration records of another size")
    func signFormRefuses() throws {
        let convolution = PolynomialNetwork.Convolution(inputChannels: 1, outputChannels: 2, kernelSide: 3, stride: 1, padding: 0, inputSide: 6,
                                                        weights: (0..<18).map { Float($0 % 5) - 2 }, bias: [0, 0])
        let dense = PolynomialNetwork.Dense(inputCount: 8, outputCount: 2, weights: (0..<16).map { Float($0 % 3) - 1 }, bias: [0, 0])
        let records = try Dataset(name: "ones", sampleShape: [1, 6, 6], features: [Float](repeating: 1, count: 72), labels: [0, 1],
                                  classNames: ["0", "1"])
        func refusal(_ layers: [ImportedNetwork.Layer], data: Dataset? = nil) -> String {
            let network = ImportedNetwork(inputShape: TensorShape(channels: 1, height: 6, width: 6), layers: layers, operators: [])
            do {
                _ = try network.signForm(calibration: data ?? records, allowedLoss: 0.01)
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        var padded = convolution
        padded.padding = 1
        #expect(refusal([.convolution(padded), .relu, .maxPool(window: 2), .dense(dense)]).contains("without padding"))
        #expect(refusal([.convolution(convolution), .relu, .relu, .maxPool(window: 2), .dense(dense)]).contains("it has relu between them"))
        #expect(refusal([.convolution(convolution), .maxPool(window: 2), .dense(dense)]).contains("no ReLU"))
        let wide = try Dataset(name: "wide", sampleShape: [1, 7, 7], features: [Float](repeating: 1, count: 49), labels: [0], classNames: ["0"])
        #expect(refusal([.convolution(convolution), .relu, .maxPool(window: 2), .dense(dense)], data: wide).contains("49"))
    }

    @Test("the operators the examples do not exercise, in one hand-built graph as older exporters write it (weights also listed as graph inputs): Conv with auto_pad SAME_UPPER, BatchNormalization, Pow(x, 2), AveragePool, Shape → Gather → Unsqueeze → Concat → Reshape, MatMul, Add; the imported network computes the graph's scores")
    func operatorCoverage() throws {
        func tensor(_ name: String, _ dims: [Int], _ values: [Float]) -> Onnx_TensorProto {
            var t = Onnx_TensorProto()
            t.name = name
            t.dims = dims.map(Int64.init)
            t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            t.floatData = values
            return t
        }
        func integers(_ name: String, _ values: [Int64], scalar: Bool = false) -> Onnx_TensorProto {
            var t = Onnx_TensorProto()
            t.name = name
            t.dims = scalar ? [] : [Int64(values.count)]
            t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
            t.int64Data = values
            return t
        }
        func node(_ op: String, _ inputs: [String], _ output: String, ints: [String: [Int64]] = [:], string: (String, String)? = nil) -> Onnx_NodeProto {
            var n = Onnx_NodeProto()
            n.opType = op
            n.name = op
            n.input = inputs
            n.output = [output]
            for (name, values) in ints.sorted(by: { $0.key < $1.key }) {
                var a = Onnx_AttributeProto()
                a.name = name
                a.ints = values
                n.attribute.append(a)
            }
            if let (name, value) = string {
                var a = Onnx_AttributeProto()
                a.name = name
                a.s = Data(value.utf8)
                n.attribute.append(a)
            }
            return n
        }
        func valueInfo(_ name: String, _ dims: [Int]) -> Onnx_ValueInfoProto {
            var v = Onnx_ValueInfoProto()
            v.name = name
            v.type.tensorType.elemType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            v.type.tensorType.shape.dim = dims.map { d in
                var dim = Onnx_TensorShapeProto.Dimension()
                dim.dimValue = Int64(d)
                return dim
            }
            return v
        }
        let convWeights = (0..<18).map { Float(($0 * 5) % 7) / 7 - 0.4 }, convBias: [Float] = [0.1, -0.2]
        let (gamma, beta, mean, variance): ([Float], [Float], [Float], [Float]) = ([1.5, 0.5], [0.1, -0.3], [0.2, -0.1], [0.8, 2e-4])
        let denseWeights = (0..<54).map { Float(($0 * 11) % 13) / 13 - 0.5 }, denseBias: [Float] = [0.3, -0.1, 0.05]
        var graph = Onnx_GraphProto()
        graph.initializer = [tensor("W", [2, 1, 3, 3], convWeights), tensor("B", [2], convBias), tensor("gamma", [2], gamma),
                             tensor("beta", [2], beta), tensor("mean", [2], mean), tensor("var", [2], variance),
                             tensor("two", [], [2]), integers("zero", [0], scalar: true), integers("axes", [0]), integers("minusOne", [-1]),
                             tensor("Wd", [18, 3], denseWeights), tensor("bd", [3], denseBias)]
        graph.input = [valueInfo("x", [1, 1, 6, 6]), valueInfo("W", [2, 1, 3, 3]), valueInfo("Wd", [18, 3])]
        graph.node = [node("Conv", ["x", "W", "B"], "c", ints: ["kernel_shape": [3, 3], "strides": [1, 1]], string: ("auto_pad", "SAME_UPPER")),
                      node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], "n"),
                      node("Pow", ["n", "two"], "p"),
                      node("AveragePool", ["p"], "a", ints: ["kernel_shape": [2, 2], "strides": [2, 2]]),
                      node("Shape", ["a"], "shape"), node("Gather", ["shape", "zero"], "batchScalar"),
                      node("Unsqueeze", ["batchScalar", "axes"], "batch"),
                      node("Concat", ["batch", "minusOne"], "target", ints: ["axis": [0]]),
                      node("Reshape", ["a", "target"], "flat"),
                      node("MatMul", ["flat", "Wd"], "m"), node("Add", ["m", "bd"], "scores")]
        graph.output = [valueInfo("scores", [1, 3])]
        var model = Onnx_ModelProto()
        model.irVersion = 7
        var opset = Onnx_OperatorSetIdProto()
        opset.version = 13
        model.opsetImport = [opset]
        model.graph = graph
        let imported = try ONNXImporter.read(try model.serializedData())
        #expect(imported.layers.map(\.label) == ["conv", "poly", "average", "dense"])
        guard case .polynomialNetwork(let network) = try imported.network() else {
            Issue.record("not imported as a polynomial network")
            return
        }
        // The graph's scores, computed here from its definition (a variance of 2·10^-4 makes
        // BatchNormalization's ε = 10^-5 show).
        let image = (0..<36).map { Float(($0 * 7) % 10) / 9 }
        var activation = [Float](repeating: 0, count: 72)
        for o in 0..<2 {
            for i in 0..<6 {
                for j in 0..<6 {
                    var y = convBias[o]
                    for u in 0..<3 {
                        for v in 0..<3 where (0..<6).contains(i + u - 1) && (0..<6).contains(j + v - 1) {
                            y += convWeights[o * 9 + u * 3 + v] * image[(i + u - 1) * 6 + j + v - 1]
                        }
                    }
                    let normalized = (y - mean[o]) / (variance[o] + 1e-5).squareRoot() * gamma[o] + beta[o]
                    activation[(o * 6 + i) * 6 + j] = normalized * normalized
                }
            }
        }
        let pooled = (0..<18).map { q in
            let o = q / 9, i = (q / 3) % 3, j = q % 3
            return [0, 1, 6, 7].reduce(Float(0)) { $0 + activation[o * 36 + (2 * i) * 6 + 2 * j + $1] } / 4
        }
        let expected = (0..<3).map { k in (0..<18).reduce(denseBias[k]) { $0 + pooled[$1] * denseWeights[$1 * 3 + k] } }
        let scores = network.floatScores(image[...])
        #expect(zip(scores, expected).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) }, "\(scores) vs \(expected)")
    }

    @Test("PyTorch's binarized export (Sign(x − c), ±1 conv with even thresholds, Sign, integer dense): imported with no loss at all, PyTorch's exact scores and accuracy; runs on the sign-bootstrap path, decrypting to the reference")
    func binarizedExport() throws {
        let sidecar = try Examples.sidecar("user-bnn")
        let result = try Self.imported("user-bnn")
        #expect(result.imported.layers.map(\.label) == ["binarize", "conv", "sign", "dense"])
        guard case .graph(let graph) = result.model.network else {
            Issue.record("not imported as a graph")
            return
        }
        let reference = try graph.integerReference()
        for (index, expected) in sidecar.first_test_scores.enumerated() {
            #expect(reference.outputs(Self.test.sample(index)) == expected.map { Int128($0) }, "image \(index)")
        }
        // Nothing is rounded: the integer form is the exported network.
        #expect(result.model.integerAccuracy == sidecar.test_accuracy)
        #expect(result.model.floatAccuracy == sidecar.test_accuracy)
        let plan = try InferencePlan(model: result.model)
        #expect(plan.bootstrapsPerInference == 6 * 12 * 12)
        let secret = SecretKey(parameters: plan.parameters)
        var client = InferenceClient(plan: plan, secretKey: secret)
        let server = try PBSInferenceEvaluator(plan: plan, key: EvaluationKey(client.makeEvaluationKey()))
        let image = Self.test.sample(0)
        let answer = try server.answer(upload: try client.encryptForUpload(image))
        #expect(try client.decryptScores(serialized: answer) == sidecar.first_test_scores[0].map { Int($0) })
    }

    @Test("brevitas's quantization-aware export (Sign(x − c), 2-bit conv, 2-bit ReLU as QuantizeLinear → Clip → DequantizeLinear, max pool, 4-bit dense): the float graph gives PyTorch's scores and accuracy, the integer form loses at most 0.1 point, and pbs plans it as 3 signs per neuron with OR pooling")
    func quantizationAwareExport() throws {
        let layers = ["binarize", "conv", "relu", "quantize", "max", "dense"]
        guard let (result, graph, sidecar) = try Self.importedGraph("user-qat-cnn", layers: layers) else { return }
        let float = try graph.floatReference()
        // Only the dense layer's bias is rounded (to half a unit of 2/(s·u)): the integer form
        // decides as the float network on all but a handful of the 10,000 test images.
        #expect(result.model.integerAccuracy >= sidecar.test_accuracy - 0.001)
        let integer = try graph.integerReference()
        let disagreements = (0..<Self.test.count).filter { i in
            let record = Self.test.sample(i)
            return integer.decide(integer.outputs(record)) != float.decide(float.outputs(record))
        }.count
        #expect(disagreements <= 10, "\(disagreements) of 10,000 decisions differ")
        let plan = try InferencePlan(model: result.model)
        // 8 filters × 13² positions, then one OR per level and pooled position: 24 × 6².
        #expect(plan.bootstrapsPerInference == 8 * 13 * 13 + 24 * 6 * 6)
        #expect(plan.failureLog2 < InferencePlan.failureTargetLog2)
    }

    @Test("one pipeline, every backend: the imported BNN on TFHE pbs and the imported CryptoNets on BFV (latency mode) run through EncryptedInference.roundTrip, keys as bytes, and decrypt to their integer references")
    func onePipeline() throws {
        let images = [Self.test.sample(0), Self.test.sample(1)]
        let plan = try InferencePlan(model: try Self.imported("user-bnn").model)
        var tfhe = InferenceClient(plan: plan)
        let key = try CompressedEvaluationKey(deserializing: tfhe.evaluationKeyBytes(), expecting: plan.parameters)
        let tfheRun = try EncryptedInference.roundTrip(images, client: &tfhe, server: try PBSInferenceEvaluator(plan: plan, key: EvaluationKey(key)))
        #expect(tfheRun.scores == images.map { plan.referenceScores($0).map { Int128($0) } })
        #expect(tfheRun.downloadBytes == 2 * plan.resultBytes)

        let form = try #require(try Self.imported("user-cryptonets").model.polynomialNetwork).integerForm()
        let simdPlan = try SIMDPlan.compile(form, mode: .latency, scheme: .bfv)
        var simd = try SIMDClient(plan: simdPlan)
        let simdRun = try EncryptedInference.roundTrip(images, client: &simd, server: try SIMDEvaluator(plan: simdPlan, keyBytes: simd.evaluationKeyBytes()))
        #expect(simdRun.scores == images.map { form.scores($0) })
    }

    @Test("hostile quantization-aware files give typed errors: a QuantizeLinear on the data without its DequantizeLinear, another scale on the way back, 256 activation levels, an absurd bias")
    func hostileQuantizationAware() throws {
        let model = try Onnx_ModelProto(serializedBytes: try Examples.bytes("user-qat-cnn"))
        func error(_ change: (inout Onnx_ModelProto) -> Void) throws -> String? {
            var copy = model
            change(&copy)
            do {
                _ = try ONNXImporter.read(try copy.serializedData()).network()
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(try error { _ in } == nil)
        let nodes = model.graph.node
        let pool = try #require(nodes.firstIndex { $0.opType == "MaxPool" })
        let dequantize = pool - 1, clip = pool - 2
        #expect(nodes[dequantize].opType == "DequantizeLinear" && nodes[clip].opType == "Clip")
        let skipped = try error { m in
            m.graph.node[pool].input[0] = nodes[clip].output[0]
            m.graph.node.remove(at: dequantize)
        }
        #expect(skipped?.contains("must be followed by DequantizeLinear") == true, "\(String(describing: skipped))")
        let otherScale = try error { $0.graph.node[dequantize].input[1] = nodes.last { $0.opType == "DequantizeLinear" }!.input[1] }
        #expect(otherScale?.contains("another scale") == true, "\(String(describing: otherScale))")
        let wide = try error { m in
            var bound = Onnx_TensorProto()
            bound.name = "wide"
            bound.dataType = Int32(Onnx_TensorProto.DataType.uint8.rawValue)
            bound.rawData = Data([255])
            m.graph.initializer.append(bound)
            m.graph.node[clip].input[2] = "wide"
        }
        #expect(wide?.contains("256 output values") == true, "\(String(describing: wide))")
        let bias = try error { m in
            let index = m.graph.initializer.firstIndex { $0.name == "conv.bias" }!
            m.graph.initializer[index].rawData = Data(repeating: 0x7F, count: 32)
        }
        #expect(bias?.contains("not finite or beyond 10^9") == true, "\(String(describing: bias))")
    }

    @Test("hostile ONNX bytes give typed errors naming the node: truncated, unknown operator, cyclic, absurd shape, absurd weight, a QuantizeLinear without its scale")
    func hostileFiles() throws {
        let bytes = try Examples.bytes("user-relu-cnn")
        let model = try Onnx_ModelProto(serializedBytes: bytes)
        func error(_ change: (inout Onnx_ModelProto) -> Void) throws -> ImportError? {
            var copy = model
            change(&copy)
            let data: Data = try copy.serializedData()
            do {
                _ = try ONNXImporter.read(data)
                return nil
            } catch {
                return error
            }
        }
        #expect(try error { _ in } == nil)
        // Cut anywhere: an error, never a crash (mostly "not a protobuf", else a graph that does not compute its output).
        for cut in [bytes.count / 2, 100, 7] {
            #expect(throws: ImportError.self) { _ = try ONNXImporter.read(bytes.prefix(cut)) }
        }
        let relu = try #require(model.graph.node.firstIndex { $0.opType == "Relu" })
        #expect(try error { $0.graph.node[relu].opType = "Softsign" }
                == .unsupportedOperator(node: model.graph.node[relu].label, operator: "Softsign"))
        let reversed = try error { $0.graph.node.reverse() }
        #expect(reversed?.description.contains("cyclic or out of order") == true, "\(String(describing: reversed))")
        let conv = try #require(model.graph.node.first { $0.opType == "Conv" })
        let weights = try #require(model.graph.initializer.firstIndex { $0.name == conv.input[1] })
        let absurd = try error { $0.graph.initializer[weights].dims = [1 << 40, 1, 3, 3] }
        #expect(absurd?.description.contains("absurd shape") == true, "\(String(describing: absurd))")
        let nan = try error { m in
            var raw = [UInt8](m.graph.initializer[weights].rawData)
            withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { raw.replaceSubrange(0..<4, with: $0) }
            m.graph.initializer[weights].rawData = Data(raw)
        }
        #expect(nan?.description.contains("not finite") == true, "\(String(describing: nan))")
        let conv1 = try #require(model.graph.node.firstIndex { $0.opType == "Conv" })
        #expect(try error { $0.graph.node[conv1].input = [$0.graph.node[conv1].input[0]] }
                == .invalidNode(node: model.graph.node[conv1].label, reason: "Conv needs 2 inputs, not 1"))
        let strided = try error { m in
            var attribute = Onnx_AttributeProto()
            attribute.name = "strides"
            attribute.ints = [Int64.max, Int64.max]
            m.graph.node[conv1].attribute.removeAll { $0.name == "strides" }
            m.graph.node[conv1].attribute.append(attribute)
        }
        #expect(strided?.description.contains("stride") == true, "\(String(describing: strided))")
        // Two branches from one tensor (the ReLU reading the convolution's input): one chain only.
        let branch = try error { $0.graph.node[relu].input = [$0.graph.node[conv1].input[0]] }
        #expect(branch?.description.contains("only one chain") == true, "\(String(describing: branch))")
        let quantized = try error { $0.graph.node[relu].opType = "QuantizeLinear" }
        #expect(quantized?.description.contains("QuantizeLinear needs a scale") == true, "\(String(describing: quantized))")
    }
}
