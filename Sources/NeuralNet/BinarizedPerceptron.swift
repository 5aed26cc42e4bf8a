import Foundation

/// The main paper's binarized perceptron (its breast-cancer model): the client shifts each
/// feature by per-feature thresholds (Batchnorm's learned shifts) and keeps the signs
/// (Binactive), the server computes sign(α·Σ w_i·x_i + b) with binary weights w_i = sign(W_i).
///
/// Each feature goes through ``levels`` Binactives at increasing thresholds (a thermometer
/// code: +1 for every threshold the value reaches), so the server sees `levels` binary inputs
/// per feature and the perceptron can weigh how far a value lies from the others, while input
/// and weights stay binary. With one level the thresholds are the training records' best
/// decision stumps; with more, the training values' quantiles i/(levels + 1).
///
/// Its exact integer form, the contract for encrypted engines: score = Σ w_i·x_i with
/// w_i, x_i ∈ {-1, +1}, class 1 (benign) iff score ≥ ``integerThreshold``. Because α > 0 and the
/// score has the parity of the input count, the threshold ⌈-b/α⌉ (moved up to that parity)
/// makes the integer form decide exactly as the float form does on every record.
public struct BinarizedPerceptron: Codable, Sendable, Equatable {
    /// Per-input thresholds, level by level (input `level · featureCount + f` reads feature f):
    /// x_i = +1 where the feature reaches its threshold, else -1.
    public var featureThresholds: [Float]
    /// Binactive levels per feature (1 in the paper's form; files without the field have 1).
    public var levels: Int
    /// sign(W_i) ∈ {-1, +1}, one per binary input.
    public var weightSigns: [Int]
    /// α = mean |W_i|, the XNOR-Net scale.
    public var alpha: Float
    /// b.
    public var bias: Float
    /// Class 1 iff the integer score reaches this.
    public var integerThreshold: Int

    /// A perceptron from its parts.
    public init(featureThresholds: [Float], levels: Int = 1, weightSigns: [Int], alpha: Float, bias: Float, integerThreshold: Int) {
        self.featureThresholds = featureThresholds
        self.levels = levels
        self.weightSigns = weightSigns
        self.alpha = alpha
        self.bias = bias
        self.integerThreshold = integerThreshold
    }

    private enum CodingKeys: String, CodingKey { case featureThresholds, levels, weightSigns, alpha, bias, integerThreshold }

    /// Decodes a perceptron; `levels` defaults to 1 (files written before it existed).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        featureThresholds = try c.decode([Float].self, forKey: .featureThresholds)
        levels = try c.decodeIfPresent(Int.self, forKey: .levels) ?? 1
        weightSigns = try c.decode([Int].self, forKey: .weightSigns)
        alpha = try c.decode(Float.self, forKey: .alpha)
        bias = try c.decode(Float.self, forKey: .bias)
        integerThreshold = try c.decode(Int.self, forKey: .integerThreshold)
    }

    /// The number of binary inputs the server sees (features × levels).
    public var inputCount: Int { weightSigns.count }
    /// The number of raw features in a record.
    public var featureCount: Int { levels > 0 ? inputCount / levels : 0 }

    /// Whether the parts agree: one threshold per input, whole levels, finite values, ±1 weights.
    public var isConsistent: Bool {
        levels >= 1 && inputCount % levels == 0 && featureThresholds.count == inputCount
            && featureThresholds.allSatisfy(\.isFinite) && weightSigns.allSatisfy({ $0 == 1 || $0 == -1 })
            && alpha > 0 && alpha.isFinite && bias.isFinite
    }

    /// Batchnorm then Binactive: each feature compared with each of its thresholds (±1 per input).
    public func binarize(_ record: ArraySlice<Float>) -> [Int] {
        precondition(record.count == featureCount, "expected \(featureCount) features")
        let base = record.startIndex, features = featureCount
        return featureThresholds.indices.map { record[base + $0 % features] >= featureThresholds[$0] ? 1 : -1 }
    }
    /// Σ w_i·x_i on binarized inputs: the only thing the server computes.
    public func integerScore(_ bits: [Int]) -> Int {
        zip(weightSigns, bits).reduce(0) { $0 + $1.0 * $1.1 }
    }

    /// The integer reference's class.
    public func predictInteger(_ record: ArraySlice<Float>) -> Int {
        integerScore(binarize(record)) >= integerThreshold ? 1 : 0
    }

    /// The float model's class: sign(α·score + b).
    public func predictFloat(_ record: ArraySlice<Float>) -> Int {
        alpha * Float(integerScore(binarize(record))) + bias >= 0 ? 1 : 0
    }

    /// Accuracy of the float or the integer form on `samples` of `data`.
    public func accuracy(on data: Dataset, samples: [Int], integer: Bool) -> Double {
        let correct = samples.filter { i in
            (integer ? predictInteger(data.sample(i)) : predictFloat(data.sample(i))) == data.labels[i]
        }.count
        return Double(correct) / Double(samples.count)
    }

    /// The smallest score s with the parity of the input count and α·s + b ≥ 0.
    static func threshold(alpha: Float, bias: Float, inputCount: Int) -> Int {
        var t = Int((-bias / alpha).rounded(.up))
        if (t - inputCount) % 2 != 0 { t += 1 }
        return t
    }
}

