import Foundation

/// The models that ship with Obscura, each reproducible by `obscura train NAME`.
public enum ModelCatalog {
    /// How a bundled model is trained.
    public struct Recipe: Sendable {
        /// Its name.
        public let name: String
        /// Its dataset.
        public let datasetKind: DatasetKind
        /// Binarized CNN shape and activation; nil for the perceptron.
        let network: (shape: BinarizedCNN.Shape, activation: BinarizedCNN.Activation, options: BinarizedCNN.TrainingOptions)?
    }

    /// Every bundled model's recipe.
    public static let recipes: [Recipe] = [
        Recipe(name: "paper-perceptron-cancer", datasetKind: .breastCancer, network: nil),
        Recipe(name: "paper-bnn-mnist", datasetKind: .mnist, network: (.init(), .scaledReLU, .init(epochs: 60, maxShift: 1))),
        Recipe(name: "paper-bnn-sign-mnist", datasetKind: .mnist, network: (.init(), .sign, .init(epochs: 60, learningRate: 0.002, maxShift: 0))),
        Recipe(name: "paper-bnn-fashion", datasetKind: .fashionMNIST, network: (.init(), .scaledReLU, .init(epochs: 20, maxShift: 1))),
        Recipe(name: "paper-bnn-sign-fashion", datasetKind: .fashionMNIST, network: (.init(), .sign, .init(epochs: 20, learningRate: 0.002, maxShift: 0))),
        // Ours: stride 2 and no pooling, 6·12·12 = 864 sign bootstraps (the paper's topology needs 2,160).
        Recipe(name: "fast-mnist", datasetKind: .mnist, network: (fastShape, .sign, .init(epochs: 60, learningRate: 0.002, maxShift: 0))),
        Recipe(name: "fast-fashion", datasetKind: .fashionMNIST, network: (fastShape, .sign, .init(epochs: 20, learningRate: 0.002, maxShift: 0))),
    ]

    /// The TFHE-friendly topology of the fast models.
    static let fastShape = BinarizedCNN.Shape(stride: 2, filterCount: 6, poolSide: 1)

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

    /// Trains a bundled model from its dataset folder with its fixed seed and split.
    /// `progress` receives (epoch, mean loss, training accuracy).
    public static func train(_ name: String, dataFolder: String,
                             progress: (Int, Double, Double) -> Void = { _, _, _ in }) throws -> ModelFile {
        guard let recipe = recipes.first(where: { $0.name == name }) else { throw ModelError.unknownModel(name) }
        guard let network = recipe.network else {
            let data = try Dataset.breastCancer(folder: dataFolder)
            let model = BinarizedPerceptron.train(on: data, samples: Dataset.breastCancerSplit().train, progress: progress)
            return ModelFile(name: name, task: "binary classification (0 malignant, 1 benign)", datasetKind: .breastCancer,
                             dataset: "Wisconsin diagnostic breast cancer (569 records, 30 features)",
                             architecture: "Batchnorm + Binactive (client) → binarized dense 30 → 1 with α, bias → sign",
                             perceptron: model, evaluationData: data)
        }
        let training: Dataset, samples: [Int], evaluation: Dataset, description: String
        switch recipe.datasetKind {
        case .mnist:
            training = try Dataset.mnist(folder: dataFolder)
            samples = Array(Dataset.mnistTrainingRange)
            evaluation = training
            description = "MNIST (handwritten digits, 28×28)"
        case .fashionMNIST:
            training = try Dataset.fashionMNIST(folder: dataFolder, split: "train")
            samples = Array(0..<training.count)
            evaluation = try Dataset.fashionMNIST(folder: dataFolder)
            description = "Fashion-MNIST (clothing, 28×28)"
        case .breastCancer:
            throw ModelError.unknownModel(name)
        }
        let cnn = BinarizedCNN.train(shape: network.shape, activation: network.activation, on: training, samples: samples,
                                     options: network.options, progress: progress)
        return ModelFile(name: name, task: "10-class image classification", datasetKind: recipe.datasetKind,
                         dataset: description, architecture: cnn.architectureDescription, binarizedCNN: cnn,
                         evaluationData: evaluation)
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
            return "Batchnorm + Binactive + K map (client) → \(conv) ⊙ K ⊙ α → ReLU\(pool) → dense \(s.featureCount) → \(s.classCount) (8-bit integer weights)"
        case .sign:
            return "Batchnorm + Binactive (client) → \(conv) → sign(S − t), even |t| ≤ \(Self.maxThreshold)\(pool) → dense \(s.featureCount) → \(s.classCount) (integer weights)"
        }
    }
}
