import ArgumentParser
import CipherCircuits
import Foundation
import ObscuraMath
import TFHE

struct BenchCircuits: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circuits",
        abstract: "The main paper's Table II rows: its circuits and Obscura's faster ones, side by side.")

    @Flag(help: "Print one JSON object instead of one line per figure.") var json = false
    @Option(help: "Timed repetitions of each single-thread figure (the median is reported).") var runs = 5
    @Option(help: "Output pixels timed to extrapolate the paper method's convolution.") var paperConvOutputs = 1
    @Flag(help: "Skip the binarized convolution (several minutes).") var skipConvolution = false

    /// The paper's Table II, in seconds (i7-6700, one thread, TFHE at about 80-bit security).
    static let paperFigures: [(String, Double)] = [
        ("compare_8bit", 0.27), ("compare_16bit", 0.64), ("relu_8bit", 0.09), ("relu_16bit", 0.21),
        ("binarized_conv_5x5_28x28", 6 * 3600 + 24 * 60 + 14),
    ]

    func run() throws {
        var report = Report(jsonOnly: json)
        let parameters = TFHEParameters.booleanGates
        let secret = SecretKey(parameters: parameters)
        let key = EvaluationKey(secret.makeEvaluationKey())
        var encryptor = Encryptor(secretKey: secret)
        let circuit = CircuitEvaluator(key: key)
        report.add("security_bits", Double(parameters.securityBits), "bits")
        for (name, seconds) in Self.paperFigures { report.add("\(name)_paper_figure_s", seconds, "s") }

        /// Times `body` on one thread (median of `runs`), checks it, and reports time and bootstraps.
        func measure(_ name: String, _ body: () -> Bool) {
            var bootstraps = 0
            var correct = true
            let seconds = Clock.median(runs: runs) {
                let before = circuit.bootstrapCount
                correct = body() && correct
                bootstraps = circuit.bootstrapCount - before
            }
            precondition(correct, "\(name) decrypted to a wrong value")
            report.add("\(name)_s", seconds, "s")
            report.add("\(name)_bootstraps", Double(bootstraps), "")
        }

        for width in [8, 16] {
            let a: Int64 = width == 8 ? -77 : -12_345, b: Int64 = width == 8 ? 45 : 23_456
            let x = encryptor.encrypt(a, width: width), y = encryptor.encrypt(b, width: width)
            for method in CircuitMethod.allCases {
                let suffix = method == .paper ? "paper_method" : "best"
                measure("compare_\(width)bit_\(suffix)") { encryptor.decrypt(circuit.greaterThan(x, y, method: method)) == (a > b) }
                measure("relu_\(width)bit_\(suffix)") { encryptor.decrypt(circuit.relu(y, method: method)) == max(b, 0) }
            }
        }
        let x8 = encryptor.encrypt(-77, width: 8), y8 = encryptor.encrypt(45, width: 8)
        measure("max_8bit_paper_method") { encryptor.decrypt(circuit.maximum(x8, y8, method: .paper)) == 45 }
        measure("max_8bit_best") { encryptor.decrypt(circuit.maximum(x8, y8, method: .fast)) == 45 }
        let parallel = ParallelCircuits(key: key)
        let threads = ProcessInfoCores.active
        report.add("relu_8bit_best_all_cores_s", Clock.median(runs: runs) {
            precondition(encryptor.decrypt(parallel.relu(x8).value) == 0)
        }, "s")
        report.add("max_8bit_best_all_cores_s", Clock.median(runs: runs) {
            precondition(encryptor.decrypt(parallel.maximum(x8, y8).value) == 45)
        }, "s")
        report.add("all_cores_threads", Double(threads), "")
        let x16 = encryptor.encrypt(-12_345, width: 16), y16 = encryptor.encrypt(23_456, width: 16)
        measure("add_16bit_paper_method") { encryptor.decrypt(circuit.add(x16, y16, method: .paper)) == 11_111 }
        measure("add_16bit") { encryptor.decrypt(circuit.add(x16, y16, method: .fast)) == 11_111 }
        measure("mul_8bit_plain_paper_method") { encryptor.decrypt(circuit.multiply(x8, byPlain: 93, method: .paper)) == EncryptedInteger.signExtend(-77 * 93, width: 8) }
        measure("mul_8bit_plain") { encryptor.decrypt(circuit.multiply(x8, byPlain: 93, method: .fast)) == EncryptedInteger.signExtend(-77 * 93, width: 8) }

        try measureLookupTableActivations(report: &report)
        if !skipConvolution { try measureConvolution(secret: secret, key: key, encryptor: &encryptor, report: &report) }
        if json { print(report.json()) }
    }

    /// ReLU and sign of a signed integer held in one LWE ciphertext, by one programmable
    /// bootstrap: 4-bit values on int4-128, 6-bit values on int6-128 (one thread).
    private func measureLookupTableActivations(report: inout Report) throws {
        for (parameters, bits) in [(TFHEParameters.integer4Bit128, 4), (.integer6Bit128, 6)] {
            let secret = SecretKey(parameters: parameters)
            let evaluator = Evaluator(key: EvaluationKey(secret.makeEvaluationKey()))
            let encryptor = Encryptor(secretKey: secret)
            let low = -(1 << (bits - 1)), high = (1 << (bits - 1)) - 1
            let x = encryptor.encryptInteger(low + 3, range: low...high)
            var relu: LweInteger!, sign: LweInteger!
            let reluSeconds = try Clock.seconds { relu = try evaluator.apply({ max($0, 0) }, to: x) }
            let signSeconds = try Clock.seconds { sign = try evaluator.apply({ $0 >= 0 ? 1 : 0 }, to: x) }
            guard encryptor.decrypt(relu) == 0, encryptor.decrypt(sign) == 0 else { throw DemoError.wrongResult("PBS activation") }
            report.add("relu_\(bits)bit_pbs_s", reluSeconds, "s")
            report.add("sign_\(bits)bit_pbs_s", signSeconds, "s")
        }
    }

    /// One binarized 5×5 filter over a 28×28 encrypted image (576 outputs, 20-bit accumulators).
    /// The paper method is timed on a few outputs and extrapolated; the fast method runs every
    /// output on all cores and is checked against the plaintext reference.
    private func measureConvolution(secret: SecretKey, key: EvaluationKey, encryptor: inout Encryptor,
                                    report: inout Report) throws {
        let side = 28, outputs = 24 * 24
        var rng = CSPRNG.fromSystemEntropy(domain: "bench.conv")
        let image = (0..<(side * side)).map { _ in rng.next() & 1 == 1 }
        let filter = BinarizedConvolution(weights: (0..<25).map { _ in rng.next() & 1 == 1 }, size: 5, accumulatorWidth: 20)
        let encrypted = image.map { HybridBit.encrypted(encryptor.encrypt(bit: $0)) }

        let paperCircuit = CircuitEvaluator(key: key)
        let paperSeconds = Clock.seconds {
            for index in 0..<paperConvOutputs {
                let output = filter.output(image: encrypted, side: side, row: index / 24, column: index % 24,
                                           circuit: paperCircuit, method: .paper)
                precondition(encryptor.decrypt(output) == filter.reference(image: image, side: side, row: index / 24, column: index % 24))
            }
        }
        // Extrapolated: one thread, `paperConvOutputs` outputs timed, times 576.
        report.add("binarized_conv_5x5_28x28_paper_method_s", paperSeconds / Double(paperConvOutputs) * Double(outputs), "s")
        report.add("binarized_conv_5x5_28x28_paper_method_timed_outputs", Double(paperConvOutputs), "")
        report.add("binarized_conv_5x5_28x28_paper_method_bootstraps", Double(paperCircuit.bootstrapCount / paperConvOutputs * outputs), "")

        let threads = ProcessInfoCores.active
        let decryptor = encryptor
        let progress = Progress(total: outputs, label: "binarized convolution (fast, \(threads) threads)", quiet: json)
        var results: [(Int64, Int)] = []
        let seconds = Clock.seconds {
            results = key.parallelMap(count: outputs) { evaluator, index in
                let circuit = CircuitEvaluator(gates: evaluator)
                let before = evaluator.bootstrapCount
                let output = filter.output(image: encrypted, side: side, row: index / 24, column: index % 24,
                                           circuit: circuit, method: .fast)
                progress.advance()
                return (decryptor.decrypt(output), evaluator.bootstrapCount - before)
            }
        }
        progress.finish()
        for index in 0..<outputs {
            let expected = filter.reference(image: image, side: side, row: index / 24, column: index % 24)
            guard results[index].0 == expected else { throw DemoError.wrongResult("convolution output \(index)") }
        }
        report.add("binarized_conv_5x5_28x28_s", seconds, "s")
        report.add("binarized_conv_5x5_28x28_bootstraps", Double(results.reduce(0) { $0 + $1.1 }), "")
        report.add("binarized_conv_threads", Double(threads), "")
    }
}
