import Foundation

/// Why a model could not be loaded.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Missing or unreadable file.
    case unreadable(path: String)
    /// Not a model file this build reads.
    case malformed(path: String, reason: String)
    /// A format version from a newer build.
    case unsupportedVersion(path: String, version: Int)
    /// Neither a bundled model's name nor a file.
    case unknownModel(String)
    /// A bundled model trained outside Obscura: it is re-imported from its ONNX file, not trained here.
    case importedModel(name: String, onnx: String)

    public var description: String {
        switch self {
        case .unreadable(let path): "\(path): cannot be read"
        case .malformed(let path, let reason): "\(path): not an Obscura model: \(reason)"
        case .unsupportedVersion(let path, let version):
            "\(path): model format version \(version) is newer than this build reads (\(ModelFile.currentVersion))"
        case .unknownModel(let name): "'\(name)' is neither a bundled model (see `obscura models`) nor a model file"
        case .importedModel(let name, let onnx): "\(name) was trained outside Obscura: it is imported from \(onnx) (ModelImporter)"
        }
    }
}

/// The datasets models train on, with where each lives and which records evaluate a model.
public enum DatasetKind: String, Codable, Sendable {
    /// Wisconsin diagnostic breast cancer; evaluation: the 115 test records of ``Dataset/breastCancerSplit(count:testCount:)``.
    case breastCancer = "breast-cancer"
    /// MNIST as the papers use it: training on its 60,000 training images, evaluation on its
    /// 10,000 test images.
    case mnist = "mnist-standard"
    /// Model files from before the MNIST training set was available here (none is bundled any
    /// more): trained on test images 0..<8000, evaluated on 8000..<10000.
    case mnistTestSplit = "mnist"
    /// Fashion-MNIST; training on its 60,000 training images, evaluation on its 10,000 test images.
    case fashionMNIST = "fashion-mnist"

    /// Where the data sits on this project's machines (relative to the repository root).
    public var defaultFolder: String {
        switch self {
        case .breastCancer: "../shared/data/breast-cancer"
        case .mnist, .mnistTestSplit: "../shared/data/mnist"
        case .fashionMNIST: "/usr/share/datasets/fashion-mnist"
        }
    }

    /// The evaluation data in `folder`.
    public func evaluationData(folder: String) throws(DatasetError) -> Dataset {
        switch self {
        case .breastCancer: try Dataset.breastCancer(folder: folder)
        case .mnist, .mnistTestSplit: try Dataset.mnist(folder: folder)
        case .fashionMNIST: try Dataset.fashionMNIST(folder: folder)
        }
    }

    /// The records of the evaluation data that make up the documented evaluation split.
    public func evaluationSamples(in data: Dataset) -> [Int] {
        switch self {
        case .breastCancer: Dataset.breastCancerSplit(count: data.count).test
        case .mnistTestSplit: Array(Dataset.mnistEvaluationRange.clamped(to: 0..<data.count))
        case .mnist, .fashionMNIST: Array(0..<data.count)
        }
    }

    /// How accuracies on this dataset are reported, in words.
    public var splitDescription: String {
        switch self {
        case .breastCancer: "train 454 / test 115 records, seeded shuffle (Dataset.breastCancerSplit)"
        case .mnist: "trained on the 60,000 MNIST training images, evaluated on its 10,000 test images"
        case .mnistTestSplit: "trained on MNIST test images 0..<8000, evaluated on 8000..<10000"
        case .fashionMNIST: "trained on the 60,000 Fashion-MNIST training images, evaluated on its 10,000 test images"
        }
    }
}

/// A model file: JSON, versioned, with what the model is, how it was trained and evaluated,
/// and its network (``Network``): one of the kinds Obscura trains, or a graph (an imported model).
///
/// Format version 3 (this build) adds graphs (`"graph"`: a ``ModelGraph``); versions 2 and 3
/// otherwise agree, and both load. Version 1 files (perceptron only, no `datasetKind`) are
/// refused with a message naming the missing field; `obscura train` rewrites them.
public struct ModelFile: Codable, Sendable, Equatable {
    /// The format version this build writes and the newest it reads.
    public static let currentVersion = 3

