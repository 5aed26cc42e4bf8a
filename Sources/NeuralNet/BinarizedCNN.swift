import Foundation

/// The main paper's binarized CNN for 28×28 images, and its TFHE-friendly variant.
///
/// The client standardizes the image (Batchnorm with the training pixels' mean and deviation)
/// and keeps the signs (Binactive), x ∈ {-1, +1}. The server slides `filterCount` binary
/// filters sign(W) over it: S = Σ sign(W)·x, an odd integer for a 5×5 filter. Then:
/// - ``Activation/scaledReLU`` (the paper): L = S ⊙ K ⊙ α with the client's box-filtered
///   magnitudes K and the filter's scale α = mean |W|, ReLU, max pooling, a dense layer;
/// - ``Activation/sign`` (one bootstrap per neuron): sign(S − t) with an even integer
///   threshold |t| ≤ 6 that folds batch norm, bias and the positive scales α and K into one
///   constant; max pooling of ±1 values is their OR; a dense layer with small integer weights.
///   With ``activationLevels`` L > 1 each filter has L thresholds and yields L sign maps,
///   sign(S − t_k), which pool and feed the dense layer as channels of their own: still one
///   bootstrap per neuron, whose blind rotation is read at L coefficients (one per threshold).
///   The dense layer thereby learns its own function of each S within the thresholds' range.
///
/// Both forms keep their trained float parameters beside the exact integer form
/// (``IntegerForm``), the contract that encrypted engines must reproduce bit for bit.
public struct BinarizedCNN: Codable, Sendable, Equatable {
    /// The nonlinearity after the binarized convolution.
    public enum Activation: String, Codable, Sendable {
        /// The paper's: ReLU(S ⊙ K ⊙ α).
        case scaledReLU
        /// sign(S − t) with an even integer threshold t, |t| ≤ ``maxThreshold``.
        case sign
    }

    /// How a pooling window is reduced.
    public enum Pooling: String, Codable, Sendable {
        /// The window's maximum (for ±1 values: their OR), one bootstrap per output when encrypted.
        case max
        /// The window's sum: linear, so free when encrypted.
        case sum
    }

    /// Sizes of the layers.
    public struct Shape: Codable, Sendable, Equatable {
        /// Input images are imageSide × imageSide, one channel.
        public var imageSide = 28
        /// Filters are kernelSide × kernelSide.
        public var kernelSide = 5
        /// The convolution's stride.
        public var stride = 1
        /// The number of binary filters.
        public var filterCount = 3
        /// Pooling over poolSide × poolSide windows (1: no pooling).
        public var poolSide = 2
        /// How each window is reduced.
        public var pooling = Pooling.max
        /// The number of classes.
        public var classCount = 10

        /// A shape from its sizes.
        public init(imageSide: Int = 28, kernelSide: Int = 5, stride: Int = 1, filterCount: Int = 3,
                    poolSide: Int = 2, pooling: Pooling = .max, classCount: Int = 10) {
            self.imageSide = imageSide
            self.kernelSide = kernelSide
            self.stride = stride
            self.filterCount = filterCount
            self.poolSide = poolSide
            self.pooling = pooling
            self.classCount = classCount
        }

        /// The side of one convolution output map.
        public var convolutionSide: Int { (imageSide - kernelSide) / stride + 1 }
        /// The side of one pooled map.
        public var pooledSide: Int { convolutionSide / poolSide }
        /// The dense layer's input size when every filter yields `channelsPerFilter` activation maps.
        public func featureCount(channelsPerFilter: Int) -> Int { filterCount * channelsPerFilter * pooledSide * pooledSide }
        /// Weights per filter.
        public var kernelArea: Int { kernelSide * kernelSide }
        /// Pixels per image.
        public var pixelCount: Int { imageSide * imageSide }

        /// The positions (channel, row, column in one flat index) that pooled feature `feature`
        /// (channel, pooled row, pooled column) reduces.
        public func poolWindow(_ feature: Int) -> [Int] {
            Array(TensorShape(channels: filterCount, height: convolutionSide, width: convolutionSide).poolWindow(feature, side: poolSide))
        }

