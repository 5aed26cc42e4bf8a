import Foundation

extension PolynomialNetwork {
    /// CryptoNets' topology (Gilad-Bachrach et al. 2016): conv 5 filters 5×5 stride 2 (padding 1)
    /// on 28×28 → 5×13×13, activation, dense 845 → 100, activation, dense 100 → 10; random
    /// weights from `seed`. `activation` is x² for CryptoNets/HCNN, a fitted polynomial for CryptoDL.
    public static func cryptoNets(activation: [Float], seed: UInt64) -> PolynomialNetwork {
        var random = SplitMix64(seed: seed)
        func uniform(_ count: Int, fanIn: Int) -> [Float] { initialWeights(count, fanIn: fanIn, &random) }
        let convolution = Convolution(inputChannels: 1, outputChannels: 5, kernelSide: 5, stride: 2, padding: 1, inputSide: 28,
                                      weights: uniform(125, fanIn: 25), bias: [Float](repeating: 0, count: 5))
        let hidden = Dense(inputCount: 845, outputCount: 100, weights: uniform(84_500, fanIn: 845), bias: [Float](repeating: 0, count: 100))
        let output = Dense(inputCount: 100, outputCount: 10, weights: uniform(1000, fanIn: 100), bias: [Float](repeating: 0, count: 10))
        return PolynomialNetwork(inputSide: 28, layers: [.convolution(convolution), .polynomial(activation), .dense(hidden),
                                                         .polynomial(activation), .dense(output)])
    }

    /// HCNN's MNIST topology (Al Badawi et al. 2018, their Table 4): conv 5 filters 5×5 stride 2
    /// (no padding) on 28×28 → 5×12×12, activation, conv 50 filters 5×5 stride 2 → 50×4×4,
    /// activation, dense 800 → 10; random weights from `seed`.
    public static func hcnn(activation: [Float], seed: UInt64) -> PolynomialNetwork {
        var random = SplitMix64(seed: seed)
        func uniform(_ count: Int, fanIn: Int) -> [Float] { initialWeights(count, fanIn: fanIn, &random) }
        let first = Convolution(inputChannels: 1, outputChannels: 5, kernelSide: 5, stride: 2, padding: 0, inputSide: 28,
                                weights: uniform(125, fanIn: 25), bias: [Float](repeating: 0, count: 5))
        let second = Convolution(inputChannels: 5, outputChannels: 50, kernelSide: 5, stride: 2, padding: 0, inputSide: 12,
                                 weights: uniform(6250, fanIn: 125), bias: [Float](repeating: 0, count: 50))
        let output = Dense(inputCount: 800, outputCount: 10, weights: uniform(8000, fanIn: 800), bias: [Float](repeating: 0, count: 10))
        return PolynomialNetwork(inputSide: 28, layers: [.convolution(first), .polynomial(activation), .convolution(second),
                                                         .polynomial(activation), .dense(output)])
    }

    /// `count` initial weights uniform in ±1/√fanIn.
    static func initialWeights(_ count: Int, fanIn: Int, _ random: inout SplitMix64) -> [Float] {
        let bound = (1 / Float(fanIn)).squareRoot()
        return (0..<count).map { _ in (Float(random.next() % 2_000_001) / 1_000_000 - 1) * bound }
    }

    /// Least-squares polynomial of `degree` fitted to ReLU on [-bound, bound] (CryptoDL's
    /// approach: a low-degree stand-in trained into the network).
    public static func reluApproximation(degree: Int, bound: Float) -> [Float] {
        polynomialApproximation(of: .relu, degree: degree, bound: bound)
    }

    /// Least-squares polynomial of `degree` (coefficients from x^0 up) fitted to `activation` on
    /// 201 evenly spaced points of [-bound, bound], as CryptoDL fits ReLU, sigmoid and tanh.
    public static func polynomialApproximation(of activation: ApproximatedActivation, degree: Int, bound: Float) -> [Float] {
        let samples = (0...200).map { -Double(bound) + 2 * Double(bound) * Double($0) / 200 }
        let n = degree + 1
        var normal = [[Double]](repeating: [Double](repeating: 0, count: n + 1), count: n)
        for x in samples {
            let powers = (0..<n).map { pow(x, Double($0)) }
            for r in 0..<n {
                for c in 0..<n { normal[r][c] += powers[r] * powers[c] }
                normal[r][n] += powers[r] * activation(x)
            }
        }
        // Gaussian elimination with partial pivoting on the normal equations.
        for col in 0..<n {
            let pivot = (col..<n).max { abs(normal[$0][col]) < abs(normal[$1][col]) }!
            normal.swapAt(col, pivot)
            for r in 0..<n where r != col {
                let f = normal[r][col] / normal[col][col]
                for c in col...n { normal[r][c] -= f * normal[col][c] }
            }
        }
        return (0..<n).map { Float(normal[$0][n] / normal[$0][$0]) }
    }

    /// The trainable parameters, layer by layer (weights then bias).
    var parameters: [Float] {
        layers.flatMap { layer -> [Float] in
            switch layer {
            case .convolution(let c): c.weights + c.bias
            case .dense(let d): d.weights + d.bias
            case .polynomial: []
            }
        }
    }

