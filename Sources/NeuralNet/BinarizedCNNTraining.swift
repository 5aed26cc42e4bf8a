import Foundation

extension BinarizedCNN {
    /// Training settings; the defaults reproduce the bundled models.
    public struct TrainingOptions: Sendable {
        /// Passes over the training images.
        public var epochs = 30
        /// Adam's initial step size (cosine decay to zero).
        public var learningRate: Float = 0.005
        /// Images per step.
        public var batchSize = 50
        /// The seed of the initialization and the batch order.
        public var seed: UInt64 = 11
        /// Sign activation: dense weights are trained and exported as integers in
        /// [-denseLevels, denseLevels] (quantization-aware training).
        public var denseLevels = 7
        /// Training images are shifted by up to this many pixels in each direction (augmentation).
        public var maxShift = 2
        /// Sign activation: thresholds per filter, each a sign channel of its own (1: one sign).
        public var activationLevels = 1
        /// Threads computing a batch's gradient.
        public var threads = ProcessInfo.processInfo.activeProcessorCount

        /// Public memberwise initializer.
        public init(epochs: Int = 30, learningRate: Float = 0.005, batchSize: Int = 50, seed: UInt64 = 11,
                    denseLevels: Int = 7, maxShift: Int = 2, activationLevels: Int = 1,
                    threads: Int = ProcessInfo.processInfo.activeProcessorCount) {
            self.activationLevels = activationLevels
            self.epochs = epochs
            self.learningRate = learningRate
            self.batchSize = batchSize
            self.seed = seed
            self.denseLevels = denseLevels
            self.maxShift = maxShift
            self.threads = threads
        }
    }

