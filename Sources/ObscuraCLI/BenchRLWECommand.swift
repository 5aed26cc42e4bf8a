import ArgumentParser
import Foundation
import ObscuraMath
import RLWE

struct BenchRLWE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rlwe",
        abstract: "BFV and CKKS operations at N = 8192 and 16384 (one thread unless --threads).",
        discussion: """
        Each figure is the median of --runs timed calls on fresh top-level ciphertexts, the shapes of
        OpenFHE's peer benchmark (shared/peers/openfhe): BFV t = 65537, CKKS scale 2^40 with a 60-bit
        first prime. Every result is decrypted and checked before it is timed.
        """)

    @Flag(help: "Print one JSON object instead of one line per figure.") var json = false
    @Option(help: "Timed repetitions of each figure (the median is reported).") var runs = 11
    @Option(help: "Threads for the timed operations.") var threads = 1

    func run() throws {
        var report = Report(jsonOnly: json)
        try ParallelWork.$threadLimit.withValue(threads) {
            report.add("threads", Double(threads), "")
            for (bfv, ckks) in [(RlweParameters.bfvN8192, RlweParameters.ckksN8192), (.bfvN16384, .ckksN16384)] {
                let suffix = "_n\(bfv.polynomialSize)"
                try measureTransforms(bfv, suffix: suffix, report: &report)
                try measureBFV(bfv, suffix: suffix, report: &report)
                try measureCKKS(ckks, suffix: suffix, report: &report)
            }
        }
        report.add("peak_memory_bytes", Double(peakMemoryBytes()), "bytes")
        if json { print(report.json()) }
    }

    /// The median time of `body` after one untimed call, in milliseconds.
    private func milliseconds(_ body: () throws -> Void) throws -> Double {
        try body()
        var failure: Error?
        let seconds = Clock.median(runs: runs) { do { try body() } catch { failure = error } }
        if let failure { throw failure }
        return seconds * 1000
    }

    private func measureTransforms(_ parameters: RlweParameters, suffix: String, report: inout Report) throws {
        let n = parameters.polynomialSize
        let tables = NTTTables(polynomialSize: n, modulus: Modulus(parameters.ciphertextModuli[0]))
        var values = (0..<n).map { UInt64($0 * 7919) % parameters.ciphertextModuli[0] }
        let forward = Clock.median(runs: 10 * runs) { values.withUnsafeMutableBufferPointer { tables.forward($0.baseAddress!) } }
        let inverse = Clock.median(runs: 10 * runs) { values.withUnsafeMutableBufferPointer { tables.inverse($0.baseAddress!) } }
        report.add("ntt_forward_us\(suffix)", forward * 1e6, "us")
        report.add("ntt_inverse_us\(suffix)", inverse * 1e6, "us")
    }

    /// A client's keys and a server's evaluator for one parameter set.
    private struct Session {
        let context: RlweContext
        let secret: SecretKey
        let keygen: KeyGenerator
        let key: EvaluationKey
        let decryptor: Decryptor
        let evaluator: Evaluator
        let encryptor: Encryptor
        let pkEncryptor: PublicKeyEncryptor

        init(_ parameters: RlweParameters) {
            context = RlweContext(parameters: parameters)
            secret = SecretKey(context: context)
            keygen = KeyGenerator(secretKey: secret)
            key = keygen.makeEvaluationKey(rotations: [1])
            decryptor = Decryptor(secretKey: secret)
            evaluator = try! Evaluator(context: context, key: key)  // the key was made for this context
            encryptor = Encryptor(secretKey: secret)
            pkEncryptor = PublicKeyEncryptor(publicKey: keygen.makePublicKey())
        }
    }

    private func measureBFV(_ parameters: RlweParameters, suffix: String, report: inout Report) throws {
        let session = Session(parameters)
        let (context, key, decryptor, evaluator) = (session.context, session.key, session.decryptor, session.evaluator)
        let (encryptor, pkEncryptor) = (session.encryptor, session.pkEncryptor)
        let encoder = try BatchEncoder(context: context)
        let t = Int64(encoder.plaintextModulus)
        let x = (0..<context.polynomialSize).map { Int64($0 * 31 % Int(t)) - t / 2 }
        let y = (0..<context.polynomialSize).map { Int64($0 * 17 % 1000) - 500 }
        let message = try encoder.encode(x)
        let a = try pkEncryptor.encrypt(message), b = try pkEncryptor.encrypt(try encoder.encode(y))
        let weights = try encoder.prepare(y)
        func check(_ ct: Ciphertext, _ expected: [Int64], _ what: String) throws {
            let m = Modulus(UInt64(t))
            guard try encoder.decodeSigned(decryptor.decrypt(ct)) == expected.map({ m.centered(m.reduce(signed: $0)) }) else {
                throw ValidationError("BFV \(what) decrypted to a wrong result")
            }
        }
        try check(evaluator.multiplyRelinearize(a, b), zip(x, y).map(*), "multiply")
        try check(evaluator.multiply(a, weights), zip(x, y).map(*), "plaintext multiply")
        try check(evaluator.rotate(a, by: 1), (0..<x.count).map { s in
            let half = x.count / 2
            return x[s / half * half + (s % half + 1) % half]
        }, "rotation")

        report.add("bfv_log_q\(suffix)", parameters.logModulus, "bits")
        report.add("bfv_log_qp\(suffix)", parameters.logKeySwitchingModulus, "bits")
        report.add("bfv_keyswitch_digits\(suffix)", Double(context.digitCount), "")
        report.add("bfv_security_bits\(suffix)", Double(parameters.securityBits), "bits")
        report.add("bfv_encrypt_ms\(suffix)", try milliseconds { _ = try pkEncryptor.encrypt(message) }, "ms")
        report.add("bfv_encrypt_seeded_ms\(suffix)", try milliseconds { _ = try encryptor.encrypt(message) }, "ms")
        report.add("bfv_decrypt_ms\(suffix)", try milliseconds { _ = try decryptor.decrypt(a) }, "ms")
        report.add("bfv_add_ms\(suffix)", try milliseconds { _ = try evaluator.add(a, b) }, "ms")
        report.add("bfv_mul_ms\(suffix)", try milliseconds { _ = try evaluator.multiply(a, b) }, "ms")
        report.add("bfv_mul_relin_ms\(suffix)", try milliseconds { _ = try evaluator.multiplyRelinearize(a, b) }, "ms")
        report.add("bfv_mul_plain_ms\(suffix)", try milliseconds { _ = try evaluator.multiply(a, weights) }, "ms")
        report.add("bfv_rotate_ms\(suffix)", try milliseconds { _ = try evaluator.rotate(a, by: 1) }, "ms")
        // Independent products on every core (limbs in parallel inside each, too).
        let products = 4 * ProcessInfoCores.active
        let elapsed = try ParallelWork.$threadLimit.withValue(nil) {
            try Clock.seconds { _ = try ParallelWork.map(products) { _ in try evaluator.multiplyRelinearize(a, b) } }
        }
        report.add("bfv_mul_relin_per_second_all_cores\(suffix)", Double(products) / elapsed, "products/s")
        report.add("bfv_noise_budget_fresh_bits\(suffix)", try decryptor.noiseBudget(a), "bits")
        report.add("bfv_noise_budget_after_mul_bits\(suffix)", try decryptor.noiseBudget(evaluator.multiplyRelinearize(a, b)), "bits")
        addSizes("bfv", suffix: suffix, ciphertext: a, seeded: try encryptor.encrypt(message), key: key, report: &report)
    }

    private func measureCKKS(_ parameters: RlweParameters, suffix: String, report: inout Report) throws {
        let session = Session(parameters)
        let (context, key, decryptor, evaluator) = (session.context, session.key, session.decryptor, session.evaluator)
        let (encryptor, pkEncryptor, keygen) = (session.encryptor, session.pkEncryptor, session.keygen)
        let encoder = try CKKSEncoder(context: context)
        let slots = encoder.slotCount
        let x = (0..<slots).map { sin(Double($0)) }, y = (0..<slots).map { cos(Double($0) * 0.7) }
        let plaintext = try encoder.encode(x)
        let a = try pkEncryptor.encrypt(plaintext), b = try pkEncryptor.encrypt(try encoder.encode(y))
        let weights = try encoder.encode(y).prepared()
        let product = try evaluator.multiplyRelinearizeRescale(a, b)
        let decoded = try encoder.decode(decryptor.decryptApproximate(product))
        let error = zip(decoded, zip(x, y)).map { abs($0.real - $1.0 * $1.1) }.max()!
        guard error < 1e-4 else { throw ValidationError("CKKS multiply decrypted with error \(error)") }

        report.add("ckks_log_q\(suffix)", parameters.logModulus, "bits")
        report.add("ckks_log_qp\(suffix)", parameters.logKeySwitchingModulus, "bits")
        report.add("ckks_keyswitch_digits\(suffix)", Double(context.digitCount), "")
        report.add("ckks_security_bits\(suffix)", Double(parameters.securityBits), "bits")
        report.add("ckks_depth\(suffix)", Double(parameters.ciphertextModuli.count - 1), "levels")
        report.add("ckks_mul_precision_bits\(suffix)", -log2(error), "bits")
        report.add("ckks_encode_ms\(suffix)", try milliseconds { _ = try encoder.encode(x) }, "ms")
        report.add("ckks_encrypt_ms\(suffix)", try milliseconds { _ = try pkEncryptor.encrypt(plaintext) }, "ms")
        report.add("ckks_encrypt_seeded_ms\(suffix)", try milliseconds { _ = try encryptor.encrypt(plaintext) }, "ms")
        report.add("ckks_decrypt_decode_ms\(suffix)", try milliseconds { _ = try encoder.decode(decryptor.decryptApproximate(a)) }, "ms")
        report.add("ckks_add_ms\(suffix)", try milliseconds { _ = try evaluator.add(a, b) }, "ms")
        report.add("ckks_mul_relin_ms\(suffix)", try milliseconds { _ = try evaluator.multiplyRelinearize(a, b) }, "ms")
        report.add("ckks_rescale_ms\(suffix)", try milliseconds { _ = try evaluator.rescale(evaluator.multiply(a, weights)) }, "ms")
        report.add("ckks_mul_relin_rescale_ms\(suffix)",
                   try milliseconds { _ = try evaluator.multiplyRelinearizeRescale(a, b) }, "ms")
        report.add("ckks_mul_plain_ms\(suffix)", try milliseconds { _ = try evaluator.multiply(a, weights) }, "ms")
        report.add("ckks_rotate_ms\(suffix)", try milliseconds { _ = try evaluator.rotate(a, by: 1) }, "ms")
        let steps = Array(1...8)
        let hoistedKey = keygen.makeEvaluationKey(relinearization: false, rotations: steps)
        let hoisting = try Evaluator(context: context, key: hoistedKey)
        report.add("ckks_rotate_hoisted_8_ms\(suffix)", try milliseconds { _ = try hoisting.rotations(of: a, by: steps) } / 8,
                   "ms per rotation")
        addSizes("ckks", suffix: suffix, ciphertext: a, seeded: try encryptor.encrypt(plaintext), key: key, report: &report)
    }

    private func addSizes(_ scheme: String, suffix: String, ciphertext: Ciphertext, seeded: SeededCiphertext,
                          key: EvaluationKey, report: inout Report) {
        report.add("\(scheme)_ciphertext_bytes\(suffix)", Double(ciphertext.serialized().count), "bytes")
        report.add("\(scheme)_seeded_ciphertext_bytes\(suffix)", Double(seeded.serialized().count), "bytes")
        if let relinearization = key.relinearization {
            report.add("\(scheme)_relin_key_bytes\(suffix)", Double(relinearization.serialized().count), "bytes")
        }
        if let galois = key.galois.values.first {
            report.add("\(scheme)_galois_key_bytes\(suffix)", Double(galois.serialized().count), "bytes")
        }
    }
}
