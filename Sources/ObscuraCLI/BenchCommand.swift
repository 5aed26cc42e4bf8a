import ArgumentParser
import ObscuraMath
import TFHE

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure Obscura (release builds only give meaningful figures).",
        subcommands: [BenchTFHE.self])
}

struct BenchTFHE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tfhe", abstract: "Key generation, encryption, gate and programmable bootstrapping.")

    @Flag(help: "Print one JSON object instead of lines.") var json = false
    @Option(help: "Timed repetitions per single-thread figure.") var runs = 15
    @Flag(help: "Skip the slow 6-bit set.") var skip6Bit = false

    func run() throws {
        var report = Report()
        report.jsonOnly = json
        let gates = TFHEParameters.gates128
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
        var encryptor = Encryptor(secretKey: secret)
        let encryptSeconds = Clock.median(runs: 201) { _ = encryptor.encryptSeeded(plaintext: 0) }
        report.add("encrypt_us", encryptSeconds * 1e6, "us")

        let evaluator = Evaluator(key: key)
        let a = encryptor.encrypt(bit: true), b = encryptor.encrypt(bit: false)
        _ = evaluator.nand(a, b)
        let gate = Clock.median(runs: runs) { _ = evaluator.nand(a, b) }
        report.add("gate_bootstrap_ms", gate * 1000, "ms")

        let batch = 4 * ProcessInfoCores.active * 2
        let inputs = (0..<batch).map { _ in encryptor.encrypt(bit: true) }
        let allCores = Clock.seconds {
            _ = key.parallelMap(count: batch) { evaluator, i in evaluator.nand(inputs[i], inputs[(i + 1) % batch]) }
        }
        report.add("gates_per_second_all_cores", Double(batch) / allCores, "gates/s")
        report.add("threads", Double(ProcessInfoCores.active), "")
        if json { print(report.json()) }
    }
}