    /// The network with its parameters replaced by `values` (in ``parameters`` order).
    func with(parameters values: [Float]) -> PolynomialNetwork {
        var copy = self, offset = 0
        func take(_ count: Int) -> [Float] { defer { offset += count }; return Array(values[offset..<(offset + count)]) }
        copy.layers = layers.map { layer in
            switch layer {
            case .convolution(var c): c.weights = take(c.weights.count); c.bias = take(c.bias.count); return .convolution(c)
            case .dense(var d): d.weights = take(d.weights.count); d.bias = take(d.bias.count); return .dense(d)
            case .polynomial: return layer
            }
        }
        return copy
    }

    /// Adds one image's cross-entropy gradient to `gradient` (in ``parameters`` order).
    func accumulate(image: [Float], label: Int, into gradient: inout [Float]) -> (loss: Float, correct: Bool) {
        let trace = forwardTrace(image)
        let logits = trace.last!
        let top = logits.max()!
        let exps = logits.map { exp($0 - top) }
        let partition = exps.reduce(0, +)
        var g = exps.indices.map { exps[$0] / partition - ($0 == label ? 1 : 0) }
        var offsets: [Int] = [], offset = 0
        for layer in layers {
            offsets.append(offset)
            switch layer {
            case .convolution(let c): offset += c.weights.count + c.bias.count
            case .dense(let d): offset += d.weights.count + d.bias.count
            case .polynomial: break
            }
        }
        for (l, layer) in layers.enumerated().reversed() {
            let x = trace[l], base = offsets[l]
            var dx = [Float](repeating: 0, count: x.count)
            switch layer {
            case .convolution(let c):
                let area = c.outputSide * c.outputSide
                c.forEachProduct { o, w, i in
                    gradient[base + w] += g[o] * x[i]
                    dx[i] += g[o] * c.weights[w]
                }
                for o in 0..<c.outputCount { gradient[base + c.weights.count + o / area] += g[o] }
            case .dense(let d):
                for o in 0..<d.outputCount where g[o] != 0 {
                    let row = o * d.inputCount
                    for i in 0..<d.inputCount {
                        gradient[base + row + i] += g[o] * x[i]
                        dx[i] += g[o] * d.weights[row + i]
                    }
                    gradient[base + d.weights.count + o] += g[o]
                }
            case .polynomial(let coefficients):
                for i in x.indices {
                    var derivative: Float = 0, power: Float = 1
                    for k in 1..<max(coefficients.count, 1) {
                        derivative += Float(k) * coefficients[k] * power
                        power *= x[i]
                    }
                    dx[i] = g[i] * derivative
                }
            }
            g = dx
        }
        return (-log(max(exps[label] / partition, 1e-12)), BinarizedCNN.argmax(logits) == label)
    }

    /// Trains with softmax cross-entropy, Adam with cosine decay and gradient-norm clipping
    /// (polynomial activations make large steps explode), batches split across all cores.
    public static func train(_ initial: PolynomialNetwork, on data: Dataset, samples: [Int],
                             options: BinarizedCNN.TrainingOptions,
                             progress: (Int, Double, Double) -> Void = { _, _, _ in }) -> PolynomialNetwork {
        var network = initial
        var parameters = initial.parameters
        var adam = Adam(count: parameters.count, learningRate: options.learningRate)
        var random = SplitMix64(seed: options.seed)
        var order = Array(samples.indices)
        let threads = max(1, options.threads)
        for epoch in 1...options.epochs {
            random.shuffle(&order)
            adam.learningRate = options.learningRate * 0.5 * (1 + cos(Float.pi * Float(epoch - 1) / Float(options.epochs)))
            var epochLoss = 0.0, epochCorrect = 0
            for start in stride(from: 0, to: order.count, by: options.batchSize) {
                let batch = order[start..<min(start + options.batchSize, order.count)].map { samples[$0] }
                let current = network, parameterCount = parameters.count
                let results = Parallel.map(count: threads) { t -> ([Float], Double, Int) in
                    var gradient = [Float](repeating: 0, count: parameterCount)
                    var loss = 0.0, correct = 0
                    for b in stride(from: t, to: batch.count, by: threads) {
                        var shifts = SplitMix64(seed: options.seed ^ UInt64(epoch) << 40 ^ UInt64(start + b))
                        let image = BinarizedCNN.shifted(data.sample(batch[b]), side: current.inputSide, maxShift: options.maxShift, using: &shifts)
                        let result = current.accumulate(image: image, label: data.labels[batch[b]], into: &gradient)
                        loss += Double(result.loss)
                        correct += result.correct ? 1 : 0
                    }
                    return (gradient, loss, correct)
                }
                var gradient = results[0].0
                for r in results.dropFirst() { for i in gradient.indices { gradient[i] += r.0[i] } }
                let scale = 1 / Float(batch.count)
                let norm = gradient.reduce(0) { $0 + $1 * $1 }.squareRoot() * scale
                let clip = norm > 5 ? 5 / norm : 1
                adam.step(&parameters, gradient: gradient.map { $0 * scale * clip })
                network = network.with(parameters: parameters)
                epochLoss += results.reduce(0) { $0 + $1.1 }
                epochCorrect += results.reduce(0) { $0 + $1.2 }
            }
            progress(epoch, epochLoss / Double(samples.count), Double(epochCorrect) / Double(samples.count))
        }
        return network
    }
}

/// The activations that CryptoDL replaces by fitted low-degree polynomials.
public enum ApproximatedActivation: String, CaseIterable, Sendable {
    case relu, sigmoid, tanh

    /// The exact activation.
    public func callAsFunction(_ x: Double) -> Double {
        switch self {
        case .relu: max(x, 0)
        case .sigmoid: 1 / (1 + exp(-x))
        case .tanh: Foundation.tanh(x)
        }
    }
}
