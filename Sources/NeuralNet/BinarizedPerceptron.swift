import Foundation

/// The main paper's binarized perceptron (its breast-cancer model): the client shifts each
/// feature by a per-feature threshold (Batchnorm's learned shift) and keeps the signs
/// (Binactive), the server computes sign(α·Σ w_i·x_i + b) with binary weights w_i = sign(W_i).
///
/// The thresholds are learned from the training records: for each feature, the split that best
/// separates the two classes on its own (a decision stump). Only the sign of the shifted value
/// reaches the network, so Batchnorm's scale plays no part.
///
/// Its exact integer form, the contract for encrypted engines: score = Σ w_i·x_i with
/// w_i, x_i ∈ {-1, +1}, class 1 (benign) iff score ≥ ``integerThreshold``. Because α > 0 and the
/// score has the parity of the feature count, the threshold ⌈-b/α⌉ (moved up to that parity)
/// makes the integer form decide exactly as the float form does on every record.
public struct BinarizedPerceptron: Codable, Sendable, Equatable {
    /// Per-feature thresholds: x_i = +1 where the feature reaches its threshold, else -1.
    public var featureThresholds: [Float]
    /// sign(W_i) ∈ {-1, +1}.
    public var weightSigns: [Int]
    /// α = mean |W_i|, the XNOR-Net scale.
    public var alpha: Float
    /// b.
    public var bias: Float
    /// Class 1 iff the integer score reaches this.
    public var integerThreshold: Int

    /// The number of input features.
    public var featureCount: Int { weightSigns.count }

    /// Batchnorm then Binactive: each feature shifted by its threshold and replaced by its sign (±1).
    public func binarize(_ record: ArraySlice<Float>) -> [Int] {
        precondition(record.count == featureCount, "expected \(featureCount) features")
        return zip(record, featureThresholds).map { $0 >= $1 ? 1 : -1 }
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

    /// The smallest score s with the parity of the feature count and α·s + b ≥ 0.
    static func threshold(alpha: Float, bias: Float, featureCount: Int) -> Int {
        var t = Int((-bias / alpha).rounded(.up))
        if (t - featureCount) % 2 != 0 { t += 1 }
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
        /// Public memberwise initializer.
        public init(epochs: Int = 300, learningRate: Float = 0.01, batchSize: Int = 32, seed: UInt64 = 7) {
            self.epochs = epochs
            self.learningRate = learningRate
            self.batchSize = batchSize
            self.seed = seed
        }
    }

    /// Trains on `samples` of a binary-labelled dataset: logistic loss on α·Σ sign(W_i)·x_i + b,
    /// with the straight-through estimator for sign (gradient passed where |W_i| ≤ 1), Adam,
    /// fixed seed. `progress` receives (epoch, mean loss, training accuracy) once per epoch.
    public static func train(on data: Dataset, samples: [Int], options: TrainingOptions = .init(),
                             progress: (Int, Double, Double) -> Void = { _, _, _ in }) -> BinarizedPerceptron {
        let d = data.sampleSize
        let thresholds = (0..<d).map { feature in
            stumpThreshold(values: samples.map { data.sample($0)[data.sample($0).startIndex + feature] },
                           labels: samples.map { data.labels[$0] })
        }
        let stats = BinarizedPerceptron(featureThresholds: thresholds, weightSigns: [Int](repeating: 1, count: d),
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
        return BinarizedPerceptron(featureThresholds: stats.featureThresholds,
                                   weightSigns: weights.map { $0 >= 0 ? 1 : -1 }, alpha: alpha, bias: bias,
                                   integerThreshold: threshold(alpha: alpha, bias: bias, featureCount: weights.count))
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