extension BinarizedPerceptron {
    /// Training settings; the defaults reproduce the bundled model.
    public struct TrainingOptions: Sendable {
        /// Passes over the training records.
        public var epochs = 300
        /// Adam's step size.
        public var learningRate: Float = 0.01
        /// Records per step.
        public var batchSize = 32
        /// The seed of the weight initialization and the batch order.
        public var seed: UInt64 = 7
        /// Binactive levels per feature; nil chooses among ``levelCandidates`` by a 5-fold
        /// cross-validation on the training records (the test records play no part).
        public var levels: Int? = nil
        /// Public memberwise initializer.
        public init(epochs: Int = 300, learningRate: Float = 0.01, batchSize: Int = 32, seed: UInt64 = 7, levels: Int? = nil) {
            self.epochs = epochs
            self.learningRate = learningRate
            self.batchSize = batchSize
            self.seed = seed
            self.levels = levels
        }
    }

    /// The levels per feature that cross-validation chooses from.
    public static let levelCandidates = [1, 3, 5, 7, 9]

    /// Mean validation accuracy of training with `options` over `folds` folds of `samples`
    /// (a seeded shuffle, then contiguous folds).
    public static func crossValidationAccuracy(on data: Dataset, samples: [Int], options: TrainingOptions, folds: Int = 5) -> Double {
        var order = samples
        var random = SplitMix64(seed: options.seed ^ 0xC0FFEE)
        random.shuffle(&order)
        let accuracies = (0..<folds).map { fold in
            let validation = stride(from: fold, to: order.count, by: folds).map { order[$0] }
            let training = order.indices.filter { $0 % folds != fold }.map { order[$0] }
            return train(on: data, samples: training, options: options).accuracy(on: data, samples: validation, integer: true)
        }
        return accuracies.reduce(0, +) / Double(folds)
    }

    /// The candidate with the best cross-validated accuracy (the fewest levels on ties), and
    /// every candidate's accuracy.
    public static func chooseLevels(on data: Dataset, samples: [Int], options: TrainingOptions)
        -> (levels: Int, scores: [(levels: Int, accuracy: Double)]) {
        // The candidates train independently: one per core.
        let scores = Parallel.map(count: levelCandidates.count) { index -> (levels: Int, accuracy: Double) in
            var candidate = options
            candidate.levels = levelCandidates[index]
            return (levelCandidates[index], crossValidationAccuracy(on: data, samples: samples, options: candidate))
        }
        return (scores.max { $0.accuracy < $1.accuracy || ($0.accuracy == $1.accuracy && $0.levels > $1.levels) }!.levels, scores)
    }

    /// Trains on `samples` of a binary-labelled dataset: logistic loss on α·Σ sign(W_i)·x_i + b,
    /// with the straight-through estimator for sign (gradient passed where |W_i| ≤ 1), Adam,
    /// fixed seed. `progress` receives (epoch, mean loss, training accuracy) once per epoch.
    public static func train(on data: Dataset, samples: [Int], options: TrainingOptions = .init(),
                             progress: (Int, Double, Double) -> Void = { _, _, _ in }) -> BinarizedPerceptron {
        guard let chosen = options.levels else {
            var options = options
            options.levels = chooseLevels(on: data, samples: samples, options: options).levels
            return train(on: data, samples: samples, options: options, progress: progress)
        }
        let levels = max(1, chosen), d = data.sampleSize * levels
        let thresholds = binactiveThresholds(on: data, samples: samples, levels: levels)
        let stats = BinarizedPerceptron(featureThresholds: thresholds, levels: levels, weightSigns: [Int](repeating: 1, count: d),
                                        alpha: 1, bias: 0, integerThreshold: 0)
        let inputs = samples.map { stats.binarize(data.sample($0)).map(Float.init) }
        let targets = samples.map { Float(data.labels[$0]) }

        var random = SplitMix64(seed: options.seed)
        var weights = (0..<d).map { _ in (Float(random.next() % 2001) / 1000 - 1) * 0.1 }
        var bias: Float = 0
        var adam = Adam(count: d + 1, learningRate: options.learningRate)
        var order = Array(0..<samples.count)
        for epoch in 1...options.epochs {
            random.shuffle(&order)
            var totalLoss = 0.0
            for start in stride(from: 0, to: order.count, by: options.batchSize) {
                let batch = order[start..<min(start + options.batchSize, order.count)]
                let alpha = weights.reduce(0) { $0 + abs($1) } / Float(d)
                let signs = weights.map { $0 >= 0 ? Float(1) : -1 }
                var gradient = [Float](repeating: 0, count: d + 1)
                for k in batch {
                    let score = zip(signs, inputs[k]).reduce(0) { $0 + $1.0 * $1.1 }
                    let logit = alpha * score + bias
                    let probability = 1 / (1 + exp(-logit))
                    let error = probability - targets[k]
                    totalLoss += Double(-(targets[k] * log(max(probability, 1e-7)) + (1 - targets[k]) * log(max(1 - probability, 1e-7))))
                    for j in 0..<d where abs(weights[j]) <= 1 {
                        // d logit / d W_j ≈ α·x_j (straight through sign) + score·sign(W_j)/d (through α).
                        gradient[j] += error * (alpha * inputs[k][j] + score * signs[j] / Float(d))
                    }
                    gradient[d] += error
                }
                let scale = 1 / Float(batch.count)
                var parameters = weights + [bias]
                // Cosine decay to zero: sign flips of the latent weights settle by the last epoch.
                let progressFraction = Float(epoch - 1) / Float(options.epochs)
                adam.learningRate = options.learningRate * 0.5 * (1 + cos(Float.pi * progressFraction))
                adam.step(&parameters, gradient: gradient.map { $0 * scale })
                weights = Array(parameters[0..<d])
                bias = parameters[d]
            }
            let current = Self.binarized(stats: stats, weights: weights, bias: bias)
            progress(epoch, totalLoss / Double(samples.count), current.accuracy(on: data, samples: samples, integer: false))
        }
        return binarized(stats: stats, weights: weights, bias: bias)
    }