        var isValid: Bool {
            imageSide > 0 && kernelSide > 0 && kernelSide <= imageSide && stride > 0 && filterCount > 0
                && poolSide > 0 && pooledSide > 0 && classCount > 1 && kernelArea % 2 == 1
        }
    }

    /// The exact integer network.
    public struct IntegerForm: Codable, Sendable, Equatable {
        /// sign(W) ∈ {-1, +1}, filter by filter, row by row.
        public var filterSigns: [Int]
        /// Sign activation: the even thresholds t_{c,k}, filter by filter.
        public var thresholds: [Int]
        /// Scaled ReLU: round(g_c·α_c · 2^alphaFractionBits), with g_c the folded batch norm's
        /// scale (1 without one), so negative where g_c is.
        public var alphas: [Int]
        /// Scaled ReLU: the folded batch norm's shift b_c in activation units
        /// 2^-(scale + alpha fraction bits), added before the ReLU (empty: none).
        public var activationBiases: [Int]
        /// Dense weights, class by class.
        public var denseWeights: [Int]
        /// Dense biases.
        public var denseBias: [Int]

        /// An integer form from its parts.
        public init(filterSigns: [Int], thresholds: [Int], alphas: [Int], activationBiases: [Int] = [],
                    denseWeights: [Int], denseBias: [Int]) {
            self.filterSigns = filterSigns
            self.thresholds = thresholds
            self.alphas = alphas
            self.activationBiases = activationBiases
            self.denseWeights = denseWeights
            self.denseBias = denseBias
        }

        private enum CodingKeys: String, CodingKey { case filterSigns, thresholds, alphas, activationBiases, denseWeights, denseBias }

        /// Decodes an integer form; files from before batch norm have no `activationBiases`.
        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            filterSigns = try c.decode([Int].self, forKey: .filterSigns)
            thresholds = try c.decode([Int].self, forKey: .thresholds)
            alphas = try c.decode([Int].self, forKey: .alphas)
            activationBiases = try c.decodeIfPresent([Int].self, forKey: .activationBiases) ?? []
            denseWeights = try c.decode([Int].self, forKey: .denseWeights)
            denseBias = try c.decode([Int].self, forKey: .denseBias)
        }

