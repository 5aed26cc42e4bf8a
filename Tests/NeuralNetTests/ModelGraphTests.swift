import Foundation
import Testing
@testable import NeuralNet

struct ModelGraphTests {
    static let mnist = BinarizedCNNTests.mnist
    static let cancer = try! Dataset.breastCancer(folder: SharedData.root + "/breast-cancer")

    /// The model kind's own integer scores, the contract before graphs existed.
    static func kindScores(_ file: ModelFile, form: PolynomialIntegerNetwork?, _ record: ArraySlice<Float>) -> [Int128] {
        if let p = file.perceptron { return [Int128(p.integerScore(p.binarize(record)))] }
        if let cnn = file.binarizedCNN { return cnn.integerScores(record).map { Int128($0) } }
        return form!.scores(record)
    }

    @Test("every bundled model as a graph: integer scores equal its own integer reference on every evaluation record, same decisions, float accuracy as recorded",
          arguments: ModelCatalog.names)
    func bundledModelsConvert(name: String) throws {
        let file = try ModelCatalog.load(name)
        let graph = try file.graph()
        let reference = try graph.integerReference()
        // Fashion-MNIST is not on every machine; its models read MNIST's test images, which are
        // inputs of the same shape and range, for the equality.
        let data = file.datasetKind == .breastCancer ? Self.cancer : Self.mnist
        let samples = file.datasetKind == .breastCancer ? file.datasetKind.evaluationSamples(in: data) : Array(0..<data.count)
        let form = try file.polynomialNetwork?.integerForm()
        // One pass: each record's graph scores against the kind's, and its decision against the label.
        let outcomes = Parallel.map(count: samples.count) { i in
            let record = data.sample(samples[i])
            let scores = reference.outputs(record)
            return (equal: scores == Self.kindScores(file, form: form, record), correct: reference.decide(scores) == data.labels[samples[i]])
        }
        let mismatches = outcomes.filter { !$0.equal }.count
        #expect(mismatches == 0, "\(mismatches) of \(samples.count) records score differently")
        #expect(graph.outputCount == (file.perceptron != nil ? 1 : 10))
        guard file.datasetKind != .fashionMNIST else { return }
        #expect(Double(outcomes.filter(\.correct).count) / Double(samples.count) == file.integerAccuracy)
        // The float graph sums α·w_i term by term where the perceptron scales the sum once, and
        // folds g·α into one scale: rounding may move a record that sits on a boundary.
        #expect(abs(try graph.floatReference().accuracy(on: data, samples: samples) - file.floatAccuracy) <= 0.002)
    }

