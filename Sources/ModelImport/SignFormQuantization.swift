import Foundation
import NeuralNet

/// How a float Conv → Relu → MaxPool → Gemm network is rewritten, post-training, into the form
/// that sign bootstraps run exactly (the form a quantization-aware export has already):
///
/// - **Input.** Each pixel x becomes a·[x ≥ c], a ±1 sign σ on the wire: a·[x ≥ c] = a·(σ + 1)/2,
///   so the convolution reads σ with its weights halved and Σ of them added to its bias.
/// - **Convolution.** Filter f's σ-weights become integers n times one unit u_f, the finest
///   largest/k with Σ|n| ≤ ``reach`` (so that every sum sits within 31 steps of every threshold).
/// - **ReLU.** relu(y_f)·α_f, α_f = L / (``clip`` · the filter's largest calibration
///   activation), is rounded to 0…L: L thresholds of the integer sum, one bootstrap reading
///   all of them. ReLU and max pooling commute with positive scaling, so the dense layer takes
///   1/α_f back.
/// - **Dense.** Its weights become ``denseBits``-bit integers times one unit.
///
/// The rewritten network is then a quantization-aware one, and lowers like one
/// (``ImportedNetwork/binarizedGraph(threshold:)``): its integer form is what encrypted
/// inference reproduces bit for bit.
public struct SignFormQuantization: Sendable, Equatable, CustomStringConvertible {
    /// Pixels at or above it are on (halfway between two 8-bit pixel values, so none ties).
    public var inputThreshold: Float
    /// The value an on pixel stands for.
    public var inputScale: Float
    /// The most Σ|n| of a filter's integer weights.
    public var reach: Int
    /// The ReLU's output levels above 0 (L thresholds per filter).
    public var levels: Int
    /// The fraction of a filter's largest calibration activation that its top level stands for.
    public var clip: Float
    /// The dense layer's integer weights' width.
    public var denseBits: Int

    public var description: String {
        String(format: "input x ≥ %.3f as %.1f, conv Σ|n| ≤ %d, ReLU to %d levels (top at %.0f%% of each filter's maximum), dense %d-bit",
               inputThreshold, inputScale, reach, levels, clip * 100, denseBits)
    }

    /// Input binarizations tried: thresholds between 8-bit pixel values, and the value an on pixel stands for.
    static let inputCandidates: [(threshold: Float, scale: Float)] = [76.5, 102.5, 127.5].flatMap { t in
        [0.8, 0.9, 1.0].map { (Float(t / 255), Float($0)) }
    }
    static let reachCandidates = [11, 13, 15]
    /// Fewer levels first: each level is one OR bootstrap per pooled position.
    static let levelCandidates = [3, 5, 7, 10, 15]
    static let clipCandidates: [Float] = [0.6, 1.0]
    /// Dense widths tried, widest first; narrower weights give a smaller answer (each partial sum
    /// spans fewer features before its noise or range is too large to decode).
    static let denseBitCandidates = [8, 7, 6]
    /// A narrower dense layer may cost this much accuracy on the calibration records.
    static let denseLossAllowed = 0.0025
}

/// What the post-training search for sign bootstraps measured.
public struct SignFormReport: Sendable {
    /// The rewrite chosen.
    public let chosen: SignFormQuantization
    /// Accuracy on the calibration records as each rewrite is added, in order, the first being
    /// the float network as imported: where accuracy is lost, and to what.
    public let stages: [(stage: String, accuracy: Double)]
    /// Every rewrite tried after the input's, with its integer accuracy on the calibration records.
    public let candidates: [(quantization: SignFormQuantization, accuracy: Double)]
}