    /// Trains on `samples` of an image dataset: softmax cross-entropy, Adam, straight-through
    /// estimators for sign(W) (passed where |W| ≤ 1, weights clipped to [-1, 1]) and for the
    /// sign activation (passed where |S − t| ≤ 6); for the sign activation the forward pass
    /// already uses the quantized thresholds and integer dense weights, so the trained network is
    /// its integer form. `progress` receives (epoch, mean loss, training accuracy) per epoch.
    public static func train(shape: Shape, activation: Activation, on data: Dataset, samples: [Int],
                             options: TrainingOptions = .init(),
                             progress: (Int, Double, Double) -> Void = { _, _, _ in }) -> BinarizedCNN {
        precondition(shape.isValid && data.sampleSize == shape.pixelCount, "dataset does not match the shape")
        var pixelTotal = 0.0, pixelSquares = 0.0
        for i in samples { for v in data.sample(i) { pixelTotal += Double(v); pixelSquares += Double(v * v) } }
        let pixelCount = Double(samples.count * shape.pixelCount)
        let mean = pixelTotal / pixelCount
        let deviation = max((pixelSquares / pixelCount - mean * mean).squareRoot(), 1e-6)

        var random = SplitMix64(seed: options.seed)
        func uniform(_ scale: Float) -> Float { (Float(random.next() % 2_000_001) / 1_000_000 - 1) * scale }
        let levels = activation == .sign ? max(1, options.activationLevels) : 1
        let layout = ParameterLayout(shape: shape, activation: activation, levels: levels)
        var parameters = [Float](repeating: 0, count: layout.count)
        for i in layout.filters { parameters[i] = uniform(0.5) }
        // Several thresholds start spread over [-4, 4] so that their channels differ.
        if levels > 1 {
            for (n, i) in layout.thresholds.enumerated() { parameters[i] = -4 + 8 * Float(n % levels) / Float(levels - 1) }
        }
        for i in layout.normalization.prefix(shape.filterCount) { parameters[i] = 1 }
        for i in layout.dense { parameters[i] = uniform((3 / Float(layout.dense.count / shape.classCount)).squareRoot()) }

        var model = BinarizedCNN(shape: shape, activation: activation, activationLevels: levels, pixelMean: Float(mean), pixelDeviation: Float(deviation),
                                 filterWeights: [], thresholds: [], denseWeights: [], denseBias: [],
                                 integer: IntegerForm(filterSigns: [], thresholds: [], alphas: [], denseWeights: [], denseBias: []))
        var adam = Adam(count: layout.count, learningRate: options.learningRate)
        var order = Array(samples.indices)
        let threads = max(1, options.threads)
        var statistics: [BatchNormStatistics] = []
        for epoch in 1...options.epochs {
            random.shuffle(&order)
            if activation == .scaledReLU {
                statistics = BatchNormStatistics.measure(model: model, parameters: parameters, layout: layout, on: data,
                                                         samples: Array(samples.prefix(1000)))
            }
            let fraction = Float(epoch - 1) / Float(options.epochs)
            adam.learningRate = options.learningRate * 0.5 * (1 + cos(Float.pi * fraction))
            var epochLoss = 0.0, epochCorrect = 0
            for start in stride(from: 0, to: order.count, by: options.batchSize) {
                let batch = order[start..<min(start + options.batchSize, order.count)].map { samples[$0] }
                let pass = ForwardBackward(model: model, parameters: parameters, layout: layout, denseLevels: options.denseLevels,
                                           statistics: statistics)
                let results = Parallel.map(count: threads) { t -> ([Float], Double, Int) in
                    var gradient = [Float](repeating: 0, count: layout.count)
                    var loss = 0.0, correct = 0
                    for b in stride(from: t, to: batch.count, by: threads) {
                        var shifts = SplitMix64(seed: options.seed ^ UInt64(epoch) << 40 ^ UInt64(start + b))
                        let image = shifted(data.sample(batch[b]), side: shape.imageSide, maxShift: options.maxShift, using: &shifts)
                        let result = pass.accumulate(image: image[...], label: data.labels[batch[b]], into: &gradient)
                        loss += Double(result.loss)
                        correct += result.correct ? 1 : 0
                    }
                    return (gradient, loss, correct)
                }
                var gradient = results[0].0
                for r in results.dropFirst() { for i in 0..<layout.count { gradient[i] += r.0[i] } }
                let scale = 1 / Float(batch.count)
                for i in layout.filters where abs(parameters[i]) > 1 { gradient[i] = 0 }
                adam.step(&parameters, gradient: gradient.map { $0 * scale })
                for i in layout.filters { parameters[i] = min(max(parameters[i], -1), 1) }
                for i in layout.thresholds { parameters[i] = min(max(parameters[i], -Float(maxThreshold) - 1), Float(maxThreshold) + 1) }
                epochLoss += results.reduce(0) { $0 + $1.1 }
                epochCorrect += results.reduce(0) { $0 + $1.2 }
            }
            model = exported(model, parameters: parameters, layout: layout, denseLevels: options.denseLevels, statistics: statistics)
            progress(epoch, epochLoss / Double(samples.count), Double(epochCorrect) / Double(samples.count))
        }
        return model
    }

    /// The image moved by a random offset in [-maxShift, maxShift]² with zeros shifted in.
    static func shifted(_ image: ArraySlice<Float>, side: Int, maxShift: Int, using random: inout SplitMix64) -> [Float] {
        let span = UInt64(2 * maxShift + 1)
        let dy = Int(random.next() % span) - maxShift, dx = Int(random.next() % span) - maxShift
        var output = [Float](repeating: 0, count: side * side)
        let base = image.startIndex
        for i in max(0, dy)..<min(side, side + dy) {
            for j in max(0, dx)..<min(side, side + dx) { output[i * side + j] = image[base + (i - dy) * side + j - dx] }
        }
        return output
    }