        /// The bias of filter c's activations (0 without batch norm).
        func activationBias(_ c: Int) -> Int { activationBiases.isEmpty ? 0 : activationBiases[c] }
    }

    /// The largest threshold magnitude of the sign activation: with a 25-term sum S ∈ [-25, 25],
    /// |S − t| ≤ 31 keeps every pre-activation inside one half of a 64-slot torus, which lets a
    /// single bootstrap with a constant test vector compute the sign.
    public static let maxThreshold = 6
    /// Fraction bits of the quantized scale map K (scaled ReLU).
    public static let scaleFractionBits = 6
    /// Fraction bits of the quantized filter scales α (scaled ReLU).
    public static let alphaFractionBits = 8

    /// The layer sizes.
    public var shape: Shape
    /// The nonlinearity.
    public var activation: Activation
    /// Client Batchnorm: the training pixels' mean.
    public var pixelMean: Float
    /// Client Batchnorm: the training pixels' standard deviation.
    public var pixelDeviation: Float
    /// Trained latent filter weights W (sign(W) is used; α = mean |W| per filter).
    public var filterWeights: [Float]
    /// Sign activation: thresholds per filter, each read as a channel of its own (1: sign(S − t)).
    public var activationLevels: Int
    /// Trained latent thresholds (sign activation), filter by filter, ``activationLevels`` each.
    public var thresholds: [Float]
    /// Scaled ReLU: batch norm after the scaled convolution, folded to one affine map per filter,
    /// ReLU(g_c·S·K·α_c + b_c): the scales g_c (empty: no batch norm, g = 1, b = 0).
    public var normalizationScales: [Float]
    /// Scaled ReLU: the folded batch norm's shifts b_c.
    public var normalizationShifts: [Float]
    /// Trained dense weights, class by class.
    public var denseWeights: [Float]
    /// Trained dense biases.
    public var denseBias: [Float]
    /// The exact integer form.
    public var integer: IntegerForm

    /// A network from its parts (check ``isConsistent`` before use).
    public init(shape: Shape, activation: Activation, activationLevels: Int = 1, pixelMean: Float, pixelDeviation: Float,
                filterWeights: [Float], thresholds: [Float], normalizationScales: [Float] = [], normalizationShifts: [Float] = [],
                denseWeights: [Float], denseBias: [Float], integer: IntegerForm) {
        self.shape = shape
        self.activation = activation
        self.activationLevels = activationLevels
        self.pixelMean = pixelMean
        self.pixelDeviation = pixelDeviation
        self.filterWeights = filterWeights
        self.thresholds = thresholds
        self.normalizationScales = normalizationScales
        self.normalizationShifts = normalizationShifts
        self.denseWeights = denseWeights
        self.denseBias = denseBias
        self.integer = integer
    }

    private enum CodingKeys: String, CodingKey {
        case shape, activation, activationLevels, pixelMean, pixelDeviation, filterWeights, thresholds, normalizationScales, normalizationShifts
        case denseWeights, denseBias, integer
    }

    /// Decodes a network; files from before batch norm and staircases have neither (one level).
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        shape = try c.decode(Shape.self, forKey: .shape)
        activation = try c.decode(Activation.self, forKey: .activation)
        activationLevels = try c.decodeIfPresent(Int.self, forKey: .activationLevels) ?? 1
        pixelMean = try c.decode(Float.self, forKey: .pixelMean)
        pixelDeviation = try c.decode(Float.self, forKey: .pixelDeviation)
        filterWeights = try c.decode([Float].self, forKey: .filterWeights)
        thresholds = try c.decode([Float].self, forKey: .thresholds)
        normalizationScales = try c.decodeIfPresent([Float].self, forKey: .normalizationScales) ?? []
        normalizationShifts = try c.decodeIfPresent([Float].self, forKey: .normalizationShifts) ?? []
        denseWeights = try c.decode([Float].self, forKey: .denseWeights)
        denseBias = try c.decode([Float].self, forKey: .denseBias)
        integer = try c.decode(IntegerForm.self, forKey: .integer)
    }

    /// The folded batch norm (g_c, b_c) of filter c; (1, 0) without one.
    func normalization(_ c: Int) -> (scale: Float, shift: Float) {
        normalizationScales.isEmpty ? (1, 0) : (normalizationScales[c], normalizationShifts[c])
    }

    /// Whether the sizes of every array agree with the shape and the integer form is in range.
    public var isConsistent: Bool {
        let s = shape
        guard s.isValid, filterWeights.count == s.filterCount * s.kernelArea,
              denseWeights.count == s.classCount * featureCount, denseBias.count == s.classCount,
              integer.filterSigns.count == filterWeights.count, integer.filterSigns.allSatisfy({ $0 == 1 || $0 == -1 }),
              integer.denseWeights.count == denseWeights.count, integer.denseBias.count == s.classCount,
              pixelDeviation > 0 else { return false }
        switch activation {
        case .sign:
            return activationLevels >= 1 && thresholds.count == s.filterCount * activationLevels
                && integer.thresholds.count == s.filterCount * activationLevels
                && integer.thresholds.allSatisfy { $0 % 2 == 0 && abs($0) <= Self.maxThreshold }
                && s.kernelArea + Self.maxThreshold < 32
        case .scaledReLU:
            let normalized = normalizationScales.count == normalizationShifts.count
                && (normalizationScales.isEmpty || normalizationScales.count == s.filterCount)
                && (normalizationScales + normalizationShifts).allSatisfy(\.isFinite)
            return integer.alphas.count == s.filterCount && normalized
                && (integer.activationBiases.isEmpty || integer.activationBiases.count == s.filterCount)
        }
    }
}

// MARK: - Client-side preprocessing and the exact integer network