extension ImportedNetwork {
    /// The convolution, max-pooling window and dense layer of a Conv → Relu (→ MaxPool) → Gemm
    /// network (ReLU and max pooling in either order), the shape the sign form covers.
    func signFormShape() throws(ImportError) -> (convolution: PolynomialNetwork.Convolution, maxPool: Int?, dense: PolynomialNetwork.Dense) {
        let shape = "post-training quantization for sign bootstraps covers Conv → Relu (→ MaxPool) → Gemm on one image channel"
        guard layers.count >= 3, case .convolution(let c) = layers[0], case .dense(let d) = layers[layers.count - 1] else {
            throw .malformed("\(shape); this network's layers are \(layers.map(\.label).joined(separator: ", "))")
        }
        var relu = false, maxPool: Int?
        for layer in layers[1..<(layers.count - 1)] {
            switch layer {
            case .relu where !relu: relu = true
            case .maxPool(let k) where maxPool == nil: maxPool = k
            default: throw .malformed("\(shape); it has \(layer.label) between them")
            }
        }
        guard relu else { throw .malformed("\(shape); the convolution has no ReLU") }
        guard inputShape.channels == 1, inputShape.height == inputShape.width else {
            throw .malformed("\(shape); the input is \(inputShape)")
        }
        guard c.padding == 0 else {
            throw .malformed("\(shape) without padding (a padded border would read as half an on pixel once the input is ±1)")
        }
        return (c, maxPool, d)
    }

    /// The network rewritten by `q` as a quantization-aware one, with `maxima` the largest
    /// activation of each filter (after the input and weight rewrites) on the calibration records.
    func signFormLayers(_ q: SignFormQuantization, convolution: PolynomialNetwork.Convolution, maxima: [Double],
                        maxPool: Int?, dense: PolynomialNetwork.Dense) throws(ImportError) -> [Layer] {
        let filters = convolution.outputChannels, area = convolution.weights.count / filters
        // α_f puts the top level (L at scale 1) at clip × the filter's largest activation; a
        // filter never positive on the calibration records is measured by the most it can reach.
        let alphas = (0..<filters).map { f in
            let reachable = convolution.weights[(f * area)..<((f + 1) * area)].reduce(0.0) { $0 + abs(Double($1)) }
                + abs(Double(convolution.bias[f]))
            let top = maxima[f] > 0 ? maxima[f] : reachable
            return top > 0 ? Double(q.levels) / (Double(q.clip) * top) : 1
        }
        var c = convolution
        for f in 0..<filters {
            for i in (f * area)..<((f + 1) * area) { c.weights[i] = Float(Double(c.weights[i]) * alphas[f]) }
            c.bias[f] = Float(Double(c.bias[f]) * alphas[f])
        }
        var d = dense
        let perChannel = d.inputCount / filters
        for j in d.weights.indices { d.weights[j] = Float(Double(d.weights[j]) / alphas[(j % d.inputCount) / perChannel]) }
        d.weights = Self.snapped(d.weights, bits: q.denseBits)
        let quantization = ActivationQuantization(scale: 1, zeroPoint: 0, minimum: 0, maximum: q.levels)
        return [.binarize(threshold: q.inputThreshold), .convolution(c), .relu, .quantize(quantization)]
            + (maxPool.map { [.maxPool(window: $0)] } ?? []) + [.dense(d)]
    }

    /// The convolution on ±1 signs of the input binarized as `q` says, its σ-weights integer
    /// multiples n of one unit per filter when `reach` is given, with Σ|n| ≤ reach.
    static func signInputConvolution(_ c: PolynomialNetwork.Convolution, scale: Float, reach: Int?) -> PolynomialNetwork.Convolution {
        var out = c, bias: [Float] = []
        let filters = c.outputChannels, area = c.weights.count / filters
        for f in 0..<filters {
            let range = (f * area)..<((f + 1) * area)
            // a·x̂ = a·(σ + 1)/2: the weights on σ are a·w/2, and Σ of them joins the bias.
            var halved = c.weights[range].map { Double($0) * Double(scale) / 2 }
            if let reach, let largest = halved.map(abs).max(), largest > 0 {
                func reached(_ unit: Double) -> Double { halved.reduce(0.0) { $0 + abs(($1 / unit).rounded()) } }
                // The finest unit largest/k that keeps Σ|n| ≤ reach; coarser still (small weights
                // rounding to 0) when even k = 1 does not, as with many weights near the largest.
                var unit = (1...max(1, reach)).reversed().lazy.map { largest / Double($0) }.first { reached($0) <= Double(reach) } ?? largest
                while reached(unit) > Double(reach) { unit *= 1.25 }
                halved = halved.map { ($0 / unit).rounded() * unit }
            }
            for (i, w) in zip(range, halved) { out.weights[i] = Float(w) }
            bias.append(Float(Double(c.bias.isEmpty ? 0 : c.bias[f]) + halved.reduce(0, +)))
        }
        out.bias = bias
        return out
    }

