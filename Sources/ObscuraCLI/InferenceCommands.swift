import ObscuraMath
import ArgumentParser
import CipherCircuits
import Foundation
import NeuralNet
import PrivateInference
import TFHE

/// Options shared by the commands that run encrypted inference locally.
struct InferenceOptions: ParsableArguments {
    @Option(help: "A bundled model name or a model file.") var model: String
    @Option(help: "The dataset folder (default: the model's dataset folder).") var data: String?
    @Option(help: "Records A..<B instead of the model's evaluation split.") var range: String?
    @Option(help: "Take only the first N records.") var images: Int?
    @Option(help: "pbs (default): linear layers and sign bootstraps; bitwise: the paper's bit-level circuits (perceptron).")
    var mode: InferenceMode = .pbs
    @Option(help: "Bitwise mode's circuits: paper (as published) or fast (majority carries, fewer bootstraps).")
    var circuit: CircuitMethod = .paper
    @Option(help: "pbs mode's TFHE parameter set: auto (the planner's choice: the fastest set whose result fits --max-result-kib) or one of \(TFHEParameters.secureSets.map(\.name).joined(separator: ", ")).")
    var parameters = "auto"
    @Option(help: "pbs mode's answer: partial-sums (the client adds the dense layer's partial sums) or scores (the server sums them into each score's digits, with bootstraps; the client sees only the scores).")
    var answer: InferencePlan.Answer = .partialSums
    @Option(help: "With --parameters auto: the per-bootstrap costs to plan with, an `obscura bench tfhe --json` report (default: the reference machine's).")
    var bootstrapCosts: String?
    @Option(help: "With --parameters auto: the largest result, in KiB, that a set may return per inference.")
    var maxResultKib = 64

    func validate() throws {
        if let images, images < 1 { throw ValidationError("--images must be at least 1") }
        if parameters != "auto", TFHEParameters.named(parameters) == nil {
            throw ValidationError("--parameters: no secure set is named \(parameters) (known: auto, \(TFHEParameters.secureSets.map(\.name).joined(separator: ", ")))")
        }
        if bootstrapCosts != nil, parameters != "auto" { throw ValidationError("--bootstrap-costs goes with --parameters auto") }
        guard (1...(1 << 20)).contains(maxResultKib) else { throw ValidationError("--max-result-kib must be 1…1048576") }
    }

    /// What `--parameters` asks for (checked by `validate`).
    func parameterSelection() throws -> LocalInference.ParameterSelection {
        guard parameters == "auto" else { return .fixed(TFHEParameters.named(parameters)!, answer) }
        let limits = ParameterChoice.Limits(maximumResultBytes: maxResultKib << 10)
        guard let bootstrapCosts else { return .fastest(.referenceMachine, answer, limits) }
        let report: [String: Double]
        do {
            report = try JSONDecoder().decode([String: Double].self, from: Data(contentsOf: URL(fileURLWithPath: bootstrapCosts)))
        } catch {
            throw ValidationError("--bootstrap-costs: \(bootstrapCosts) is not an `obscura bench tfhe --json` report (\(error))")
        }
        return .fastest(BootstrapCosts(benchReport: report, source: bootstrapCosts), answer, limits)
    }
}

extension InferencePlan.Answer: ExpressibleByArgument {}

/// Prints how the planner weighed the parameter sets, and its choice.
func describe(_ choice: ParameterChoice) {
    print("parameter sets weighed for \(choice.plan.modelName) (predicted server time on \(ProcessInfoCores.active) core(s)):")
    for candidate in choice.candidates {
        let name = candidate.parameters.name.padding(toLength: 13, withPad: " ", startingAt: 0)
        switch candidate.outcome {
        case .fits(let plan, let seconds):
            let chosen = plan.parameters == choice.plan.parameters ? "  ← chosen" : ""
            let key = candidate.evaluationKeyBytes == 0 ? "no evaluation key" : String(format: "evaluation key %.1f MB", Double(candidate.evaluationKeyBytes) / 1e6)
            print(String(format: "  %@ %.2f s, %d bootstraps, result %d B, %@%@", name, seconds, plan.bootstrapsPerInference,
                         plan.resultBytes, key, chosen))
        case .setAside(let reason):
            print("  \(name) set aside: \(reason)")
        }
    }
}

/// Prints the plan: where the bootstraps go and how likely a decoding failure is.
func describe(_ plan: InferencePlan) {
    print("plan for \(plan.modelName) on \(plan.parameters.name) (\(plan.parameters.securityBits)-bit, \(plan.parameters.source)):")
    func failure(_ log2: Double) -> String { log2 <= -200 ? "below 2^-200" : String(format: "2^%.1f", log2) }
    for step in plan.steps {
        print("  \(step.name): \(step.bootstraps) bootstraps, p-fail \(failure(step.failureLog2)) (worst single decoding \(failure(step.worstFailureLog2)))")
    }
    print("  result: \(plan.resultDescription), \(plan.resultBytes) bytes")
    print("  total \(plan.bootstrapsPerInference) bootstraps per inference, p-fail \(failure(plan.failureLog2)) per inference, "
        + "\(failure(plan.worstFailureLog2)) per bootstrap or decoding")
}

