import ArgumentParser
import ObscuraMath
import PrivateInference
import TFHE

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Obscura (build with -c release: debug figures mean nothing).",
        subcommands: [BenchTFHE.self, BenchRLWE.self, BenchSIMD.self, BenchCircuits.self, BenchInfer.self, BenchInferLayers.self, BenchService.self])
}

struct BenchTFHE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tfhe",
        abstract: "Key generation, encryption, gate and programmable bootstrapping, key sizes.")

    @Flag(help: "Print one JSON object instead of one line per figure.") var json = false
    @Option(help: "Timed repetitions of each single-thread figure (the median is reported).") var runs = 21
    @Flag(name: .customLong("skip-6bit"), help: "Skip the 6-bit set (its key takes a few seconds to make).")
    var skip6Bit = false
    @Flag(name: .customLong("skip-multi-bit"), help: "Skip the 4-bit multi-bit sets (grouping factors 2, 3 and 4).")
    var skipMultiBit = false

    func run() throws {
        var report = Report(jsonOnly: json)
        let gates = TFHEParameters.booleanGates
        report.add("security_bits", Double(gates.securityBits), "bits")
        report.add("lwe_dimension", Double(gates.lweDimension), "")
        report.add("polynomial_size", Double(gates.polynomialSize), "")
        report.add("glwe_dimension", Double(gates.glweDimension), "")

        var secret: SecretKey!
        var compressed: CompressedEvaluationKey!
        var key: EvaluationKey!
        let keygen = Clock.seconds {
            secret = SecretKey(parameters: gates)
            compressed = secret.makeEvaluationKey()
            key = EvaluationKey(compressed)
        }
        report.add("keygen_ms", keygen * 1000, "ms")
        let encryptor = Encryptor(secretKey: secret)
        report.add("encrypt_us", Clock.median(runs: 1001) { _ = encryptor.encryptSeeded(plaintext: 0) } * 1e6, "us")

        let evaluator = Evaluator(key: key)
        let a = encryptor.encrypt(bit: true), b = encryptor.encrypt(bit: false)
        _ = evaluator.nand(a, b)
        report.add("gate_bootstrap_ms", Clock.median(runs: runs) { _ = evaluator.nand(a, b) } * 1000, "ms")
        let threads = ProcessInfoCores.active
        let batch = 32 * threads
        let inputs = (0..<batch).map { i in encryptor.encrypt(bit: i % 2 == 0) }
        let allCores = Clock.seconds {
            _ = key.parallelMap(count: batch) { evaluator, i in evaluator.nand(inputs[i], inputs[(i + 1) % batch]) }
        }
        report.add("gates_per_second_all_cores", Double(batch) / allCores, "gates/s")
        report.add("threads", Double(threads), "")
        report.add("gate_failure_log2", NoiseModel(gates).gateFailureLog2, "log2")

        report.add("bootstrapping_key_bytes", Double(compressed.bootstrapBodies.count * 8 + 16), "bytes")
        report.add("keyswitching_key_bytes", Double(compressed.keySwitchBodies.count * 8 + 16), "bytes")
        report.add("evaluation_key_memory_bytes", Double(key.memoryBytes), "bytes")
        report.add("ciphertext_bytes", Double(a.serialized(parameters: gates).count), "bytes")
        report.add("seeded_ciphertext_bytes",
                   Double(encryptor.encryptSeeded(plaintext: 0).serialized(parameters: gates).count), "bytes")

        measurePBS(.integer2Bit128, report: &report)
        measurePBS(.integer4Bit128, report: &report)
        if !skip6Bit { measurePBS(.integer6Bit128, report: &report) }
        if !skipMultiBit {
            for parameters in TFHEParameters.secureSets where parameters.groupingFactor > 1 {
                measurePBS(parameters, report: &report)
            }
        }
        measureTransforms(report: &report)
        if json { print(report.json()) }
    }

    /// One-thread median of a bootstrap with a table over the whole message space.
    /// Figures are named by ``BootstrapCosts/benchLabel(_:)``, which is how the planner reads them back.
    private func measurePBS(_ parameters: TFHEParameters, report: inout Report) {
        let label = BootstrapCosts.benchLabel(parameters)
        let secret = SecretKey(parameters: parameters)
        let key = EvaluationKey(secret.makeEvaluationKey())
        let encryptor = Encryptor(secretKey: secret)
        let evaluator = Evaluator(key: key)
        let p = parameters.plaintextModulus
        let input = encryptor.encryptInteger(p - 2)
        var correct = true
        let seconds = Clock.median(runs: Swift.max(3, runs / Swift.max(1, p / 8))) {
            let output = try! evaluator.apply({ ($0 * $0 + 1) % p }, to: input)
            correct = correct && encryptor.decrypt(output) == ((p - 2) * (p - 2) + 1) % p
        }
        precondition(correct, "\(label) decrypted to a wrong value")
        report.add("\(label)_ms", seconds * 1000, "ms")
        // A batch streams the keys once for all its members; all cores run batches side by side.
        let table = LookupTable(parameters: parameters) { ($0 * $0 + 1) % p }
        let batch = [LweCiphertext](repeating: input.ciphertext, count: Evaluator.batchSize)
        let readings = [[Int]](repeating: [0], count: batch.count)
        let batchSeconds = Clock.median(runs: Swift.max(3, runs / Swift.max(1, p / 8))) {
            _ = evaluator.bootstrap(batch, table: table, coefficients: readings)
        }
        report.add("\(label)_batched_ms", batchSeconds * 1000 / Double(batch.count), "ms")
        let many = 8 * Evaluator.batchSize * ProcessInfoCores.active
        var outputs: [[LweCiphertext]] = []
        let elapsed = Clock.seconds { outputs = key.bootstrapInParallel(count: many, table: table) { _ in (input.ciphertext, [0]) } }
        precondition(outputs.allSatisfy { encryptor.decryptInteger($0[0]) == ((p - 2) * (p - 2) + 1) % p },
                     "\(label) batched bootstraps decrypted to a wrong value")
        report.add("\(label)_per_second_all_cores", Double(many) / elapsed, "bootstraps/s")
        report.add("\(label)_failure_log2", NoiseModel(parameters).integerFailureLog2, "log2")
        report.add("\(label)_bootstrapping_key_bytes", Double(key.compressed.bootstrapBodies.count * 8 + 16), "bytes")
        report.add("\(label)_evaluation_key_memory_bytes", Double(key.memoryBytes), "bytes")
        // Result packing: one GLWE of N' values, on one thread, checked.
        let shape = parameters.packing
        let values = [LweCiphertext](repeating: outputs[0][0], count: shape.polynomialSize)
        var packed: PackedLweList?
        let packSeconds = ParallelWork.$threadLimit.withValue(1) { Clock.median(runs: 5) { packed = key.pack(values) } }
        precondition(encryptor.decryptInteger(packed!.extract(shape.polynomialSize - 1)) == ((p - 2) * (p - 2) + 1) % p,
                     "\(label) packed value decrypted to a wrong value")
        report.add("\(label)_packing_ms_per_glwe", packSeconds * 1000, "ms")
        report.add("\(label)_packing_values_per_glwe", Double(shape.polynomialSize), "")
        report.add("\(label)_packing_key_bytes", Double(key.compressed.packingBodies.count * 8 + 16), "bytes")
    }

    /// The two ways to multiply negacyclic polynomials, on the external product's shape
    /// (digits times a precomputed key polynomial, N = 2048): the faster one runs bootstrapping.
    private func measureTransforms(report: inout Report) {
        let n = 2048, m = n / 2
        var rng = CSPRNG.fromSystemEntropy(domain: "bench")
        let digits = (0..<n).map { _ in Int32(truncatingIfNeeded: rng.next() % (1 << 20)) - (1 << 19) }
        let keyPolynomial = (0..<n).map { _ in Int64(bitPattern: rng.next()) }
        let fft = NegacyclicFFT(polynomialSize: n)
        var keyRe = [Double](repeating: 0, count: m), keyIm = keyRe
        fft.forward(keyPolynomial, re: &keyRe, im: &keyIm)
        var re = [Double](repeating: 0, count: m), im = re
        var out = [UInt64](repeating: 0, count: n)
        let fftSeconds = Clock.median(runs: 501) {
            fft.forward(digits, re: &re, im: &im)
            FourierArithmetic.multiply(outRe: &re, outIm: &im, aRe: re, aIm: im, bRe: keyRe, bIm: keyIm, count: m)
            fft.backwardAdd(re: &re, im: &im, into: &out)
        }
        let ntt = NegacyclicNTT(polynomialSize: n)
        var nttKey = keyPolynomial.map { UInt64(bitPattern: $0) % NegacyclicNTT.prime }
        ntt.forward(&nttKey)
        let liftedDigits = digits.map { $0 >= 0 ? UInt64($0) : NegacyclicNTT.prime &- UInt64(-Int64($0)) }
        let nttSeconds = Clock.median(runs: 101) {
            var x = liftedDigits
            ntt.forward(&x)
            for j in 0..<n { x[j] = NegacyclicNTT.multiply(x[j], nttKey[j]) }
            ntt.inverse(&x)
        }
        report.add("negacyclic_product_fft_us", fftSeconds * 1e6, "us")
        report.add("negacyclic_product_ntt_us", nttSeconds * 1e6, "us")
    }
}
