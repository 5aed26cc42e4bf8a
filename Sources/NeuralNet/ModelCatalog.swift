import Foundation

/// The models that ship with Obscura, each reproducible by `obscura train NAME`.
public enum ModelCatalog {
    /// How a bundled model is trained.
    public struct Recipe: Sendable {
        /// Its name.
        public let name: String
        /// Its dataset.
        public let datasetKind: DatasetKind
        /// Its architecture and training settings.
        var architecture: Architecture
    }

    /// The families of bundled models.
    enum Architecture: Sendable {
        /// The paper's binarized perceptron.
        case perceptron
        /// A binarized CNN.
        case binarizedCNN(BinarizedCNN.Shape, BinarizedCNN.Activation, BinarizedCNN.TrainingOptions)
        /// A polynomial network (CryptoNets' or HCNN's topology) with its activation.
        case polynomial(PolynomialTopology, activation: [Float], BinarizedCNN.TrainingOptions)
        /// A network trained outside Obscura (batch normalization and augmentation need a
        /// framework) and imported from ONNX: `obscura train` re-imports the file.
        case imported(ImportedSource)

        /// The same with the given epochs and seed, where set.
        func overriding(epochs: Int?, seed: UInt64?) -> Architecture {
            func apply(_ options: BinarizedCNN.TrainingOptions) -> BinarizedCNN.TrainingOptions {
                var options = options
                if let epochs { options.epochs = epochs }
                if let seed { options.seed = seed }
                return options
            }
            switch self {
            case .perceptron, .imported: return self
            case .binarizedCNN(let shape, let activation, let options): return .binarizedCNN(shape, activation, apply(options))
            case .polynomial(let topology, let activation, let options): return .polynomial(topology, activation: activation, apply(options))
            }
        }
    }

    /// Every bundled model's recipe.
    /// (The perceptron's training has its own options and ignores `epochs` and `seed` overrides.)
    public static let recipes: [Recipe] = [
        Recipe(name: "paper-perceptron-cancer", datasetKind: .breastCancer, architecture: .perceptron),
        Recipe(name: "paper-bnn-mnist", datasetKind: .mnist, architecture: .binarizedCNN(.init(), .scaledReLU, .init(epochs: 20, maxShift: 1))),
        Recipe(name: "paper-bnn-sign-mnist", datasetKind: .mnist, architecture: .binarizedCNN(signShape, .sign, .init(epochs: 20, learningRate: 0.002, denseLevels: 3, maxShift: 1, activationLevels: 3))),
        Recipe(name: "paper-bnn-fashion", datasetKind: .fashionMNIST, architecture: .binarizedCNN(.init(), .scaledReLU, .init(epochs: 20, maxShift: 1))),
        Recipe(name: "paper-bnn-sign-fashion", datasetKind: .fashionMNIST, architecture: .binarizedCNN(.init(), .sign, .init(epochs: 20, learningRate: 0.002, maxShift: 0))),
        // Ours: stride 2 and no pooling, 6·12·12 = 864 sign bootstraps (the paper's topology needs 2,160).
        Recipe(name: "fast-mnist", datasetKind: .mnist, architecture: .binarizedCNN(fastShape, .sign, .init(epochs: 20, learningRate: 0.002, maxShift: 1, activationLevels: 3))),
        Recipe(name: "fast-fashion", datasetKind: .fashionMNIST, architecture: .binarizedCNN(fastShape, .sign, .init(epochs: 20, learningRate: 0.002, maxShift: 0))),
        Recipe(name: "cryptonets-mnist", datasetKind: .mnist,
               architecture: .polynomial(.cryptoNets, activation: [0, 0, 1], .init(epochs: 10, learningRate: 0.001, batchSize: 64, maxShift: 1))),
        Recipe(name: "cryptonets-fashion", datasetKind: .fashionMNIST,
               architecture: .polynomial(.cryptoNets, activation: [0, 0, 1], .init(epochs: 10, learningRate: 0.001, batchSize: 64, maxShift: 1))),
        Recipe(name: "cryptodl-mnist", datasetKind: .mnist,
               architecture: .polynomial(.cryptoNets, activation: cryptoDLActivation, .init(epochs: 10, learningRate: 0.001, batchSize: 64, maxShift: 1))),
        Recipe(name: "cryptodl-fashion", datasetKind: .fashionMNIST,
               architecture: .polynomial(.cryptoNets, activation: cryptoDLActivation, .init(epochs: 10, learningRate: 0.001, batchSize: 64, maxShift: 1))),
        Recipe(name: "hcnn-mnist", datasetKind: .mnist,
               architecture: .polynomial(.hcnn, activation: [0, 0, 1], .init(epochs: 10, learningRate: 0.001, batchSize: 64, maxShift: 1))),
        // CryptoDL's kind of network: two convolutions, each with batch normalization (folded),
        // the fitted quadratic and average pooling.
        Recipe(name: "cryptodl-cnn-mnist", datasetKind: .mnist,
               architecture: .imported(.init(onnx: "examples/cryptodl-cnn.onnx",
                                             trainingCommand: "scripts/train_cryptodl.py --epochs 30 --seed 0 --distill teacher.pt"))),
    ]