/// A progress line per layer on standard error.
func layerProgress(quiet: Bool = false) -> PBSInferenceEvaluator.Progress {
    let start = Clock.now()
    return { layer, done, total in
        guard !quiet else { return }
        let elapsed = Double(Clock.now() - start) / 1e9
        FileHandle.standardError.write(Data(String(format: "\r  %@: %d/%d bootstraps (%.1f s) ", layer, done, total, elapsed).utf8))
        if done == total { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

struct InferLocal: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer-local",
        abstract: "Encrypt records, evaluate them encrypted (pbs mode) and decrypt, client and server in one process.")

    @OptionGroup var options: InferenceOptions

    func run() throws {
        var session = try LocalInference(model: options.model, dataFolder: options.data, mode: options.mode, circuit: options.circuit,
                                         parameters: try options.parameterSelection())
        if options.mode == .pbs {
            if let choice = session.choice { describe(choice) }
            describe(session.plan)
        }
        print(String(format: "client: keys in %.2f s; evaluation key upload %.1f MB", session.keygenSeconds,
                     Double(session.evaluationKeyBytes) / 1e6))
        let records = try session.records(range: options.range, limit: options.images ?? 10)
        var mismatches = 0
        let showLayers = options.mode == .pbs && session.plan.bootstrapsPerInference > 0
        for index in records {
            let progress = layerProgress(quiet: !showLayers)
            let outcome: LocalInference.Outcome = try session.run(record: index, progress: progress)
            if !outcome.exact { mismatches += 1 }
            print(String(format: "record %5d: encrypted class %d, plaintext reference %d, label %d, %@, %.3f s, %d bootstraps",
                         index, outcome.encryptedClass, outcome.referenceClass, outcome.label,
                         outcome.exact ? "scores exact" : "SCORES DIFFER", outcome.seconds, outcome.bootstraps))
        }
        guard mismatches == 0 else { throw ValidationError("\(mismatches) record(s) decrypted to scores other than the reference's") }
    }
}

struct BenchInfer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Encrypted inference (pbs mode): latency, accuracy, exactness, sizes.")

    @OptionGroup var options: InferenceOptions
    @Flag(help: "Print one JSON object instead of one line per figure.") var json = false

    func run() throws {
        var session = try LocalInference(model: options.model, dataFolder: options.data, mode: options.mode, circuit: options.circuit,
                                         parameters: try options.parameterSelection())
        if !json && options.mode == .pbs {
            if let choice = session.choice { describe(choice) }
            describe(session.plan)
        }
        let records = try session.records(range: options.range, limit: options.images)
        let progress = Progress(total: records.count, label: "encrypted inferences", quiet: false)
        var outcomes: [LocalInference.Outcome] = []
        for index in records {
            outcomes.append(try session.run(record: index))
            progress.advance()
        }
        progress.finish()
        let latencies = outcomes.map(\.seconds).sorted()
        let count = Double(outcomes.count)
        var report = Report(jsonOnly: json)
        report.add("latency_s_median", latencies[latencies.count / 2], "s")
        report.add("latency_s_min", latencies[0], "s")
        report.add("images", count, "")
        report.add("encrypted_accuracy", Double(outcomes.filter { $0.encryptedClass == $0.label }.count) / count, "")
        report.add("plaintext_accuracy", Double(outcomes.filter { $0.referenceClass == $0.label }.count) / count, "")
        report.add("exact_match_rate", Double(outcomes.filter(\.exact).count) / count, "")
        report.add("bootstraps_per_image", Double(outcomes[0].bootstraps), "")
        // The bitwise circuits are one dependent chain of gates: one thread.
        report.add("threads", Double(options.mode == .pbs ? ProcessInfoCores.active : 1), "")
        report.add("upload_bytes_per_image", Double(outcomes[0].uploadBytes), "B")
        report.add("download_bytes_per_image", Double(outcomes[0].downloadBytes), "B")
        report.add("evaluation_key_bytes", Double(session.evaluationKeyBytes), "B")
        let parameters = options.mode == .pbs ? session.plan.parameters : BitwisePerceptronEvaluator.parameters
        report.add("security_bits", Double(parameters.securityBits), "bits")
        report.add("grouping_factor", Double(parameters.groupingFactor), "")
        if options.mode == .pbs {
            report.add("failure_log2_per_image", max(session.plan.failureLog2, -999), "")
            report.add("failure_log2_per_bootstrap", max(session.plan.worstFailureLog2, -999), "")
        }
        if json { print(report.json()) }
    }
}