    /// The model with its float parameters set from the flat vector and its integer form exported
    /// (batch norm folded into one scale and shift per filter).
    static func exported(_ base: BinarizedCNN, parameters: [Float], layout: ParameterLayout, denseLevels: Int,
                         statistics: [BatchNormStatistics]) -> BinarizedCNN {
        var model = base
        let shape = model.shape
        model.filterWeights = Array(parameters[layout.filters])
        model.denseWeights = Array(parameters[layout.dense])
        model.denseBias = Array(parameters[layout.bias])
        model.integer.filterSigns = model.filterWeights.map { $0 >= 0 ? 1 : -1 }
        switch model.activation {
        case .sign:
            model.thresholds = Array(parameters[layout.thresholds])
            model.integer.thresholds = model.thresholds.map(quantizeThreshold)
            model.integer.alphas = []
            let quantizer = DenseQuantizer(weights: model.denseWeights, levels: denseLevels)
            model.integer.denseWeights = model.denseWeights.map { quantizer.level($0) }
            model.integer.denseBias = model.denseBias.map(quantizer.unclampedLevel)
        case .scaledReLU:
            model.thresholds = []
            model.integer.thresholds = []
            let folded = BatchNormStatistics.fold(parameters: parameters, layout: layout, statistics: statistics)
            model.normalizationScales = folded.map(\.scale)
            model.normalizationShifts = folded.map(\.shift)
            // Activations are in units of 2^-(scale + alpha fraction bits); biases join them there.
            let activationUnit = Float(1 << (scaleFractionBits + alphaFractionBits))
            model.integer.alphas = zip(alphas(model.filterWeights, shape: shape), folded).map {
                Int(($0 * $1.scale * Float(1 << alphaFractionBits)).rounded())
            }
            model.integer.activationBiases = folded.map { Int(($0.shift * activationUnit).rounded()) }
            let quantizer = DenseQuantizer(weights: model.denseWeights, levels: 127)
            model.integer.denseWeights = model.denseWeights.map { quantizer.level($0) }
            model.integer.denseBias = model.denseBias.map { quantizer.unclampedLevel($0 * activationUnit) }
        }
        return model
    }
}

/// Where each group of trained parameters sits in the flat vector Adam updates.
struct ParameterLayout {
    let filters: Range<Int>, thresholds: Range<Int>, normalization: Range<Int>, dense: Range<Int>, bias: Range<Int>
    var count: Int { bias.upperBound }

    /// Sign activations train `levels` thresholds per filter; scaled ReLU trains batch norm's
    /// γ_c then β_c instead.
    init(shape: BinarizedCNN.Shape, activation: BinarizedCNN.Activation, levels: Int = 1) {
        let filterCount = shape.filterCount, featureCount = shape.featureCount(channelsPerFilter: levels)
        filters = 0..<(filterCount * shape.kernelArea)
        thresholds = filters.upperBound..<(filters.upperBound + (activation == .sign ? filterCount * levels : 0))
        normalization = thresholds.upperBound..<(thresholds.upperBound + (activation == .scaledReLU ? 2 * filterCount : 0))
        dense = normalization.upperBound..<(normalization.upperBound + shape.classCount * featureCount)
        bias = dense.upperBound..<(dense.upperBound + shape.classCount)
    }
}

/// Symmetric uniform quantization of dense weights to integers in [-levels, levels].
struct DenseQuantizer {
    let step: Float, levels: Int

    init(weights: [Float], levels: Int) {
        self.levels = levels
        step = max(weights.reduce(0) { max($0, abs($1)) }, 1e-6) / Float(levels)
    }

    func level(_ weight: Float) -> Int { min(max(Int((weight / step).rounded()), -levels), levels) }
    func unclampedLevel(_ value: Float) -> Int { Int((value / step).rounded()) }
}

/// One image's forward and backward pass at fixed parameters.
struct ForwardBackward: Sendable {
    let model: BinarizedCNN
    let layout: ParameterLayout
    let signs: [Float], alphas: [Float], thresholds: [Float], dense: [Float], bias: [Float]
    /// Scaled ReLU: batch norm's γ_c, β_c and the statistics it normalizes with.
    let gammas: [Float], betas: [Float], statistics: [BatchNormStatistics]
    /// The straight-through window of the sign activation.
    let signWindow: Float = 6

    init(model: BinarizedCNN, parameters: [Float], layout: ParameterLayout, denseLevels: Int, statistics: [BatchNormStatistics] = []) {
        self.model = model
        self.layout = layout
        let filterCount = model.shape.filterCount
        gammas = Array(parameters[layout.normalization.prefix(filterCount)])
        betas = Array(parameters[layout.normalization.dropFirst(filterCount)])
        self.statistics = statistics.isEmpty ? Array(repeating: .identity, count: filterCount) : statistics
        let weights = Array(parameters[layout.filters])
        signs = weights.map { $0 >= 0 ? 1 : -1 }
        alphas = BinarizedCNN.alphas(weights, shape: model.shape)
        let latentDense = Array(parameters[layout.dense]), latentBias = Array(parameters[layout.bias])
        switch model.activation {
        case .sign:
            thresholds = parameters[layout.thresholds].map { Float(BinarizedCNN.quantizeThreshold($0)) }
            let quantizer = DenseQuantizer(weights: latentDense, levels: denseLevels)
            dense = latentDense.map { Float(quantizer.level($0)) * quantizer.step }
            bias = latentBias.map { Float(quantizer.unclampedLevel($0)) * quantizer.step }
        case .scaledReLU:
            thresholds = []
            dense = latentDense
            bias = latentBias
        }
    }