    /// `values` rounded to `bits`-bit integers times one unit (the largest magnitude at the top).
    static func snapped(_ values: [Float], bits: Int) -> [Float] {
        guard let largest = values.lazy.map({ abs(Double($0)) }).max(), largest > 0 else { return values }
        let unit = largest / Double((1 << (bits - 1)) - 1)
        return values.map { Float((Double($0) / unit).rounded() * unit) }
    }

    /// A float-only graph of `layers` (integer parameters zero), to measure a stage of the rewrite.
    static func floatGraph(inputShape: TensorShape, first: GraphLayer, convolution c: PolynomialNetwork.Convolution,
                           maxPool: Int?, dense d: PolynomialNetwork.Dense) -> ModelGraph {
        let zeros = { (n: Int) in [Int64](repeating: 0, count: n) }
        let layers: [GraphLayer] = [first,
            .convolution(.init(outputChannels: c.outputChannels, kernelSide: c.kernelSide, stride: c.stride, padding: c.padding,
                               weights: c.weights, bias: c.bias.isEmpty ? [Float](repeating: 0, count: c.outputChannels) : c.bias,
                               integerWeights: zeros(c.weights.count), integerBias: [Int128](repeating: 0, count: c.outputChannels))),
            .relu] + (maxPool.map { [GraphLayer.pool(.init(kind: .max, window: $0))] } ?? []) + [
            .dense(.init(outputCount: d.outputCount, weights: d.weights, bias: d.bias, integerWeights: zeros(d.weights.count),
                         integerBias: [Int128](repeating: 0, count: d.outputCount)))]
        return ModelGraph(inputShape: inputShape, layers: layers, decision: .argmax)
    }

