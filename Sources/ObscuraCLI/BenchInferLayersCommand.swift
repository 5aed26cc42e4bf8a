import ObscuraMath
import ArgumentParser
import CipherCircuits
import Foundation
import NeuralNet
import TFHE

/// The paper's `bitwise` mode on its binarized CNN (`paper-bnn-mnist`), layer by layer: each
/// layer's circuit is run on one output (fresh encryptions of the reference's inputs to that
/// layer), checked against the integer reference, timed on one thread, and extrapolated to the
/// layer's output count. End to end it would take hours; this measures what it would cost.
struct BenchInferLayers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer-layers",
        abstract: "Bitwise mode on paper-bnn-mnist: per-layer time from one timed output per layer, extrapolated.")

    @Option(help: "The circuit designs to time: paper, fast, or both.") var circuits: String = "paper,fast"
    @Flag(help: "Print one JSON object instead of one line per figure.") var json = false

    func run() throws {
        let methods = try circuits.split(separator: ",").map { name in
            guard let method = CircuitMethod(rawValue: String(name)) else { throw ValidationError("unknown circuit design '\(name)'") }
            return method
        }
        let cnn = try ModelCatalog.load("paper-bnn-mnist").binarizedCNN!
        let image = try Dataset.bundledSample(.mnist).sample(0)
        let s = cnn.shape, side = s.convolutionSide, area = side * side
        let secret = SecretKey(parameters: .booleanGates)
        let circuit = CircuitEvaluator(key: EvaluationKey(secret.makeEvaluationKey()))
        let encryptor = Encryptor(secretKey: secret)

        // Widths from the integer form: S in 7 bits; L = S·K·α + b and its pooled maxima in as many
        // bits as |L| needs (K ≤ the largest standardized pixel in fixed point); the dense
        // accumulator in as many as 432 terms of 8-bit weights need.
        let largestK = Int((max(1 - cnn.pixelMean, cnn.pixelMean) / cnn.pixelDeviation * Float(1 << BinarizedCNN.scaleFractionBits)).rounded(.up))
        let largestActivation = s.kernelArea * largestK * cnn.integer.alphas.map(abs).max()!
            + (cnn.integer.activationBiases.map(abs).max() ?? 0)
        let largestScore = cnn.featureCount * cnn.integer.denseWeights.map(abs).max()! * largestActivation + cnn.integer.denseBias.map(abs).max()!
        let (sumWidth, activationWidth, scoreWidth) = (7, EncryptedInteger.width(holding: largestActivation),
                                                     EncryptedInteger.width(holding: largestScore))
        let bits = cnn.binarize(image), sums = cnn.binarySums(bits), k = cnn.quantizedScaleMap(image)
        let activations = cnn.integerActivations(image), features = cnn.integerFeatures(image)
        let (c, i, j) = (0, 10, 12), position = c * area + i * side + j
        let encryptedImage = bits.map { HybridBit.encrypted(encryptor.encrypt(bit: $0 > 0)) }
        let filter = BinarizedConvolution(weights: cnn.integer.filterSigns[(c * s.kernelArea)..<((c + 1) * s.kernelArea)].map { $0 > 0 },
                                          size: s.kernelSide, accumulatorWidth: sumWidth)

        var report = Report(jsonOnly: json)
        report.add("bitwise_parameter_security_bits", Double(TFHEParameters.booleanGates.securityBits), "bits")
        for method in methods {
            var total = 0.0
            func layer(_ name: String, outputs: Int, expected: Int64, _ body: () -> EncryptedInteger) throws {
                let before = circuit.bootstrapCount
                var result: EncryptedInteger!
                let seconds = Clock.seconds { result = body() }
                guard encryptor.decrypt(result) == expected else {
                    throw ValidationError("\(name) (\(method.rawValue)): decrypted \(encryptor.decrypt(result)), reference \(expected)")
                }
                report.add("bitwise_\(name)_\(method.rawValue)_bootstraps_per_output", Double(circuit.bootstrapCount - before), "")
                report.add("bitwise_\(name)_\(method.rawValue)_s", seconds * Double(outputs), "s")
                total += seconds * Double(outputs)
            }
            try layer("conv", outputs: s.filterCount * area, expected: Int64(sums[position])) {
                filter.output(image: encryptedImage, side: s.imageSide, row: i, column: j, circuit: circuit, method: method)
            }
            let sum = encryptor.encrypt(Int64(sums[position]), width: activationWidth)
            let scale = encryptor.encrypt(Int64(k[i * side + j]), width: activationWidth)
            let bias = Int64(cnn.integer.activationBiases.isEmpty ? 0 : cnn.integer.activationBiases[c])
            let rawScaled = Int64(sums[position] * k[i * side + j] * cnn.integer.alphas[c]) + bias
            try layer("scale_k_alpha_bias", outputs: s.filterCount * area, expected: rawScaled) {
                let product = circuit.multiply(circuit.multiply(sum, scale, method: method), byPlain: Int64(cnn.integer.alphas[c]), method: method)
                return circuit.add(product, .plain(bias, width: activationWidth), method: method)
            }
            try layer("relu", outputs: s.filterCount * area, expected: max(0, rawScaled)) {
                circuit.relu(encryptor.encrypt(rawScaled, width: activationWidth), method: method)
            }
            let window = s.poolWindow(0)
            let pooledInputs = window.map { encryptor.encrypt(Int64(activations[$0]), width: activationWidth) }
            try layer("max_pool", outputs: cnn.featureCount, expected: Int64(features[0])) {
                circuit.maximum(ofWindow: pooledInputs, method: method)
            }
            // One term w·f + accumulator of class 0, on its first feature with a nonzero weight.
            let term = (0..<cnn.featureCount).first { cnn.integer.denseWeights[$0] != 0 } ?? 0
            let weight = Int64(cnn.integer.denseWeights[term]), accumulator = Int64(cnn.integer.denseBias[0])
            let feature = encryptor.encrypt(Int64(features[term]), width: scoreWidth)
            let partial = encryptor.encrypt(accumulator, width: scoreWidth)
            try layer("dense_term", outputs: s.classCount * cnn.featureCount, expected: accumulator + weight * Int64(features[term])) {
                circuit.add(partial, circuit.multiply(feature, byPlain: weight, method: method), method: method)
            }
            report.add("bitwise_total_\(method.rawValue)_one_thread_s", total, "s")
            report.add("bitwise_total_\(method.rawValue)_all_cores_s", total / Double(ProcessInfoCores.active), "s")
        }
        if json { print(report.json()) }
    }
}