    /// Adds this image's loss gradient to `gradient`; returns its loss and whether it was right.
    func accumulate(image: ArraySlice<Float>, label: Int, into gradient: inout [Float]) -> (loss: Float, correct: Bool) {
        let s = model.shape, side = s.convolutionSide, area = side * side, k = s.kernelSide, levels = model.activationLevels
        let x = model.binarize(image).map(Float.init)
        let scale = model.activation == .scaledReLU ? model.scaleMap(image) : []
        var sums = [Float](repeating: 0, count: s.filterCount * area)
        var activations = [Float](repeating: 0, count: model.channelCount * area), normalized = sums
        for c in 0..<s.filterCount {
            for i in 0..<side {
                for j in 0..<side {
                    var total: Float = 0
                    for u in 0..<k {
                        for v in 0..<k { total += signs[(c * k + u) * k + v] * x[(i * s.stride + u) * s.imageSide + j * s.stride + v] }
                    }
                    let p = c * area + i * side + j
                    sums[p] = total
                    switch model.activation {
                    case .sign:
                        for level in 0..<levels {
                            activations[(c * levels + level) * area + i * side + j] = total > thresholds[c * levels + level] ? 1 : -1
                        }
                    case .scaledReLU:
                        normalized[p] = statistics[c].normalize(total * scale[i * side + j] * alphas[c])
                        activations[p] = max(0, gammas[c] * normalized[p] + betas[c])
                    }
                }
            }
        }
        // Pooling; max pooling remembers where each maximum came from.
        let f = model.featureCount
        var features = [Float](repeating: 0, count: f), sources = [[Int]](repeating: [], count: f)
        for feature in 0..<f {
            let window = s.poolWindow(feature)
            switch s.pooling {
            case .max:
                let source = window.max { activations[$0] < activations[$1] || (activations[$0] == activations[$1] && $0 > $1) }!
                features[feature] = activations[source]
                sources[feature] = [source]
            case .sum:
                features[feature] = window.reduce(0) { $0 + activations[$1] }
                sources[feature] = window
            }
        }
        var logits = bias
        for cls in 0..<s.classCount {
            var total: Float = 0
            for j in 0..<f { total += dense[cls * f + j] * features[j] }
            logits[cls] += total
        }
        let top = logits.max()!
        let exps = logits.map { exp($0 - top) }
        let partition = exps.reduce(0, +)
        let loss = -log(max(exps[label] / partition, 1e-12))
        let correct = BinarizedCNN.argmax(logits) == label

        // Backward.
        var featureGradient = [Float](repeating: 0, count: f)
        for cls in 0..<s.classCount {
            let delta = exps[cls] / partition - (cls == label ? 1 : 0)
            gradient[layout.bias.lowerBound + cls] += delta
            let row = layout.dense.lowerBound + cls * f
            for j in 0..<f {
                gradient[row + j] += delta * features[j]
                featureGradient[j] += delta * dense[cls * f + j]
            }
        }
        var alphaGradient = [Float](repeating: 0, count: s.filterCount)
        for feature in 0..<f where featureGradient[feature] != 0 {
            for source in sources[feature] {
                // The activation map `source` belongs to channel c·L + level; p indexes the sums.
                let channel = source / area, c = channel / levels, i = (source % area) / side, j = source % side
                let p = c * area + source % area
                let sumGradient: Float
                switch model.activation {
                case .sign:
                    // Straight through the sign where S is near the channel's threshold.
                    guard abs(sums[p] - thresholds[channel]) <= signWindow else { continue }
                    sumGradient = featureGradient[feature] / signWindow
                    gradient[layout.thresholds.lowerBound + channel] -= sumGradient
                case .scaledReLU:
                    guard activations[p] > 0 else { continue }
                    let outputGradient = featureGradient[feature]
                    gradient[layout.normalization.lowerBound + c] += outputGradient * normalized[p]
                    gradient[layout.normalization.lowerBound + s.filterCount + c] += outputGradient
                    // Through batch norm (its statistics held fixed) to L = S·K·α.
                    let scaledGradient = outputGradient * gammas[c] / statistics[c].deviation
                    sumGradient = scaledGradient * scale[i * side + j] * alphas[c]
                    alphaGradient[c] += scaledGradient * sums[p] * scale[i * side + j]
                }
                for u in 0..<k {
                    for v in 0..<k {
                        gradient[layout.filters.lowerBound + (c * k + u) * k + v] += sumGradient * x[(i * s.stride + u) * s.imageSide + j * s.stride + v]
                    }
                }
            }
        }
        if model.activation == .scaledReLU {
            // α = mean |W| also depends on W: dα/dW = sign(W)/area.
            for c in 0..<s.filterCount where alphaGradient[c] != 0 {
                for w in 0..<s.kernelArea {
                    gradient[layout.filters.lowerBound + c * s.kernelArea + w] += alphaGradient[c] * signs[c * s.kernelArea + w] / Float(s.kernelArea)
                }
            }
        }
        return (loss, correct)
    }
}

