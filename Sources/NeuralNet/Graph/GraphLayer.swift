import Foundation

/// The shape of the tensor between two layers: `channels` maps of `height` × `width`, stored
/// channel by channel, row by row. A vector of n values is [n, 1, 1].
public struct TensorShape: Codable, Sendable, Hashable, CustomStringConvertible {
    public var channels, height, width: Int

    public init(channels: Int, height: Int, width: Int) {
        self.channels = channels
        self.height = height
        self.width = width
    }

    /// A vector of `count` values.
    public static func vector(_ count: Int) -> TensorShape { TensorShape(channels: count, height: 1, width: 1) }

    /// Values in the tensor.
    public var count: Int { channels * height * width }

    /// Whether every side is 1…4096, the channels at most 65,536 and the values at most 2^24:
    /// far above these networks, and checked before anything multiplies sides of a hostile file.
    public var isReasonable: Bool {
        (1...65536).contains(channels) && (1...4096).contains(height) && (1...4096).contains(width) && count <= 1 << 24
    }

    public var description: String { height == 1 && width == 1 ? "\(channels)" : "\(channels)×\(height)×\(width)" }

    /// The positions (channel, row, column as one flat index) that output `q` (channel, pooled
    /// row, pooled column) of a non-overlapping `side` × `side` pool over this tensor reads;
    /// lazy, so that reference loops over many records allocate nothing per output.
    public func poolWindow(_ q: Int, side p: Int) -> LazyMapSequence<Range<Int>, Int> {
        let pooledHeight = height / p, pooledWidth = width / p
        let c = q / (pooledHeight * pooledWidth), i = (q / pooledWidth) % pooledHeight, j = q % pooledWidth
        let (height, width) = (height, width)
        return (0..<(p * p)).lazy.map { w in (c * height + i * p + w / p) * width + j * p + w % p }
    }
}

/// One layer of a ``ModelGraph``: one case per kind, each with its trained float parameters
/// beside the exact integer ones that encrypted backends reproduce bit for bit.
///
/// Integer semantics (what ``ModelGraph/integerOutputs(_:)`` computes) are stated per case;
/// arithmetic wraps modulo 2^128, as an RLWE engine's does modulo its plaintext modulus.
public enum GraphLayer: Codable, Sendable, Equatable {
    /// Client side: each input compared with its thresholds, ±1 (Batchnorm + Binactive).
    case binarize(Binarize)
    /// Client side: pixels in [0, 1] to integers x̂ = round(x · levels) ∈ [0, levels].
    case fixedPoint(FixedPoint)
    /// A 2D convolution with zero padding and bias.
    case convolution(Convolution)
    /// The paper's scaled binarized activation map S·K·α_c + b_c, K the client's box-filtered
    /// pixel magnitudes (encrypted beside the signs).
    case magnitudeScale(MagnitudeScale)
    /// Sign activations at `levels` thresholds per channel.
    case sign(SignActivation)
    /// Σ c_k·x^k elementwise.
    case polynomial(PolynomialActivation)
    /// max(0, x) elementwise.
    case relu
    /// Max or sum over non-overlapping windows.
    case pool(Pool)
    /// A dense layer with bias over the flattened input.
    case dense(Dense)

    /// The kind of layer, in words (errors and descriptions name layers by it).
    public var kind: String {
        switch self {
        case .binarize: "binarize"
        case .fixedPoint: "fixed point"
        case .convolution: "convolution"
        case .magnitudeScale: "magnitude scale"
        case .sign: "sign"
        case .polynomial: "polynomial"
        case .relu: "ReLU"
        case .pool(let p): "\(p.kind.rawValue) pool"
        case .dense: "dense"
        }
    }

    /// Whether the client computes the layer on its plaintext before encrypting.
    public var isClientEncoding: Bool {
        switch self {
        case .binarize, .fixedPoint: true
        default: false
        }
    }

    /// out[i] = +1 if x[i mod n] ≥ t_i else −1 for n inputs: one threshold for every input or
    /// one per input (shape kept), or L·n thresholds, a thermometer code of L levels per input
    /// (a vector).
    public struct Binarize: Codable, Sendable, Equatable {
        public var thresholds: [Float]
        public init(thresholds: [Float]) { self.thresholds = thresholds }
    }

    /// x̂ = round(clamp(x, 0, 1) · levels) (NaN reads as 0).
    public struct FixedPoint: Codable, Sendable, Equatable {
        public var levels: Int
        public init(levels: Int) { self.levels = levels }
    }

    /// out[o, i, j] = b_o + Σ_{c,u,v} w[o, c, u, v] · x[c, i·stride + u − padding, j·stride + v − padding],
    /// zero outside the input.
    public struct Convolution: Codable, Sendable, Equatable {
        public var outputChannels, kernelSide, stride, padding: Int
        /// Trained weights [out][in][row][column] (binarized networks: the latent weights
        /// whose signs are the integer ones).
        public var weights: [Float]
        /// Trained biases, one per output channel (empty: none).
        public var bias: [Float]
        /// Integer weights, in the order of ``weights``.
        public var integerWeights: [Int64]
        /// Integer biases at the output's scale, one per output channel.
        public var integerBias: [Int128]

