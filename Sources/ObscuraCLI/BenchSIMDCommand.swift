import ArgumentParser
import Foundation
import NeuralNet
import ObscuraMath
import SIMDInference

struct BenchSIMD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simd",
        abstract: "A polynomial network (CryptoNets, CryptoDL, HCNN) on BFV (exact) or CKKS: a batch of one image per slot, or single images.",
        discussion: """
        Throughput mode: the client encrypts a batch of evaluation images (one ciphertext per pixel \
        and plaintext prime). Latency mode: one image at a time, packed across the slots (the \
        first convolution's kernel offsets in blocks, as many per ciphertext as a row holds, or \
        their patches shared by the channels where a row holds one block). The \
        server evaluates from the bytes it receives; the client decrypts and, on BFV, joins the \
        primes by the CRT. Every BFV score is compared with the integer reference, and a mismatch \
        fails the command; CKKS reports its largest error and its argmax agreement. HE operations \
        and bytes up and down are per evaluation (a batch, or one image).
        """)

    @Option(help: "A bundled polynomial model or a model file.") var model = "cryptonets-mnist"
    @Option(help: "The dataset folder (default: the model's).") var data: String?
    @Option(help: "throughput (one image per slot) or latency (one image across the slots).") var mode = "throughput"
    @Option(help: "bfv (exact) or ckks (approximate; activations of degree 1 or 2).") var scheme = "bfv"
    @Option(help: "Images from the evaluation split (default: one full batch; latency mode: 10).") var images: Int?
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @Flag(help: "Print one JSON object instead of one line per figure.") var json = false

    func run() throws {
        guard let mode = SIMDPlan.Mode(rawValue: mode) else { throw ValidationError("--mode \(mode): throughput or latency") }
        guard let scheme = SIMDPlan.Scheme(rawValue: scheme) else { throw ValidationError("--scheme \(scheme): bfv or ckks") }
        let file = try ModelCatalog.load(model)
        guard let network = file.polynomialNetwork else {
            throw ValidationError("\(file.name) is not a polynomial network (CryptoNets, CryptoDL); SIMD inference runs those")
        }
        let form = try network.integerForm()
        let plan = try SIMDPlan.compile(form, mode: mode, scheme: scheme)
        let dataset = try file.datasetKind.evaluationData(folder: data ?? file.datasetKind.defaultFolder)
        let split = file.datasetKind.evaluationSamples(in: dataset)
        let count = min(images ?? (mode == .throughput ? plan.batchSize : 10), split.count)
        guard count > 0 else { throw ValidationError("--images must be positive") }
        let samples = Array(split.prefix(count))
        let batch = samples.map { dataset.sample($0) }

        if !json {
            let primes = plan.plaintextModuli.isEmpty ? ""
                : " (plaintext primes \(plan.plaintextModuli.map(String.init).joined(separator: ", ")))"
            print("plan (\(scheme.rawValue), \(mode.rawValue)): \(plan.parameters[0]), \(plan.parameters.count) evaluation(s)\(primes), "
                  + "scores within ±2^\(String(format: "%.1f", log2(form.outputBound))), "
                  + "predicted \(scheme == .bfv ? "noise budget" : "precision") \(String(format: "%.1f", plan.predictedBudgetBits)) bits")
            for step in plan.steps {
                let ops = step.operations
                print("  layer \(step.layer): \(step.summary): \(ops.scalarMultiplyAdds) scalar multiply-adds, "
                      + "\(ops.plaintextMultiplies) plaintext products, \(ops.rotations) rotations, "
                      + "\(ops.ciphertextMultiplies) products, \(ops.constantAdds) constants; "
                      + "values within 2^\(String(format: "%.1f", form.layerBoundBits[step.layer]))")
            }
        }
        let limit = threads ?? ProcessInfoCores.active
        let evaluations = (count + plan.batchSize - 1) / plan.batchSize
        let progress = Progress(total: evaluations, label: mode == .throughput ? "batches" : "images", quiet: json)
        let outcome = try ParallelWork.$threadLimit.withValue(limit) {
            try SIMDPipeline.run(plan, images: batch) { _, _ in progress.advance() }
        }
        progress.finish()

        // Exactness, then accuracy.
        var mismatches = 0, encryptedCorrect = 0, plaintextCorrect = 0, agreement = 0, referenceAgreement = 0
        var largestError: Int128 = 0
        let floatPredictions = ParallelWork.map(count) { network.predict(batch[$0]) }
        let references = ParallelWork.map(count) { form.scores(batch[$0]) }
        for i in 0..<count {
            let scores = outcome.scores[i]
            if scores != references[i] { mismatches += 1 }
            for (a, b) in zip(scores, references[i]) { largestError = max(largestError, a > b ? a - b : b - a) }
            let predicted = BinarizedCNN.argmax(scores)
            if predicted == BinarizedCNN.argmax(references[i]) { referenceAgreement += 1 }
            let label = dataset.labels[samples[i]]
            if predicted == label { encryptedCorrect += 1 }
            if floatPredictions[i] == label { plaintextCorrect += 1 }
            if predicted == floatPredictions[i] { agreement += 1 }
        }
        let ops = plan.operations
        var report = Report(jsonOnly: json)
        let sortedLatencies = outcome.evaluationSeconds.sorted()
        report.add("images", Double(count), "")
        report.add("batch_size", Double(plan.batchSize), "images")
        report.add("plaintext_primes", Double(plan.parameters.count), "")
        report.add("polynomial_size", Double(plan.parameters[0].polynomialSize), "")
        report.add("ciphertext_modulus_bits", plan.parameters[0].logModulus, "bits")
        if mode == .throughput {
            report.add("batch_latency_s", sortedLatencies.last ?? 0, "s")
        } else {
            report.add("single_image_latency_s", sortedLatencies[sortedLatencies.count / 2], "s")
        }
        report.add("server_setup_s", outcome.serverSetupSeconds, "s")
        report.add("amortized_ms_per_image", outcome.evaluateSeconds / Double(count) * 1000, "ms")
        report.add("predictions_per_hour", Double(count) / outcome.evaluateSeconds * 3600, "")
        report.add("client_keygen_s", outcome.keySeconds, "s")
        report.add("client_encrypt_s", outcome.encryptSeconds, "s")
        report.add("client_decrypt_s", outcome.decryptSeconds, "s")
        report.add("exact_images", Double(count - mismatches), "")
        report.add("integer_argmax_agreement", Double(referenceAgreement) / Double(count), "")
        report.add("encrypted_accuracy", Double(encryptedCorrect) / Double(count), "")
        report.add("integer_accuracy", Double(references.enumerated().filter { BinarizedCNN.argmax($0.element) == dataset.labels[samples[$0.offset]] }.count) / Double(count), "")
        report.add("plaintext_accuracy", Double(plaintextCorrect) / Double(count), "")
        report.add("argmax_agreement", Double(agreement) / Double(count), "")
        // In the float model's units: the integer scores over their scale.
        report.add("max_abs_error", Double(largestError) / form.outputScale, "")
        if scheme == .bfv {
            report.add("noise_budget_bits", outcome.budgetBits, "bits")
            report.add("predicted_noise_budget_bits", plan.predictedBudgetBits, "bits")
        } else {
            // Bits of the scores' bound that are exact: predicted (6σ errors) and measured.
            report.add("predicted_precision_bits", plan.predictedBudgetBits, "bits")
            report.add("measured_precision_bits", log2(form.outputBound) - log2(max(Double(largestError), 0.5)), "bits")
        }
        for step in plan.steps {
            let prefix = "he_ops_layer\(step.layer)"
            report.add("\(prefix)_scalar_multiply_adds", Double(step.operations.scalarMultiplyAdds * plan.parameters.count), "")
            report.add("\(prefix)_ciphertext_multiplies", Double(step.operations.ciphertextMultiplies * plan.parameters.count), "")
            report.add("\(prefix)_relinearizations", Double(step.operations.relinearizations * plan.parameters.count), "")
            report.add("\(prefix)_constant_adds", Double(step.operations.constantAdds * plan.parameters.count), "")
            report.add("\(prefix)_plaintext_multiplies", Double(step.operations.plaintextMultiplies * plan.parameters.count), "")
            report.add("\(prefix)_rotations", Double(step.operations.rotations * plan.parameters.count), "")
            report.add("server_seconds_layer\(step.layer)", outcome.stepSeconds[step.layer], "s")
        }
        report.add("he_ops_scalar_multiply_adds", Double(ops.scalarMultiplyAdds * plan.parameters.count), "")
        report.add("he_ops_ciphertext_multiplies", Double(ops.ciphertextMultiplies * plan.parameters.count), "")
        report.add("he_ops_plaintext_multiplies", Double(ops.plaintextMultiplies * plan.parameters.count), "")
        report.add("he_ops_rotations", Double(ops.rotations * plan.parameters.count), "")
        report.add("he_ops_total_per_image", Double(ops.total * plan.parameters.count) / Double(plan.batchSize), "")
        // Per evaluation (a batch, or one image in latency mode), as the HE operations are.
        report.add("upload_bytes", Double(outcome.uploadBytes / evaluations), "bytes")
        report.add("download_bytes", Double(outcome.downloadBytes / evaluations), "bytes")
        report.add("evaluation_key_bytes", Double(outcome.evaluationKeyBytes), "bytes")
        report.add("peak_memory_bytes", Double(peakMemoryBytes()), "bytes")
        report.add("security_bits", Double(plan.securityBits), "bits")
        report.add("threads", Double(limit), "")
        if json {
            // The scheme as a string beside the figures.
            print(report.json().dropLast() + ", \"scheme\": \"\(scheme.rawValue)\", \"mode\": \"\(mode.rawValue)\", \"model\": \"\(file.name)\"}")
        } else {
            print("scheme: \(scheme == .bfv ? "bfv (exact)" : "ckks (approximate)")")
        }
        guard scheme == .ckks || mismatches == 0 else {
            throw ValidationError("\(mismatches) of \(count) images decrypted to scores that differ from the integer reference")
        }
    }
}

/// The process's peak resident memory.
func peakMemoryBytes() -> Int {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    return Int(usage.ru_maxrss) * 1024
}