    /// The network a model file holds: in the file, exactly one key of these names.
    public enum Network: Sendable, Equatable {
        /// The paper's binarized perceptron.
        case perceptron(BinarizedPerceptron)
        /// A binarized CNN (the paper's, or its sign variant).
        case binarizedCNN(BinarizedCNN)
        /// A network with polynomial activations (CryptoNets, CryptoDL, HCNN).
        case polynomialNetwork(PolynomialNetwork)
        /// A network known only as its layer graph (imported, e.g. from ONNX).
        case graph(ModelGraph)
    }

    /// The format version of this file.
    public var formatVersion: Int
    /// The model's name.
    public var name: String
    /// What it predicts.
    public var task: String
    /// The dataset it was trained and is evaluated on.
    public var datasetKind: DatasetKind
    /// The dataset, in words.
    public var dataset: String
    /// The training and evaluation split, in words.
    public var split: String
    /// The architecture, in words.
    public var architecture: String
    /// Accuracy of the float model on the evaluation split.
    public var floatAccuracy: Double
    /// Accuracy of the exact integer reference on the evaluation split.
    public var integerAccuracy: Double
    /// The network.
    public var network: Network

    /// The network if it is a binarized perceptron.
    public var perceptron: BinarizedPerceptron? { if case .perceptron(let p) = network { p } else { nil } }
    /// The network if it is a binarized CNN.
    public var binarizedCNN: BinarizedCNN? { if case .binarizedCNN(let cnn) = network { cnn } else { nil } }
    /// The network if it is a polynomial network.
    public var polynomialNetwork: PolynomialNetwork? { if case .polynomialNetwork(let n) = network { n } else { nil } }

    /// A model file around `network`, with its accuracies measured on `data`'s evaluation split.
    public init(name: String, task: String, datasetKind: DatasetKind, dataset: String, architecture: String,
                network: Network, evaluationData data: Dataset) {
        formatVersion = Self.currentVersion
        self.name = name
        self.task = task
        self.datasetKind = datasetKind
        self.dataset = dataset
        split = datasetKind.splitDescription
        self.architecture = architecture
        self.network = network
        floatAccuracy = 0
        integerAccuracy = 0
        let samples = datasetKind.evaluationSamples(in: data)
        floatAccuracy = accuracy(on: data, samples: samples, integer: false)
        integerAccuracy = accuracy(on: data, samples: samples, integer: true)
    }

    /// Accuracy of the float or the integer form on `samples` of `data` (0 for a graph that
    /// does not check).
    public func accuracy(on data: Dataset, samples: [Int], integer: Bool) -> Double {
        switch network {
        case .perceptron(let p): return p.accuracy(on: data, samples: samples, integer: integer)
        case .binarizedCNN(let cnn): return cnn.accuracy(on: data, samples: samples, integer: integer)
        case .polynomialNetwork(let n): return n.accuracy(on: data, samples: samples, integer: integer)
        case .graph(let g):
            if integer { return (try? g.integerReference())?.accuracy(on: data, samples: samples) ?? 0 }
            return (try? g.floatReference())?.accuracy(on: data, samples: samples) ?? 0
        }
    }

    /// The number of inputs a record or image must have.
    public var inputSize: Int {
        switch network {
        case .perceptron(let p): p.featureCount
        case .binarizedCNN(let cnn): cnn.shape.pixelCount
        case .polynomialNetwork(let n): n.inputSide * n.inputSide
        case .graph(let g): g.inputShape.count
        }
    }

    private enum CodingKeys: String, CodingKey {
        case formatVersion, name, task, datasetKind, dataset, split, architecture, floatAccuracy, integerAccuracy
        case perceptron, binarizedCNN, polynomialNetwork, graph
    }

