import Foundation

/// A labelled dataset held in memory: each sample a vector of features (pixels scaled to
/// [0, 1], or a record's measurements) with its shape, and an integer label.
public struct Dataset: Sendable {
    /// A short name ("mnist", "fashion-mnist", "breast-cancer").
    public let name: String
    /// The shape of one sample: [channels, rows, columns] for images, [features] for records.
    public let sampleShape: [Int]
    /// All samples, one after another.
    public let features: [Float]
    /// One label per sample.
    public let labels: [Int]
    /// The class names, indexed by label.
    public let classNames: [String]

    /// A dataset from its parts.
    public init(name: String, sampleShape: [Int], features: [Float], labels: [Int], classNames: [String]) throws(DatasetError) {
        let size = sampleShape.reduce(1, *)
        guard size > 0, features.count == size * labels.count else {
            throw .mismatch("\(name): \(features.count) features for \(labels.count) samples of size \(size)")
        }
        guard labels.allSatisfy({ (0..<classNames.count).contains($0) }) else {
            throw .mismatch("\(name): a label outside 0..<\(classNames.count)")
        }
        self.name = name
        self.sampleShape = sampleShape
        self.features = features
        self.labels = labels
        self.classNames = classNames
    }

    /// The number of samples.
    public var count: Int { labels.count }
    /// The number of features per sample.
    public var sampleSize: Int { sampleShape.reduce(1, *) }

    /// Sample i's features.
    public func sample(_ i: Int) -> ArraySlice<Float> {
        features[(i * sampleSize)..<((i + 1) * sampleSize)]
    }

    /// The samples at `indices`, in that order.
    public func subset(_ indices: [Int]) -> Dataset {
        var selected: [Float] = []
        selected.reserveCapacity(indices.count * sampleSize)
        for i in indices { selected += sample(i) }
        return try! Dataset(name: name, sampleShape: sampleShape, features: selected,
                            labels: indices.map { labels[$0] }, classNames: classNames)
    }

    /// The samples in `range`.
    public func subset(_ range: Range<Int>) -> Dataset { subset(Array(range)) }
}

extension Dataset {
    /// MNIST or Fashion-MNIST test images from a folder of IDX files (plain or .gz):
    /// `t10k-images-idx3-ubyte[.gz]` and `t10k-labels-idx1-ubyte[.gz]`, or the training
    /// files with `train` instead of `t10k`.
    public static func idx(folder: String, name: String, split: String = "t10k", classNames: [String]) throws(DatasetError) -> Dataset {
        func find(_ stem: String) throws(DatasetError) -> String {
            for candidate in ["\(folder)/\(stem)", "\(folder)/\(stem).gz"] where FileManager.default.fileExists(atPath: candidate) {
                return candidate
            }
            throw .unreadable(path: "\(folder)/\(stem)[.gz]")
        }
        return try idx(images: try find("\(split)-images-idx3-ubyte"), labels: try find("\(split)-labels-idx1-ubyte"),
                       name: name, classNames: classNames)
    }

    /// Images and labels from two IDX files (plain or .gz).
    public static func idx(images imagePath: String, labels labelPath: String, name: String,
                           classNames: [String]) throws(DatasetError) -> Dataset {
        let images = try IDXReader.images(at: imagePath)
        let labels = try IDXReader.labels(at: labelPath)
        guard images.count == labels.count else {
            throw .mismatch("\(imagePath): \(images.count) images but \(labelPath) has \(labels.count) labels")
        }
        return try Dataset(name: name, sampleShape: [1, images.rows, images.columns],
                           features: images.pixels.map { Float($0) / 255 }, labels: labels.map(Int.init),
                           classNames: classNames)
    }