    /// Thresholds level by level: one level takes each feature's best stump, more take the
    /// training values' quantiles i/(levels + 1), i = 1 … levels (the nearest record's value).
    static func binactiveThresholds(on data: Dataset, samples: [Int], levels: Int) -> [Float] {
        let columns = (0..<data.sampleSize).map { feature in samples.map { data.sample($0)[data.sample($0).startIndex + feature] } }
        if levels == 1 {
            return columns.map { stumpThreshold(values: $0, labels: samples.map { data.labels[$0] }) }
        }
        let sorted = columns.map { $0.sorted() }
        return (1...levels).flatMap { level in
            sorted.map { values in values[Int((Double(level) / Double(levels + 1) * Double(values.count - 1)).rounded())] }
        }
    }

    /// The threshold t among the values that maximizes the accuracy of "class 1 iff value ≥ t"
    /// or of its opposite (the first such value on ties).
    static func stumpThreshold(values: [Float], labels: [Int]) -> Float {
        let order = values.indices.sorted { values[$0] < values[$1] }
        let positives = labels.reduce(0, +)
        // Walking up the sorted values: below holds the records under the candidate threshold.
        var belowPositives = 0, best = (score: -1, threshold: values[order[0]])
        for (rank, index) in order.enumerated() {
            if rank == 0 || values[index] != values[order[rank - 1]] {
                let belowNegatives = rank - belowPositives
                let aboveCorrect = (positives - belowPositives) + belowNegatives
                let score = max(aboveCorrect, values.count - aboveCorrect)
                if score > best.score { best = (score, values[index]) }
            }
            belowPositives += labels[index]
        }
        return best.threshold
    }

    static func binarized(stats: BinarizedPerceptron, weights: [Float], bias: Float) -> BinarizedPerceptron {
        let alpha = max(weights.reduce(0) { $0 + abs($1) } / Float(weights.count), 1e-6)
        return BinarizedPerceptron(featureThresholds: stats.featureThresholds, levels: stats.levels,
                                   weightSigns: weights.map { $0 >= 0 ? 1 : -1 }, alpha: alpha, bias: bias,
                                   integerThreshold: threshold(alpha: alpha, bias: bias, inputCount: weights.count))
    }
}

/// Adam (Kingma and Ba) over a flat parameter vector.
struct Adam {
    var first: [Float], second: [Float]
    var step = 0
    var learningRate: Float
    let beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8

    init(count: Int, learningRate: Float) {
        first = [Float](repeating: 0, count: count)
        second = first
        self.learningRate = learningRate
    }

    mutating func step(_ parameters: inout [Float], gradient: [Float]) {
        step += 1
        let correction1 = 1 - pow(beta1, Float(step)), correction2 = 1 - pow(beta2, Float(step))
        for i in 0..<parameters.count {
            first[i] = beta1 * first[i] + (1 - beta1) * gradient[i]
            second[i] = beta2 * second[i] + (1 - beta2) * gradient[i] * gradient[i]
            parameters[i] -= learningRate * (first[i] / correction1) / ((second[i] / correction2).squareRoot() + epsilon)
        }
    }
}

/// SplitMix64: a small, seedable generator for reproducible training and test data (never for
/// keys or encryption, which use `CSPRNG`).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func shuffle(_ values: inout [Int]) {
        for i in stride(from: values.count - 1, to: 0, by: -1) { values.swapAt(i, Int(next() % UInt64(i + 1))) }
    }
}