    /// Why a file's network keys are wrong (reported as ``ModelError/malformed(path:reason:)``).
    struct NetworkKeyError: Error { let reason: String }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        formatVersion = try c.decode(Int.self, forKey: .formatVersion)
        name = try c.decode(String.self, forKey: .name)
        task = try c.decode(String.self, forKey: .task)
        datasetKind = try c.decode(DatasetKind.self, forKey: .datasetKind)
        dataset = try c.decode(String.self, forKey: .dataset)
        split = try c.decode(String.self, forKey: .split)
        architecture = try c.decode(String.self, forKey: .architecture)
        floatAccuracy = try c.decode(Double.self, forKey: .floatAccuracy)
        integerAccuracy = try c.decode(Double.self, forKey: .integerAccuracy)
        let present = [CodingKeys.perceptron, .binarizedCNN, .polynomialNetwork, .graph].filter(c.contains)
        guard present.count == 1 else {
            throw NetworkKeyError(reason: "needs exactly one of 'perceptron', 'binarizedCNN', 'polynomialNetwork' and 'graph'")
        }
        switch present[0] {
        case .perceptron: network = .perceptron(try c.decode(BinarizedPerceptron.self, forKey: .perceptron))
        case .binarizedCNN: network = .binarizedCNN(try c.decode(BinarizedCNN.self, forKey: .binarizedCNN))
        case .polynomialNetwork: network = .polynomialNetwork(try c.decode(PolynomialNetwork.self, forKey: .polynomialNetwork))
        default:
            guard formatVersion >= 3 else { throw NetworkKeyError(reason: "graphs need format version 3") }
            network = .graph(try c.decode(ModelGraph.self, forKey: .graph))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        // A graph is only readable as version 3 or later, whatever the file was loaded as.
        if case .graph = network { try c.encode(max(formatVersion, 3), forKey: .formatVersion) } else {
            try c.encode(formatVersion, forKey: .formatVersion)
        }
        try c.encode(name, forKey: .name)
        try c.encode(task, forKey: .task)
        try c.encode(datasetKind, forKey: .datasetKind)
        try c.encode(dataset, forKey: .dataset)
        try c.encode(split, forKey: .split)
        try c.encode(architecture, forKey: .architecture)
        try c.encode(floatAccuracy, forKey: .floatAccuracy)
        try c.encode(integerAccuracy, forKey: .integerAccuracy)
        switch network {
        case .perceptron(let p): try c.encode(p, forKey: .perceptron)
        case .binarizedCNN(let cnn): try c.encode(cnn, forKey: .binarizedCNN)
        case .polynomialNetwork(let n): try c.encode(n, forKey: .polynomialNetwork)
        case .graph(let g): try c.encode(g, forKey: .graph)
        }
    }

    /// Reads a model file.
    public static func load(path: String) throws(ModelError) -> ModelFile {
        guard let data = FileManager.default.contents(atPath: path) else { throw .unreadable(path: path) }
        return try decode(data, path: path)
    }

    /// Reads a model file's bytes, checking them as ``load(path:)`` does; `path` names them in errors.
    public static func decode(_ data: Data, path: String) throws(ModelError) -> ModelFile {
        let model: ModelFile
        do {
            if let version = try? JSONDecoder().decode(VersionProbe.self, from: data).formatVersion, version > currentVersion {
                throw ModelError.unsupportedVersion(path: path, version: version)
            }
            model = try JSONDecoder().decode(ModelFile.self, from: data)
        } catch let error as ModelError {
            throw error
        } catch let error as NetworkKeyError {
            throw .malformed(path: path, reason: error.reason)
        } catch {
            throw .malformed(path: path, reason: Self.describe(error))
        }
        switch model.network {
        case .perceptron(let p):
            guard p.isConsistent else { throw .malformed(path: path, reason: "inconsistent perceptron parameters") }
        case .binarizedCNN(let cnn):
            guard cnn.isConsistent else { throw .malformed(path: path, reason: "inconsistent binarized CNN parameters") }
        case .polynomialNetwork(let network):
            guard network.isConsistent else { throw .malformed(path: path, reason: "inconsistent polynomial network parameters") }
            do {
                _ = try network.integerForm()
            } catch {
                throw .malformed(path: path, reason: "no exact integer form: \(error)")
            }
        case .graph(let graph):
            do {
                _ = try graph.shapes()
            } catch {
                throw .malformed(path: path, reason: "\(error)")
            }
        }
        return model
    }

    /// Writes the model as compact JSON with sorted keys (weights make up most of a file).
    public func save(path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }

    private struct VersionProbe: Decodable { let formatVersion: Int }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "missing field '\(key.stringValue)'"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "wrong type at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'"
        case DecodingError.dataCorrupted: "not valid JSON"
        default: "\(error)"
        }
    }
}