    /// The 16 MNIST images 8000..<8016 and the 115 breast-cancer test records that ship inside
    /// Obscura (`Resources/Samples`, see its ATTRIBUTION.md): enough for the demo and the tests.
    public static func bundledSample(_ kind: DatasetKind) throws(DatasetError) -> Dataset {
        func resource(_ name: String) throws(DatasetError) -> String {
            guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Samples") else {
                throw .unreadable(path: "bundled Samples/\(name)")
            }
            return url.path
        }
        switch kind {
        case .breastCancer:
            return try breastCancer(file: try resource("wdbc-test-115.csv"))
        case .mnistTestSplit, .mnist:
            return try idx(images: try resource("mnist-8000-8015-images-idx3-ubyte"),
                           labels: try resource("mnist-8000-8015-labels-idx1-ubyte"),
                           name: "mnist", classNames: (0..<10).map(String.init))
        case .fashionMNIST:
            throw .unreadable(path: "no bundled Fashion-MNIST sample (apt-get install dataset-fashion-mnist)")
        }
    }

    /// MNIST (`../shared/data/mnist`): `split` "t10k" is the 10,000 test images, "train" the
    /// 60,000 training images.
    public static func mnist(folder: String, split: String = "t10k") throws(DatasetError) -> Dataset {
        try idx(folder: folder, name: "mnist", split: split, classNames: (0..<10).map(String.init))
    }

    /// Fashion-MNIST (`/usr/share/datasets/fashion-mnist` after `apt-get install dataset-fashion-mnist`).
    public static func fashionMNIST(folder: String, split: String = "t10k") throws(DatasetError) -> Dataset {
        try idx(folder: folder, name: "fashion-mnist", split: split,
                classNames: ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"])
    }

    /// MNIST test images that evaluate the models of ``DatasetKind/mnistTestSplit``.
    public static let mnistEvaluationRange = 8000..<10000

    /// The Wisconsin diagnostic breast cancer data (`wdbc.csv` in scikit-learn's layout: a
    /// header "samples,features,class names...", then one record per line, label last).
    public static func breastCancer(folder: String) throws(DatasetError) -> Dataset {
        try breastCancer(file: "\(folder)/wdbc.csv")
    }

    /// Breast-cancer records from one CSV file in the layout of ``breastCancer(folder:)``.
    public static func breastCancer(file path: String) throws(DatasetError) -> Dataset {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw .unreadable(path: path)
        }
        let lines = text.split(whereSeparator: \.isNewline)
        guard let header = lines.first else { throw .badCSV(path: path, line: 1, reason: "empty file") }
        let fields = header.split(separator: ",").map(String.init)
        guard fields.count >= 3, let samples = Int(fields[0]), let featureCount = Int(fields[1]), samples > 0, featureCount > 0 else {
            throw .badCSV(path: path, line: 1, reason: "header is not 'samples,features,class names...'")
        }
        let classNames = Array(fields[2...])
        guard lines.count - 1 == samples else {
            throw .badCSV(path: path, line: lines.count, reason: "\(lines.count - 1) records, header says \(samples)")
        }
        var features: [Float] = []
        var labels: [Int] = []
        features.reserveCapacity(samples * featureCount)
        for (index, line) in lines.dropFirst().enumerated() {
            let values = line.split(separator: ",", omittingEmptySubsequences: false)
            guard values.count == featureCount + 1 else {
                throw .badCSV(path: path, line: index + 2, reason: "\(values.count) fields, expected \(featureCount + 1)")
            }
            for value in values.dropLast() {
                guard let number = Float(value), number.isFinite else {
                    throw .badCSV(path: path, line: index + 2, reason: "'\(value)' is not a number")
                }
                features.append(number)
            }
            guard let label = Int(values[featureCount]), (0..<classNames.count).contains(label) else {
                throw .badCSV(path: path, line: index + 2, reason: "label '\(values[featureCount])' is not a class index")
            }
            labels.append(label)
        }
        return try Dataset(name: "breast-cancer", sampleShape: [featureCount], features: features, labels: labels,
                           classNames: classNames)
    }

    /// The fixed split of the 569 breast-cancer records: 115 test records (as in the main paper's
    /// 460/115 split), chosen by a Fisher-Yates shuffle of 0..<569 driven by SplitMix64 with seed
    /// 2020; the first 115 indices of the shuffle are the test set, sorted.
    public static func breastCancerSplit(count: Int = 569, testCount: Int = 115) -> (train: [Int], test: [Int]) {
        var order = Array(0..<count)
        var random = SplitMix64(seed: 2020)
        random.shuffle(&order)
        return (Array(order[testCount...]).sorted(), Array(order[0..<testCount]).sorted())
    }
}