    /// CryptoDL's activation: the degree-2 least-squares fit of ReLU on [-4, 4].
    static let cryptoDLActivation = PolynomialNetwork.reluApproximation(degree: 2, bound: 4)

    /// The paper's topology for sign activations: sum pooling is linear, so free when encrypted,
    /// where max pooling costs a bootstrap per feature and threshold.
    static let signShape = BinarizedCNN.Shape(pooling: .sum)

    /// The TFHE-friendly topology of the fast models.
    static let fastShape = BinarizedCNN.Shape(stride: 2, filterCount: 6, poolSide: 1)

    /// Where an imported bundled model comes from: its ONNX file and the command that trains it,
    /// both relative to the repository root.
    public struct ImportedSource: Sendable {
        public let onnx: String
        public let trainingCommand: String
    }

    /// Bundled model names.
    public static var names: [String] { recipes.map(\.name) }

    /// A bundled model by name, or a model file by path.
    public static func load(_ nameOrPath: String) throws(ModelError) -> ModelFile {
        if names.contains(nameOrPath) {
            guard let url = Bundle.module.url(forResource: nameOrPath, withExtension: "json", subdirectory: "Models") else {
                throw .unreadable(path: "bundled \(nameOrPath).json")
            }
            return try ModelFile.load(path: url.path)
        }
        guard FileManager.default.fileExists(atPath: nameOrPath) else { throw .unknownModel(nameOrPath) }
        return try ModelFile.load(path: nameOrPath)
    }

    /// Trains a bundled model from its dataset folder with its fixed seed and split; `epochs` and
    /// `seed` replace the recipe's (the bundled files use the recipe's own). `progress` receives
    /// (epoch, mean loss, training accuracy); `log` receives choices made on the way (the
    /// perceptron's cross-validated levels).
    public static func train(_ name: String, dataFolder: String, epochs: Int? = nil, seed: UInt64? = nil,
                             log: (String) -> Void = { _ in },
                             progress: (Int, Double, Double) -> Void = { _, _, _ in }) throws -> ModelFile {
        guard var recipe = recipes.first(where: { $0.name == name }) else { throw ModelError.unknownModel(name) }
        recipe.architecture = recipe.architecture.overriding(epochs: epochs, seed: seed)
        if case .perceptron = recipe.architecture {
            let data = try Dataset.breastCancer(folder: dataFolder)
            let samples = Dataset.breastCancerSplit().train
            var options = BinarizedPerceptron.TrainingOptions()
            let choice = BinarizedPerceptron.chooseLevels(on: data, samples: samples, options: options)
            log("Binactive levels per feature, 5-fold cross-validation on the \(samples.count) training records: "
                + choice.scores.map { String(format: "%d: %.2f%%", $0.levels, $0.accuracy * 100) }.joined(separator: ", ")
                + " → \(choice.levels)")
            options.levels = choice.levels
            let model = BinarizedPerceptron.train(on: data, samples: samples, options: options, progress: progress)
            return ModelFile(name: name, task: "binary classification (0 malignant, 1 benign)", datasetKind: .breastCancer,
                             dataset: "Wisconsin diagnostic breast cancer (569 records, 30 features)",
                             architecture: "Batchnorm + Binactive at \(model.levels) thresholds per feature (client, thermometer code) "
                                 + "→ binarized dense \(model.inputCount) → 1 with α, bias → sign",
                             network: .perceptron(model), evaluationData: data)
        }
        let training: Dataset, samples: [Int], evaluation: Dataset, description: String
        switch recipe.datasetKind {
        case .mnist:
            training = try Dataset.mnist(folder: dataFolder, split: "train")
            samples = Array(0..<training.count)
            evaluation = try Dataset.mnist(folder: dataFolder)
            description = "MNIST (handwritten digits, 28×28)"
        case .fashionMNIST:
            training = try Dataset.fashionMNIST(folder: dataFolder, split: "train")
            samples = Array(0..<training.count)
            evaluation = try Dataset.fashionMNIST(folder: dataFolder)
            description = "Fashion-MNIST (clothing, 28×28)"
        case .breastCancer, .mnistTestSplit:
            throw ModelError.unknownModel(name)
        }
        switch recipe.architecture {
        case .binarizedCNN(let shape, let activation, let options):
            let cnn = BinarizedCNN.train(shape: shape, activation: activation, on: training, samples: samples,
                                         options: options, progress: progress)
            return ModelFile(name: name, task: "10-class image classification", datasetKind: recipe.datasetKind,
                             dataset: description, architecture: cnn.architectureDescription, network: .binarizedCNN(cnn),
                             evaluationData: evaluation)
        case .polynomial(let topology, let activation, let options):
            let network = PolynomialNetwork.train(topology.network(activation: activation, seed: options.seed), on: training,
                                                  samples: samples, options: options, progress: progress)
            let terms = activation.enumerated().filter { $0.element != 0 }.map { String(format: "%.3g·x^%d", $0.element, $0.offset) }
            return ModelFile(name: name, task: "10-class image classification", datasetKind: recipe.datasetKind, dataset: description,
                             architecture: topology.description(activation: terms.joined(separator: " + "))
                                 + " (integer form: inputs 0…\(network.quantization.inputLevels), "
                                 + "\(network.quantization.weightBits)-bit weights, no shifts)",
                             network: .polynomialNetwork(network), evaluationData: evaluation)
        case .perceptron:
            throw ModelError.unknownModel(name)
        case .imported(let source):
            throw ModelError.importedModel(name: name, onnx: source.onnx)
        }
    }
}