        public init(outputChannels: Int, kernelSide: Int, stride: Int, padding: Int, weights: [Float], bias: [Float],
                    integerWeights: [Int64], integerBias: [Int128]) {
            self.outputChannels = outputChannels
            self.kernelSide = kernelSide
            self.stride = stride
            self.padding = padding
            self.weights = weights
            self.bias = bias
            self.integerWeights = integerWeights
            self.integerBias = integerBias
        }

        /// The side of an output map for inputs of side `side`.
        public func outputSide(_ side: Int) -> Int { (side + 2 * padding - kernelSide) / stride + 1 }
    }

    /// out[c, i, j] = S[c, i, j] · K[i, j] · α_c + b_c, where K is the mean of |(x − mean)/deviation|
    /// over the convolution window at (i, j) of the raw image, rounded to `fractionBits` fraction
    /// bits by the client.
    public struct MagnitudeScale: Codable, Sendable, Equatable {
        public var pixelMean, pixelDeviation: Float
        /// The convolution window K averages over.
        public var kernelSide, stride: Int
        public var fractionBits: Int
        /// Trained scales g_c·α_c and shifts b_c.
        public var scales, shifts: [Float]
        /// Integer α_c (with g_c folded in) and b_c.
        public var integerScales, integerShifts: [Int]

        public init(pixelMean: Float, pixelDeviation: Float, kernelSide: Int, stride: Int, fractionBits: Int,
                    scales: [Float], shifts: [Float], integerScales: [Int], integerShifts: [Int]) {
            self.pixelMean = pixelMean
            self.pixelDeviation = pixelDeviation
            self.kernelSide = kernelSide
            self.stride = stride
            self.fractionBits = fractionBits
            self.scales = scales
            self.shifts = shifts
            self.integerScales = integerScales
            self.integerShifts = integerShifts
        }

        /// The box-filtered magnitudes of a side × side image, for outputs of side `outputSide`.
        public func magnitudes(_ image: ArraySlice<Float>, imageSide: Int, outputSide: Int) -> [Float] {
            let base = image.startIndex
            let area = Float(kernelSide * kernelSide)
            return (0..<(outputSide * outputSide)).map { p in
                let i = p / outputSide, j = p % outputSide
                var total: Float = 0
                for u in 0..<kernelSide {
                    for v in 0..<kernelSide {
                        total += abs((image[base + (i * stride + u) * imageSide + j * stride + v] - pixelMean) / pixelDeviation)
                    }
                }
                return total / area
            }
        }

        /// K as the client encrypts it.
        public func quantizedMagnitudes(_ image: ArraySlice<Float>, imageSide: Int, outputSide: Int) -> [Int] {
            // A NaN or infinite pixel (or statistics) reads as the largest magnitude, not a trap.
            magnitudes(image, imageSide: imageSide, outputSide: outputSide).map { k in
                let scaled = (k * Float(1 << fractionBits)).rounded()
                return scaled.isNaN ? 0 : Int(min(max(scaled, -0x1p40), 0x1p40))
            }
        }
    }

    /// Channel c yields `levels` channels: out[c·L + k] = +1 if x[c] > t_{c,k} else −1.
    public struct SignActivation: Codable, Sendable, Equatable {
        public var levels: Int
        /// Trained thresholds, channel by channel, `levels` each.
        public var thresholds: [Float]
        /// Integer thresholds in the order of ``thresholds``.
        public var integerThresholds: [Int]

        public init(levels: Int, thresholds: [Float], integerThresholds: [Int]) {
            self.levels = levels
            self.thresholds = thresholds
            self.integerThresholds = integerThresholds
        }
    }

    /// y = Σ c_k·x^k (x^0 first).
    public struct PolynomialActivation: Codable, Sendable, Equatable {
        /// Trained coefficients.
        public var coefficients: [Float]
        /// Integer coefficients, already multiplied by the scale powers that keep the layer exact.
        public var integerCoefficients: [Int128]

        public init(coefficients: [Float], integerCoefficients: [Int128]) {
            self.coefficients = coefficients
            self.integerCoefficients = integerCoefficients
        }
    }

    /// Non-overlapping `window` × `window` pooling; rows and columns past the last whole window
    /// are dropped.
    public struct Pool: Codable, Sendable, Equatable {
        public enum Kind: String, Codable, Sendable {
            /// The window's maximum (for ±1 values, their OR).
            case max
            /// The window's sum.
            case sum
        }
        public var kind: Kind
        public var window: Int

        public init(kind: Kind, window: Int) {
            self.kind = kind
            self.window = window
        }
    }

    /// out[k] = b_k + Σ_j w[k, j] · x[j], x flattened channel by channel, row by row.
    public struct Dense: Codable, Sendable, Equatable {
        public var outputCount: Int
        /// Trained weights, output by output.
        public var weights: [Float]
        /// Trained biases.
        public var bias: [Float]
        /// Integer weights, in the order of ``weights``.
        public var integerWeights: [Int64]
        /// Integer biases at the output's scale.
        public var integerBias: [Int128]

        public init(outputCount: Int, weights: [Float], bias: [Float], integerWeights: [Int64], integerBias: [Int128]) {
            self.outputCount = outputCount
            self.weights = weights
            self.bias = bias
            self.integerWeights = integerWeights
            self.integerBias = integerBias
        }
    }
}