/// Batch norm's statistics of one filter's scaled sums L = S·K·α: mean and deviation over a
/// fixed set of training images, measured afresh at the start of every epoch (population
/// statistics rather than per-batch ones, which the per-image gradient workers cannot share;
/// gradients treat them as constants).
struct BatchNormStatistics: Sendable, Equatable {
    var mean: Float, deviation: Float

    /// No normalization.
    static let identity = BatchNormStatistics(mean: 0, deviation: 1)

    func normalize(_ value: Float) -> Float { (value - mean) / deviation }

    /// Each filter's statistics at the current parameters over `samples` (no augmentation).
    static func measure(model: BinarizedCNN, parameters: [Float], layout: ParameterLayout, on data: Dataset,
                        samples: [Int]) -> [BatchNormStatistics] {
        let shape = model.shape, area = shape.convolutionSide * shape.convolutionSide
        var current = model
        current.filterWeights = Array(parameters[layout.filters])
        current.integer.filterSigns = current.filterWeights.map { $0 >= 0 ? 1 : -1 }
        let alphas = BinarizedCNN.alphas(current.filterWeights, shape: shape)
        let frozen = current
        let moments = Parallel.map(count: samples.count) { n -> [(Double, Double)] in
            let image = data.sample(samples[n])
            let sums = frozen.binarySums(frozen.binarize(image)), k = frozen.scaleMap(image)
            return (0..<shape.filterCount).map { c in
                var total = 0.0, squares = 0.0
                for p in 0..<area {
                    let value = Double(Float(sums[c * area + p]) * k[p] * alphas[c])
                    total += value
                    squares += value * value
                }
                return (total, squares)
            }
        }
        let count = Double(samples.count * area)
        return (0..<shape.filterCount).map { c in
            let mean = moments.reduce(0) { $0 + $1[c].0 } / count
            let variance = moments.reduce(0) { $0 + $1[c].1 } / count - mean * mean
            return BatchNormStatistics(mean: Float(mean), deviation: Float(max(variance, 1e-6).squareRoot()))
        }
    }

    /// γ·(L − μ)/σ + β folded into g·L + b for every filter.
    static func fold(parameters: [Float], layout: ParameterLayout, statistics: [BatchNormStatistics]) -> [(scale: Float, shift: Float)] {
        let filterCount = layout.normalization.count / 2
        return (0..<filterCount).map { c in
            let gamma = parameters[layout.normalization.lowerBound + c], beta = parameters[layout.normalization.lowerBound + filterCount + c]
            let stats = statistics.isEmpty ? .identity : statistics[c]
            return (gamma / stats.deviation, beta - gamma * stats.mean / stats.deviation)
        }
    }
}
