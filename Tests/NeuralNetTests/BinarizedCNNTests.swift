import Foundation
import Testing
@testable import NeuralNet

struct BinarizedCNNTests {
    static let mnist = try! Dataset.mnist(folder: SharedData.root + "/mnist")

    /// A 4×4 image, one 3×3 filter, no pooling, two classes: small enough to compute by hand.
    static func tiny(activation: BinarizedCNN.Activation) -> BinarizedCNN {
        let shape = BinarizedCNN.Shape(imageSide: 4, kernelSide: 3, stride: 1, filterCount: 1, poolSide: 1, classCount: 2)
        let weights: [Float] = [0.5, -0.5, 0.5, -0.5, 0.5, -0.5, 0.5, -0.5, 0.5]
        return BinarizedCNN(shape: shape, activation: activation, pixelMean: 0.5, pixelDeviation: 0.5,
                            filterWeights: weights, thresholds: [0], denseWeights: [1, 0, 0, 0, 0, 0, 0, 1], denseBias: [0, 0],
                            integer: .init(filterSigns: weights.map { $0 >= 0 ? 1 : -1 }, thresholds: [2], alphas: [128],
                                           denseWeights: [1, 0, 0, 0, 0, 0, 0, 1], denseBias: [0, 1]))
    }

    @Test("binary sums, sign activations and scores equal a hand computation")
    func handComputed() {
        let model = Self.tiny(activation: .sign)
        #expect(model.isConsistent)
        // Pixels ≥ 0.5 are +1: a checkerboard of ±1 in the top-left 3×3 window matches the filter.
        let image: [Float] = [1, 0, 1, 0,
                              0, 1, 0, 1,
                              1, 0, 1, 0,
                              0, 0, 0, 0]
        let sums = model.binarySums(model.binarize(image[...]))
        // Window (0,0) agrees on all 9 positions; window (0,1) disagrees on all 9;
        // window (1,0): rows 1-3 = [-1 1 -1; 1 -1 1; -1 -1 -1] against [1 -1 1; -1 1 -1; 1 -1 1] → 8 disagree, 1 agrees;
        // window (1,1): [1 -1 1; -1 1 -1; -1 -1 -1] → 7 agree, 2 disagree.
        #expect(sums == [9, -9, -7, 5])
        // sign(S − 2) → [+1, −1, −1, +1]; score 0 = a[0] = 1, score 1 = a[3] + 1 = 2.
        #expect(model.integerScores(image[...]) == [1, 2])
        #expect(model.predict(image[...], integer: true) == 1)
    }

    @Test("several thresholds per filter give one sign channel each, all read by the dense layer")
    func thresholdChannelsByHand() {
        var model = Self.tiny(activation: .sign)
        model.activationLevels = 3
        model.thresholds = [-4, 0, 6]
        model.integer.thresholds = [-4, 0, 6]
        #expect(!model.isConsistent, "the dense layer still reads one channel")
        // Features: channel k's map (4 positions) at 4k ..< 4k + 4.
        var dense = [Int](repeating: 0, count: 2 * 12)
        dense[0] = 1; dense[11] = 2                     // class 0: ch 0 at (0,0), ch 2 at (1,1)
        dense[12 + 3] = 1; dense[12 + 7] = 1; dense[12 + 11] = 1  // class 1: (1,1) of every channel
        model.integer.denseWeights = dense
        model.denseWeights = dense.map(Float.init)
        #expect(model.isConsistent && model.channelCount == 3 && model.featureCount == 12)
        let image: [Float] = [1, 0, 1, 0,
                              0, 1, 0, 1,
                              1, 0, 1, 0,
                              0, 0, 0, 0]
        // S = [9, −9, −7, 5] (see the hand computation above) against thresholds −4, 0 and 6.
        #expect(model.integerActivations(image[...]) == [1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1, -1])
        // Score 0 = 1 + 2·(−1) = −1; score 1 = 1 + 1 − 1 + bias 1 = 2 (the float form has no bias).
        #expect(model.integerScores(image[...]) == [-1, 2])
        #expect(model.floatScores(image[...]) == [-1, 1])
        model.integer.thresholds = [-4, 0]
        #expect(!model.isConsistent)
    }

    @Test("sum pooling adds each window; max pooling takes its largest value")
    func pooling() {
        var model = Self.tiny(activation: .sign)
        model.shape = .init(imageSide: 4, kernelSide: 3, stride: 1, filterCount: 1, poolSide: 2, pooling: .sum, classCount: 2)
        #expect(model.shape.poolWindow(0) == [0, 1, 2, 3])
        #expect(model.pool([1, -1, -1, 1]) == [0])
        model.shape.pooling = .max
        #expect(model.pool([1, -1, -1, 1]) == [1])
    }

    @Test("scaled ReLU: L = S·K·α in fixed point, then ReLU")
    func scaledReLUByHand() {
        let model = Self.tiny(activation: .scaledReLU)
        let image = [Float](repeating: 1, count: 16)
        // All pixels +1 and |(1 − 0.5)/0.5| = 1, so K = 1 → 64 in fixed point; S = 1 (five +1 weights, four −1).
        #expect(model.quantizedScaleMap(image[...]) == [64, 64, 64, 64])
        #expect(model.integerActivations(image[...]) == [64 * 128, 64 * 128, 64 * 128, 64 * 128])
        // Folded batch norm: a negative scale makes α negative, the shift is added before the ReLU.
        var normalized = model
        normalized.integer.alphas = [-128]
        normalized.integer.activationBiases = [9000]
        #expect(normalized.isConsistent)
        #expect(normalized.integerActivations(image[...]) == [9000 - 64 * 128, 9000 - 64 * 128, 9000 - 64 * 128, 9000 - 64 * 128])
        normalized.integer.activationBiases = [100]
        #expect(normalized.integerActivations(image[...]) == [0, 0, 0, 0])
    }