extension BinarizedCNN {
    /// Binactive: the sign of each standardized pixel, +1 where pixel ≥ mean.
    public func binarize(_ image: ArraySlice<Float>) -> [Int] {
        precondition(image.count == shape.pixelCount, "expected \(shape.pixelCount) pixels")
        return image.map { $0 >= pixelMean ? 1 : -1 }
    }

    /// The paper's K: |standardized pixel| averaged over each filter window (box filter).
    public func scaleMap(_ image: ArraySlice<Float>) -> [Float] {
        magnitudeScale.magnitudes(image, imageSide: shape.imageSide, outputSide: shape.convolutionSide)
    }

    /// The window and statistics of K (the scales are the graph's business).
    var magnitudeScale: GraphLayer.MagnitudeScale {
        GraphLayer.MagnitudeScale(pixelMean: pixelMean, pixelDeviation: pixelDeviation, kernelSide: shape.kernelSide, stride: shape.stride,
                                  fractionBits: Self.scaleFractionBits, scales: [], shifts: [], integerScales: [], integerShifts: [])
    }

    /// K quantized to ``scaleFractionBits`` fraction bits: what the client encrypts.
    public func quantizedScaleMap(_ image: ArraySlice<Float>) -> [Int] {
        magnitudeScale.quantizedMagnitudes(image, imageSide: shape.imageSide, outputSide: shape.convolutionSide)
    }

    /// S = sign(W) * x for every filter and output position, filter by filter, row by row.
    public func binarySums(_ bits: [Int]) -> [Int] {
        let s = shape, side = s.convolutionSide
        var sums = [Int](repeating: 0, count: s.filterCount * side * side)
        for c in 0..<s.filterCount {
            for i in 0..<side {
                for j in 0..<side {
                    var total = 0
                    for u in 0..<s.kernelSide {
                        for v in 0..<s.kernelSide {
                            total += integer.filterSigns[(c * s.kernelSide + u) * s.kernelSide + v]
                                * bits[(i * s.stride + u) * s.imageSide + j * s.stride + v]
                        }
                    }
                    sums[(c * side + i) * side + j] = total
                }
            }
        }
        return sums
    }

    /// Activation maps after the convolution: one per filter and threshold.
    public var channelCount: Int { shape.filterCount * activationLevels }
    /// The dense layer's input size: every channel's pooled map.
    public var featureCount: Int { shape.featureCount(channelsPerFilter: activationLevels) }

    /// The sign activations of every channel, channel c·L + k reading sign(S_c − t_{c,k}),
    /// map by map, row by row.
    func signChannels<T: Comparable>(_ sums: [Int], thresholds: [T], _ value: (Int) -> T) -> [Int] {
        let area = shape.convolutionSide * shape.convolutionSide, levels = activationLevels
        return (0..<(channelCount * area)).map { q in
            let channel = q / area, c = channel / levels
            return value(sums[c * area + q % area]) > thresholds[channel] ? 1 : -1
        }
    }

    /// Pooling of per-channel maps, channel by channel.
    func pool<T: Comparable & AdditiveArithmetic>(_ maps: [T]) -> [T] {
        (0..<featureCount).map { feature in
            let window = shape.poolWindow(feature).map { maps[$0] }
            switch shape.pooling {
            case .max: return window.max()!
            case .sum: return window.reduce(.zero, +)
            }
        }
    }

    /// The integer form's activation maps after the convolution (sign: ±1 per channel; scaled
    /// ReLU: ReLU(S·K·α + b) in units of 2^-(scale + alpha fraction bits)).
    public func integerActivations(_ image: ArraySlice<Float>) -> [Int] {
        let sums = binarySums(binarize(image))
        let area = shape.convolutionSide * shape.convolutionSide
        switch activation {
        case .sign:
            return signChannels(sums, thresholds: integer.thresholds) { $0 }
        case .scaledReLU:
            let k = quantizedScaleMap(image)
            return sums.indices.map { max(0, sums[$0] * k[$0 % area] * integer.alphas[$0 / area] + integer.activationBias($0 / area)) }
        }
    }