    /// The float ReLU network rewritten for sign bootstraps (``SignFormQuantization``): each
    /// rewrite chosen on the `calibration` records, stage by stage: the input's binarization by
    /// float accuracy; then the fewest levels whose integer form keeps the float accuracy within
    /// `allowedLoss` (else the most accurate); then the narrowest dense layer that loses at most
    /// ``SignFormQuantization/denseLossAllowed`` more.
    public func signForm(calibration: Dataset, allowedLoss: Double) throws(ImportError) -> (graph: ModelGraph, report: SignFormReport) {
        let (convolution, maxPool, dense) = try signFormShape()
        guard calibration.count > 0, calibration.sampleSize == inputShape.count else {
            throw .malformed("calibration needs records of \(inputShape.count) values; \(calibration.name) has \(calibration.count) of \(calibration.sampleSize)")
        }
        let samples = Array(0..<calibration.count)
        func accuracy(_ graph: ModelGraph, integer: Bool) throws(ImportError) -> Double {
            do {
                return integer ? try graph.integerReference().accuracy(on: calibration, samples: samples)
                    : try graph.floatReference().accuracy(on: calibration, samples: samples)
            } catch {
                throw .malformed("\(error)")
            }
        }
        let original = try accuracy(Self.floatGraph(inputShape: inputShape, first: .fixedPoint(.init(levels: 255)),
                                                    convolution: convolution, maxPool: maxPool, dense: dense), integer: false)
        var stages: [(String, Double)] = [("float network as imported", original)]

        // The float network on ±1 inputs binarized at `threshold`, with convolution `c` on them.
        func onSigns(_ c: PolynomialNetwork.Convolution, threshold: Float) -> ModelGraph {
            Self.floatGraph(inputShape: inputShape, first: .binarize(.init(thresholds: [threshold])), convolution: c,
                            maxPool: maxPool, dense: dense)
        }
        var input = SignFormQuantization.inputCandidates[0], inputAccuracy = -1.0
        for candidate in SignFormQuantization.inputCandidates {
            let c = Self.signInputConvolution(convolution, scale: candidate.scale, reach: nil)
            let a = try accuracy(onSigns(c, threshold: candidate.threshold), integer: false)
            if a > inputAccuracy { (input, inputAccuracy) = (candidate, a) }
        }
        stages.append((String(format: "input binarized: x ≥ %.3f as %.1f", input.threshold, input.scale), inputAccuracy))

        // Per reach: the integer convolution, its float accuracy and each filter's largest activation.
        var rewrittenConvolutions: [Int: (convolution: PolynomialNetwork.Convolution, accuracy: Double, maxima: [Double])] = [:]
        var candidates: [(quantization: SignFormQuantization, accuracy: Double, graph: ModelGraph)] = [], refusal: ImportError?
        func measure(_ q: SignFormQuantization) throws(ImportError) -> (quantization: SignFormQuantization, accuracy: Double, graph: ModelGraph) {
            let c = rewrittenConvolutions[q.reach]!
            let rewritten = ImportedNetwork(inputShape: inputShape,
                                            layers: try signFormLayers(q, convolution: c.convolution, maxima: c.maxima, maxPool: maxPool,
                                                                       dense: dense),
                                            operators: operators)
            let graph = try rewritten.binarizedGraph(threshold: q.inputThreshold)
            let measured = (q, try accuracy(graph, integer: true), graph)
            candidates.append(measured)
            return measured
        }
        for reach in SignFormQuantization.reachCandidates {
            let c = Self.signInputConvolution(convolution, scale: input.scale, reach: reach)
            let graph = onSigns(c, threshold: input.threshold)
            rewrittenConvolutions[reach] = (c, try accuracy(graph, integer: false),
                                            try Self.activationMaxima(graph, data: calibration, filters: c.outputChannels))
            for levels in SignFormQuantization.levelCandidates {
                for clip in SignFormQuantization.clipCandidates {
                    // A rewrite the lowering refuses (a threshold beyond ±2^40) is left out.
                    do {
                        _ = try measure(SignFormQuantization(inputThreshold: input.threshold, inputScale: input.scale, reach: reach,
                                                             levels: levels, clip: clip, denseBits: SignFormQuantization.denseBitCandidates[0]))
                    } catch {
                        refusal = refusal ?? error
                    }
                }
            }
        }
        if candidates.isEmpty, let refusal { throw refusal }
        let keeping = candidates.filter { $0.accuracy >= original - allowedLoss }
        let fewest = keeping.isEmpty ? candidates : keeping.filter { $0.quantization.levels == keeping.map(\.quantization.levels).min() }
        var chosen = fewest.max { $0.accuracy < $1.accuracy }!
        stages.append(("conv weights to integers n·u_f, Σ|n| ≤ \(chosen.quantization.reach) per filter",
                       rewrittenConvolutions[chosen.quantization.reach]!.accuracy))
        stages.append((String(format: "ReLU to %d levels (top at %.0f%% of each filter's maximum), dense %d-bit", chosen.quantization.levels,
                              chosen.quantization.clip * 100, chosen.quantization.denseBits), chosen.accuracy))
        let widest = chosen.accuracy
        for bits in SignFormQuantization.denseBitCandidates.dropFirst() {
            var q = chosen.quantization
            q.denseBits = bits
            if let narrower = try? measure(q), narrower.accuracy >= widest - SignFormQuantization.denseLossAllowed { chosen = narrower }
        }
        if chosen.quantization.denseBits != SignFormQuantization.denseBitCandidates[0] {
            stages.append(("dense narrowed to \(chosen.quantization.denseBits) bits: the integer form", chosen.accuracy))
        }
        return (chosen.graph, SignFormReport(chosen: chosen.quantization, stages: stages, candidates: candidates.map { ($0.quantization, $0.accuracy) }))
    }

    /// Each filter's largest output before the ReLU over `data` (the graph's first two layers),
    /// or 0 when it is never positive.
    static func activationMaxima(_ graph: ModelGraph, data: Dataset, filters: Int) throws(ImportError) -> [Double] {
        let reference: ModelGraph.Reference<Float>
        do {
            reference = try graph.floatReference()
        } catch {
            throw .malformed("\(error)")
        }
        var maxima = [Double](repeating: 0, count: filters)
        for i in 0..<data.count {
            let output = reference.outputs(data.sample(i), layers: 2)
            let area = output.count / filters
            for f in 0..<filters { maxima[f] = max(maxima[f], Double(output[(f * area)..<((f + 1) * area)].max() ?? 0)) }
        }
        return maxima
    }
}