    @Test("batch norm folds into one scale and shift per filter: γ·(L − μ)/σ + β = g·L + b")
    func batchNormFolding() {
        let layout = ParameterLayout(shape: Self.tiny(activation: .scaledReLU).shape, activation: .scaledReLU)
        var parameters = [Float](repeating: 0, count: layout.count)
        parameters[layout.normalization.lowerBound] = 1.5        // γ
        parameters[layout.normalization.lowerBound + 1] = -0.25  // β
        let statistics = BatchNormStatistics(mean: 2, deviation: 0.5)
        let folded = BatchNormStatistics.fold(parameters: parameters, layout: layout, statistics: [statistics])
        #expect(folded[0].scale == 3 && folded[0].shift == -6.25)
        for value: Float in [-3, 0, 0.5, 7] {
            #expect(abs(folded[0].scale * value + folded[0].shift - (1.5 * statistics.normalize(value) - 0.25)) < 1e-5)
        }
    }

    @Test("dense-layer gradients match finite differences (scaled ReLU, where the loss is smooth in them)")
    func gradientCheck() {
        var model = Self.tiny(activation: .scaledReLU)
        model.denseWeights = [0.3, -0.2, 0.1, 0.4, -0.1, 0.2, 0.05, -0.3]
        model.denseBias = [0.1, -0.1]
        let layout = ParameterLayout(shape: model.shape, activation: .scaledReLU)
        // Batch norm's γ = 1.3 and β = 0.2, normalizing with mean 0.1 and deviation 0.8.
        let parameters = model.filterWeights + [1.3, 0.2] + model.denseWeights + model.denseBias
        let statistics = [BatchNormStatistics(mean: 0.1, deviation: 0.8)]
        let image: [Float] = [0.9, 0.1, 0.8, 0.2, 0.3, 0.7, 0.1, 0.9, 0.6, 0.2, 1, 0, 0.4, 0.5, 0.9, 0.3]
        func loss(_ p: [Float]) -> Float {
            var scratch = [Float](repeating: 0, count: layout.count)
            return ForwardBackward(model: model, parameters: p, layout: layout, denseLevels: 7, statistics: statistics)
                .accumulate(image: image[...], label: 1, into: &scratch).loss
        }
        var gradient = [Float](repeating: 0, count: layout.count)
        _ = ForwardBackward(model: model, parameters: parameters, layout: layout, denseLevels: 7, statistics: statistics)
            .accumulate(image: image[...], label: 1, into: &gradient)
        expectFiniteDifferences(gradient, at: parameters, indices: Array(layout.normalization) + Array(layout.dense) + Array(layout.bias),
                                tolerance: 2e-3, loss: loss)
    }

    @Test("training lowers the loss, is reproducible, and the sign form's integer export matches its QAT forward pass")
    func training() {
        let samples = Array(0..<400)
        var losses: [Double] = []
        let options = BinarizedCNN.TrainingOptions(epochs: 4, learningRate: 0.005, threads: 2)
        let model = BinarizedCNN.train(shape: .init(), activation: .sign, on: Self.mnist, samples: samples, options: options) { _, loss, _ in
            losses.append(loss)
        }
        #expect(losses.last! < losses.first!)
        #expect(model.isConsistent)
        #expect(BinarizedCNN.train(shape: .init(), activation: .sign, on: Self.mnist, samples: samples, options: options) == model)
        #expect(model.accuracy(on: Self.mnist, samples: Array(8000..<8200), integer: true) > 0.5)
    }

    @Test("the bundled MNIST CNNs score their recorded accuracies on the 10,000 test images, and the integer form loses at most 0.5 points to float",
          arguments: [("paper-bnn-mnist", 0.97), ("paper-bnn-sign-mnist", 0.965), ("fast-mnist", 0.97)])
    func bundledModels(name: String, documented: Double) throws {
        let file = try ModelCatalog.load(name)
        let cnn = try #require(file.binarizedCNN)
        #expect(cnn.isConsistent)
        #expect(file.datasetKind == .mnist)
        let split = file.datasetKind.evaluationSamples(in: Self.mnist)
        #expect(split == Array(0..<10000))
        #expect(file.accuracy(on: Self.mnist, samples: split, integer: true) == file.integerAccuracy)
        #expect(file.accuracy(on: Self.mnist, samples: split, integer: false) == file.floatAccuracy)
        // The sign models train quantization-aware, so their integer form may beat the latent floats.
        #expect(file.integerAccuracy >= file.floatAccuracy - 0.005)
        #expect(file.integerAccuracy >= documented)
    }

    @Test("a model file with an inconsistent CNN is refused with a clear error")
    func inconsistentFile() throws {
        var file = try ModelCatalog.load("paper-bnn-sign-mnist")
        var cnn = try #require(file.binarizedCNN)
        cnn.integer.thresholds[0] = 7
        file.network = .binarizedCNN(cnn)
        let path = scratchFolder() + "/odd-threshold.json"
        try file.save(path: path)
        #expect(throws: ModelError.malformed(path: path, reason: "inconsistent binarized CNN parameters")) {
            _ = try ModelFile.load(path: path)
        }
    }
}