    /// The dense layer's input: the pooled activations.
    public func integerFeatures(_ image: ArraySlice<Float>) -> [Int] {
        pool(integerActivations(image))
    }

    /// The integer reference's class scores.
    public func integerScores(_ image: ArraySlice<Float>) -> [Int] {
        let features = integerFeatures(image), count = featureCount
        return (0..<shape.classCount).map { k in
            var total = integer.denseBias[k]
            for j in 0..<count { total += integer.denseWeights[k * count + j] * features[j] }
            return total
        }
    }

    /// The float model's class scores (trained parameters, no quantization).
    public func floatScores(_ image: ArraySlice<Float>) -> [Float] {
        let sums = binarySums(binarize(image))
        let area = shape.convolutionSide * shape.convolutionSide
        let activations: [Float]
        switch activation {
        case .sign:
            activations = signChannels(sums, thresholds: thresholds) { Float($0) }.map(Float.init)
        case .scaledReLU:
            let k = scaleMap(image), alphas = Self.alphas(filterWeights, shape: shape)
            activations = sums.indices.map { p in
                let (g, b) = normalization(p / area)
                return max(0, g * Float(sums[p]) * k[p % area] * alphas[p / area] + b)
            }
        }
        let features = pool(activations), count = featureCount
        return (0..<shape.classCount).map { k in
            var total = denseBias[k]
            for j in 0..<count { total += denseWeights[k * count + j] * features[j] }
            return total
        }
    }

    /// The predicted class of the float or the integer form.
    public func predict(_ image: ArraySlice<Float>, integer useInteger: Bool) -> Int {
        useInteger ? Self.argmax(integerScores(image)) : Self.argmax(floatScores(image))
    }

    /// Accuracy of the float or the integer form on `samples` of `data`, on all cores.
    public func accuracy(on data: Dataset, samples: [Int], integer useInteger: Bool) -> Double {
        let correct = Parallel.sum(count: samples.count) { i in
            predict(data.sample(samples[i]), integer: useInteger) == data.labels[samples[i]] ? 1 : 0
        }
        return Double(correct) / Double(samples.count)
    }

    /// The first index of the largest value.
    public static func argmax<T: Comparable>(_ values: [T]) -> Int {
        values.indices.max { values[$0] < values[$1] || (values[$0] == values[$1] && $0 > $1) }!
    }

    /// α_c = mean |W| over filter c.
    static func alphas(_ weights: [Float], shape: Shape) -> [Float] {
        (0..<shape.filterCount).map { c in
            weights[(c * shape.kernelArea)..<((c + 1) * shape.kernelArea)].reduce(0) { $0 + abs($1) } / Float(shape.kernelArea)
        }
    }

    /// The even integer threshold nearest to t, within ±maxThreshold.
    static func quantizeThreshold(_ t: Float) -> Int {
        let even = Int((t / 2).rounded()) * 2
        return min(max(even, -maxThreshold), maxThreshold)
    }
}

/// Work split over all cores.
enum Parallel {
    /// body(i) for i in 0..<count, concurrently, in index order.
    static func map<T: Sendable>(count: Int, _ body: @Sendable (Int) -> T) -> [T] {
        let slots = UnsafeMutableBufferPointer<T?>.allocate(capacity: count)
        slots.initialize(repeating: nil)
        defer { slots.deinitialize(); slots.deallocate() }
        nonisolated(unsafe) let output = slots
        DispatchQueue.concurrentPerform(iterations: count) { output[$0] = body($0) }
        return slots.map { $0! }
    }

    /// Σ body(i) for i in 0..<count, in as many chunks as there are cores.
    static func sum(count: Int, _ body: @Sendable (Int) -> Int) -> Int {
        let chunks = max(1, min(count, ProcessInfo.processInfo.activeProcessorCount))
        return map(count: chunks) { chunk in
            stride(from: chunk, to: count, by: chunks).reduce(0) { $0 + body($1) }
        }.reduce(0, +)
    }
}
