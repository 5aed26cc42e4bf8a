import ArgumentParser
import TFHE

/// The README's first command: a client and a server in one process, separated by the bytes
/// that would cross the network.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encrypt on a client, compute on a server that holds only the evaluation key, decrypt.")

    @Option(help: "First input bit (0 or 1).") var a = 1
    @Option(help: "Second input bit (0 or 1).") var b = 0
    @Option(help: "A 4-bit input for the programmable-bootstrapping step (0...15).") var x = 11

    func validate() throws {
        guard [0, 1].contains(a), [0, 1].contains(b) else { throw ValidationError("--a and --b must be 0 or 1") }
        guard (0...15).contains(x) else { throw ValidationError("--x must be in 0...15") }
    }

    func run() throws {
        print("Obscura TFHE demo: the server computes on ciphertexts and never sees a key that decrypts.")
        try runGates()
        try runLookupTable()
    }

    private func runGates() throws {
        let parameters = TFHEParameters.gates128
        print("\n[gates] parameter set \(parameters)")
        var secret: SecretKey!
        var uploadKey: [UInt8] = []
        let keygen = Clock.seconds {
            secret = SecretKey(parameters: parameters)
            uploadKey = secret.makeEvaluationKey().serialized()
        }
        print("client: secret key and evaluation key in \(ms(keygen)); evaluation key upload \(mb(uploadKey.count))")
        var encryptor = Encryptor(secretKey: secret)
        let upload = [encryptor.encryptSeeded(plaintext: BooleanEncoding.encode(a == 1)),
                      encryptor.encryptSeeded(plaintext: BooleanEncoding.encode(b == 1))].serialized(parameters: parameters)
        print("client: encrypted a=\(a), b=\(b): \(upload.count) bytes to upload (seeded ciphertexts)")

        // Server side: only bytes come in.
        var key: EvaluationKey!
        let load = try Clock.seconds { key = EvaluationKey(try CompressedEvaluationKey(deserializing: uploadKey, expecting: parameters)) }
        print("server: evaluation key expanded in \(ms(load))")
        let inputs = try [SeededLweCiphertext](deserializing: upload, expecting: parameters).map { $0.expanded() }
        let evaluator = Evaluator(key: key)
        var results: [(Evaluator.Gate, LweCiphertext, Double)] = []
        for gate in Evaluator.Gate.allCases {
            var output: LweCiphertext!
            let seconds = Clock.seconds { output = evaluator.gate(gate, inputs[0], inputs[1]) }
            results.append((gate, output, seconds))
        }
        let download = results.map(\.1).serialized(parameters: parameters)

        // Client side again.
        let outputs = try [LweCiphertext](deserializing: download, expecting: parameters)
        for (index, (gate, _, seconds)) in results.enumerated() {
            let bit = encryptor.decryptBit(outputs[index])
            let expected = gate.evaluate(a == 1, b == 1)
            print("  \(gate.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0))(a, b) = \(bit ? 1 : 0)"
                  + "  (expected \(expected ? 1 : 0), \(ms(seconds)), one bootstrap)")
            guard bit == expected else { throw DemoError.wrongResult(gate.rawValue) }
        }
    }

    private func runLookupTable() throws {
        let parameters = TFHEParameters.integer4Bit128
        print("\n[programmable bootstrapping] parameter set \(parameters)")
        let secret = SecretKey(parameters: parameters)
        let key = EvaluationKey(secret.makeEvaluationKey())
        var encryptor = Encryptor(secretKey: secret)
        let input = encryptor.encryptInteger(x)
        let evaluator = Evaluator(key: key)
        var output: LweInteger!
        let seconds = try Clock.seconds { output = try evaluator.apply({ ($0 * $0 + 3) % 16 }, to: input) }
        let value = encryptor.decrypt(output)
        print("  server: f(x) = (x² + 3) mod 16 on encrypted x in \(ms(seconds)), one bootstrap")
        print("  client: decrypts f(\(x)) = \(value) (expected \((x * x + 3) % 16))")
        guard value == (x * x + 3) % 16 else { throw DemoError.wrongResult("lookup table") }
    }

    private func ms(_ seconds: Double) -> String { String(format: "%.1f ms", seconds * 1000) }
    private func mb(_ bytes: Int) -> String { String(format: "%.1f MB", Double(bytes) / 1e6) }
}

enum DemoError: Error, CustomStringConvertible {
    case wrongResult(String)
    var description: String {
        switch self {
        case .wrongResult(let what): "the decrypted result of \(what) is wrong"
        }
    }
}