    @Test("a padded, strided convolution, square, sum pool and dense layer computed by hand")
    func handComputed() throws {
        // 3×3 image of 0…8 (fixed point at 8 levels of x/8), one 3×3 filter of ones with padding 1,
        // stride 2: outputs at (0,0), (0,2), (2,0), (2,2) sum the in-image 2×2 corners.
        let image: [Float] = (0..<9).map { Float($0) / 8 }
        let graph = ModelGraph(
            inputShape: TensorShape(channels: 1, height: 3, width: 3),
            layers: [.fixedPoint(.init(levels: 8)),
                     .convolution(.init(outputChannels: 1, kernelSide: 3, stride: 2, padding: 1, weights: .init(repeating: 1, count: 9),
                                        bias: [1], integerWeights: .init(repeating: 1, count: 9), integerBias: [1])),
                     .polynomial(.init(coefficients: [0, 0, 1], integerCoefficients: [0, 0, 1])),
                     .pool(.init(kind: .sum, window: 2)),
                     .dense(.init(outputCount: 2, weights: [1, -1], bias: [0, 0], integerWeights: [1, -1], integerBias: [0, 7]))],
            decision: .argmax)
        // Corners: 0+1+3+4 = 8, 1+2+4+5 = 12, 3+4+6+7 = 20, 4+5+7+8 = 24; +1, squared: 81, 169, 441, 625.
        let total: Int128 = 81 + 169 + 441 + 625
        #expect(try graph.shapes() == [TensorShape(channels: 1, height: 3, width: 3), TensorShape(channels: 1, height: 2, width: 2),
                                       TensorShape(channels: 1, height: 2, width: 2), TensorShape(channels: 1, height: 1, width: 1), .vector(2)])
        let reference = try graph.integerReference()
        #expect(reference.outputs(image[...]) == [total, 7 - total])
        #expect(reference.decide([total, 7 - total]) == 0)
        // The float form reads the raw pixels: (0+1+3+4)/8 + 1 = 2 at the first corner.
        #expect(try graph.floatReference().outputs(image[...])[0] == [2, 2.5, 3.5, 4].reduce(0) { $0 + $1 * $1 })
    }

    @Test("a sign layer at two levels makes two channels per filter; max pooling takes the larger ±1")
    func signLevelsAndMaxPool() throws {
        let graph = ModelGraph(
            inputShape: TensorShape(channels: 1, height: 2, width: 2),
            layers: [.binarize(.init(thresholds: [0.5])),
                     .sign(.init(levels: 2, thresholds: [-2, 0], integerThresholds: [-2, 0])),
                     .pool(.init(kind: .max, window: 2)),
                     .dense(.init(outputCount: 2, weights: [1, 0, 0, 1], bias: [0, 0], integerWeights: [1, 0, 0, 1], integerBias: [0, 0]))],
            decision: .argmax)
        let reference = try graph.integerReference()
        // Signs −1, −1, −1, +1: all above −2 (channel 0: +1); one above 0 (channel 1: max +1).
        #expect(reference.outputs([0, 0.2, 0.4, 0.9]) == [1, 1])
        #expect(reference.outputs([0, 0.2, 0.4, 0.3]) == [1, -1])
    }

    @Test("bad graphs are refused with the first layer at fault and why")
    func invalidGraphs() throws {
        let good = try ModelCatalog.load("fast-mnist").graph()
        #expect(good.isValid)
        func error(_ change: (inout ModelGraph) -> Void) -> ModelGraphError? {
            var graph = good
            change(&graph)
            do { _ = try graph.shapes(); return nil } catch { return error }
        }
        guard case .dense(var dense) = good.layers.last!, case .convolution(var convolution) = good.layers[1] else {
            Issue.record("fast-mnist's graph is not binarize, convolution, …, dense")
            return
        }
        dense.integerWeights.removeLast()
        let last = good.layers.count - 1
        #expect(error { $0.layers[last] = .dense(dense) }
                == .invalidLayer(index: last, kind: "dense", reason: "25919 integer and 25920 float weights where 25920 are needed"))
        convolution.weights[0] = .nan
        #expect(error { $0.layers[1] = .convolution(convolution) }
                == .invalidLayer(index: 1, kind: "convolution", reason: "a parameter is not a finite number"))
        #expect(error { $0.layers.removeFirst() }?.description.contains("the first layer must be the client's encoding") == true)
        #expect(error { $0.layers.insert(.fixedPoint(.init(levels: 3)), at: 2) }
                == .invalidLayer(index: 2, kind: "fixed point", reason: "the client's encoding must be the first layer"))
        #expect(error { $0.decision = .threshold(integer: 0, float: 0) } == .invalidGraph("a threshold decision needs one score, not 10"))
        #expect(error { $0.inputShape = TensorShape(channels: 1 << 20, height: 1 << 20, width: 1) } != nil)
        // Sides whose product would overflow: refused before anything multiplies them.
        #expect(error { $0.inputShape = TensorShape(channels: 1 << 32, height: 1 << 32, width: 1 << 32) } != nil)
        var huge = convolution
        (huge.kernelSide, huge.padding) = (1 << 62 + 1, 1 << 62)
        #expect(error { $0.layers[1] = .convolution(huge) } != nil)
        #expect(error { $0.layers.insert(.pool(.init(kind: .max, window: 40)), at: 3) }
                == .invalidLayer(index: 3, kind: "max pool", reason: "window 40 does not fit 18×12×12"))
        #expect(error { $0.layers = [] } == .invalidGraph("no layers"))
    }

    @Test("graphs round-trip through JSON, 128-bit coefficients included")
    func codable() throws {
        for name in ["paper-perceptron-cancer", "paper-bnn-mnist", "hcnn-mnist"] {
            let graph = try ModelCatalog.load(name).graph()
            let decoded = try JSONDecoder().decode(ModelGraph.self, from: JSONEncoder().encode(graph))
            #expect(decoded == graph)
        }
        let big = GraphLayer.polynomial(.init(coefficients: [0, 1], integerCoefficients: [Int128(1) << 100, -(Int128(1) << 90)]))
        #expect(try JSONDecoder().decode(GraphLayer.self, from: JSONEncoder().encode(big)) == big)
    }

    @Test("format 3: a graph-only model file saves, loads and scores as its source; two networks, a graph in version 2 or a bad layer are refused")
    func graphModelFiles() throws {
        let source = try ModelCatalog.load("fast-mnist")
        var file = source
        file.network = .graph(try source.graph())
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("obscura-graph-\(UInt64.random(in: 0...UInt64.max))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try file.save(path: folder + "/graph.json")
        let loaded = try ModelFile.load(path: folder + "/graph.json")
        #expect(loaded.formatVersion == 3)
        #expect(loaded.network == file.network && loaded.inputSize == source.inputSize)
        #expect(loaded.accuracy(on: Self.mnist, samples: Array(0..<2000), integer: true)
                == source.accuracy(on: Self.mnist, samples: Array(0..<2000), integer: true))

        let json = String(decoding: try Data(contentsOf: URL(fileURLWithPath: folder + "/graph.json")), as: UTF8.self)
        func refusal(_ text: String) -> String? {
            do {
                _ = try ModelFile.decode(Data(text.utf8), path: "f")
                return nil
            } catch {
                return error.description
            }
        }
        #expect(refusal(json.replacingOccurrences(of: "\"formatVersion\":3", with: "\"formatVersion\":2"))
                == "f: not an Obscura model: graphs need format version 3")
        let perceptron = String(decoding: try JSONEncoder().encode(try #require(try ModelCatalog.load("paper-perceptron-cancer").perceptron)),
                                as: UTF8.self)
        #expect(refusal(json.replacingOccurrences(of: "\"graph\":", with: "\"perceptron\":\(perceptron),\"graph\":"))
                == "f: not an Obscura model: needs exactly one of 'perceptron', 'binarizedCNN', 'polynomialNetwork' and 'graph'")
        #expect(refusal(json.replacingOccurrences(of: "\"kernelSide\":5", with: "\"kernelSide\":50"))?
                    .hasPrefix("f: not an Obscura model: layer 1 (convolution): kernel 50") == true)
    }
}
