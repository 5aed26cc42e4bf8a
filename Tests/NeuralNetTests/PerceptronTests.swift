import Foundation
import Testing
@testable import NeuralNet

struct PerceptronTests {
    static let data = try! Dataset.breastCancer(folder: SharedData.root + "/breast-cancer")

    @Test("training reduces the loss and is reproducible from its seed")
    func trainingReducesLoss() {
        let samples = Array(0..<120)
        var losses: [Double] = []
        let options = BinarizedPerceptron.TrainingOptions(epochs: 30)
        let first = BinarizedPerceptron.train(on: Self.data, samples: samples, options: options) { _, loss, _ in losses.append(loss) }
        #expect(losses.last! < losses.first! * 0.5)
        #expect(BinarizedPerceptron.train(on: Self.data, samples: samples, options: options) == first)
    }

    @Test("the integer reference decides exactly as the float model on every record")
    func integerEqualsFloat() throws {
        let model = try #require(try ModelCatalog.load("paper-perceptron-cancer").perceptron)
        for i in 0..<Self.data.count {
            #expect(model.predictInteger(Self.data.sample(i)) == model.predictFloat(Self.data.sample(i)), "record \(i)")
        }
    }

    @Test("the integer threshold equals a hand computation on a tiny perceptron")
    func handComputedThreshold() {
        // α = 0.5, b = -1.2: α·s + b ≥ 0 ⇔ s ≥ 2.4; with 3 features s is odd, so the threshold is 3.
        #expect(BinarizedPerceptron.threshold(alpha: 0.5, bias: -1.2, inputCount: 3) == 3)
        // With 4 features s is even: the threshold is 4.
        #expect(BinarizedPerceptron.threshold(alpha: 0.5, bias: -1.2, inputCount: 4) == 4)
        let tiny = BinarizedPerceptron(featureThresholds: [0, 0, 0], weightSigns: [1, -1, 1],
                                       alpha: 0.5, bias: -1.2, integerThreshold: 3)
        #expect(tiny.integerScore(tiny.binarize([1, -1, 2])) == 3)
        #expect(tiny.predictInteger([1, -1, 2]) == 1 && tiny.predictFloat([1, -1, 2]) == 1)
        #expect(tiny.integerScore(tiny.binarize([1, 1, 2])) == 1)
        #expect(tiny.predictInteger([1, 1, 2]) == 0 && tiny.predictFloat([1, 1, 2]) == 0)
    }

    @Test("Binactive at several levels is a thermometer code, level by level, and files without levels read as one")
    func thermometerBinarization() throws {
        // Two features, two levels: thresholds (0, 10) at level 1 and (1, 20) at level 2.
        let p = BinarizedPerceptron(featureThresholds: [0, 10, 1, 20], levels: 2, weightSigns: [1, 1, -1, 1],
                                    alpha: 1, bias: 0, integerThreshold: 0)
        #expect(p.featureCount == 2 && p.inputCount == 4 && p.isConsistent)
        #expect(p.binarize([0.5, 25]) == [1, 1, -1, 1])
        #expect(p.binarize([2, 5]) == [1, -1, 1, -1])
        #expect(p.integerScore(p.binarize([2, 5])) == -2)
        let old = Data(#"{"featureThresholds":[0,1],"weightSigns":[1,-1],"alpha":1,"bias":0,"integerThreshold":0}"#.utf8)
        #expect(try JSONDecoder().decode(BinarizedPerceptron.self, from: old).levels == 1)
        var uneven = p
        uneven.levels = 3
        #expect(!uneven.isConsistent)
    }

    @Test("the bundled model's recorded accuracies are what it scores")
    func bundledAccuracies() throws {
        let file = try ModelCatalog.load("paper-perceptron-cancer")
        let test = Dataset.breastCancerSplit().test
        #expect(file.accuracy(on: Self.data, samples: test, integer: false) == file.floatAccuracy)
        #expect(file.accuracy(on: Self.data, samples: test, integer: true) == file.integerAccuracy)
    }

    @Test("model files: round trip, and clear errors for bad ones")
    func modelFiles() throws {
        let folder = scratchFolder()
        let file = try ModelCatalog.load("paper-perceptron-cancer")
        try file.save(path: folder + "/m.json")
        #expect(try ModelCatalog.load(folder + "/m.json") == file)
        try writeFixture(folder + "/bad.json", Data("{nope".utf8))
        #expect(throws: ModelError.malformed(path: folder + "/bad.json", reason: "not valid JSON")) {
            _ = try ModelFile.load(path: folder + "/bad.json")
        }
        try writeFixture(folder + "/new.json", Data("{\"formatVersion\": 9}".utf8))
        #expect(throws: ModelError.unsupportedVersion(path: folder + "/new.json", version: 9)) {
            _ = try ModelFile.load(path: folder + "/new.json")
        }
        try writeFixture(folder + "/partial.json", Data("{\"formatVersion\": 2}".utf8))
        #expect(throws: ModelError.self) { _ = try ModelFile.load(path: folder + "/partial.json") }
        #expect(throws: ModelError.unknownModel("no-such-model")) { _ = try ModelCatalog.load("no-such-model") }
    }
}