extension ModelCatalog.Recipe {
    /// The ONNX file an imported model is read from, nil for models trained here.
    public var importedSource: ModelCatalog.ImportedSource? {
        if case .imported(let source) = architecture { source } else { nil }
    }
}

extension BinarizedCNN {
    /// The architecture in words, for model listings.
    public var architectureDescription: String {
        let s = shape
        let conv = "binarized conv \(s.filterCount)×\(s.kernelSide)×\(s.kernelSide) stride \(s.stride) "
            + "(\(s.imageSide)² → \(s.filterCount)×\(s.convolutionSide)²)"
        let pool = s.poolSide > 1 ? " → \(s.pooling.rawValue) pool \(s.poolSide)×\(s.poolSide)" : ""
        switch activation {
        case .scaledReLU:
            let norm = normalizationScales.isEmpty ? "" : " → batch norm (folded)"
            return "Batchnorm + Binactive + K map (client) → \(conv) ⊙ K ⊙ α\(norm) → ReLU\(pool) → dense \(featureCount) → \(s.classCount) (8-bit integer weights)"
        case .sign:
            let step = activationLevels == 1 ? "sign(S − t), even |t| ≤ \(Self.maxThreshold)"
                : "sign(S − t_k) for \(activationLevels) thresholds per filter (\(channelCount) channels), even |t_k| ≤ \(Self.maxThreshold)"
            return "Batchnorm + Binactive (client) → \(conv) → \(step)\(pool) → dense \(featureCount) → \(s.classCount) (integer weights)"
        }
    }
}

/// The layer structures of the bundled polynomial networks.
enum PolynomialTopology: Sendable {
    /// CryptoNets': conv 5×5×5 stride 2 pad 1 → activation → dense 845 → 100 → activation → dense 10.
    case cryptoNets
    /// HCNN's MNIST network: conv 5×5×5 stride 2 → activation → conv 50×5×5 stride 2 → activation → dense 800 → 10.
    case hcnn

    func network(activation: [Float], seed: UInt64) -> PolynomialNetwork {
        switch self {
        case .cryptoNets: .cryptoNets(activation: activation, seed: seed)
        case .hcnn: .hcnn(activation: activation, seed: seed)
        }
    }

    func description(activation: String) -> String {
        switch self {
        case .cryptoNets:
            "conv 5×5×5 stride 2 pad 1 (28² → 5×13²) → \(activation) → dense 845 → 100 → same activation → dense 100 → 10"
        case .hcnn:
            "HCNN: conv 5×5×5 stride 2 (28² → 5×12²) → \(activation) → conv 50×5×5 stride 2 (5×12² → 50×4²) → same activation → dense 800 → 10"
        }
    }
}
