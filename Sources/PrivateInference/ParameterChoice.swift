import Foundation
import NeuralNet
import ObscuraMath
import TFHE

/// What one bootstrap and one packed result GLWE cost on a machine, per parameter set: the
/// planner's prediction of a plan's server time.
///
/// Client and server must arrive at the same set without talking, so the planner reads a fixed
/// table rather than timing anything itself; a user on another machine gives it their own
/// `obscura bench tfhe --json` report (``init(benchReport:source:)``).
public struct BootstrapCosts: Sendable, Hashable {
    /// Milliseconds per bootstrap on one thread, in a batch (key switch included), by set name.
    public let bootstrapMilliseconds: [String: Double]
    /// Milliseconds per packed result GLWE on one thread, by set name.
    public let packingMilliseconds: [String: Double]
    /// Where the figures come from.
    public let source: String

    public init(bootstrapMilliseconds: [String: Double], packingMilliseconds: [String: Double], source: String) {
        self.bootstrapMilliseconds = bootstrapMilliseconds
        self.packingMilliseconds = packingMilliseconds
        self.source = source
    }

    /// The figures of an `obscura bench tfhe --json` report (`<label>_batched_ms` and
    /// `<label>_packing_ms_per_glwe` per set, ``benchLabel(_:)``); sets the report lacks are left
    /// out, and a set without a packing figure is planned with none (it packs a few GLWEs).
    public init(benchReport: [String: Double], source: String) {
        var bootstrap: [String: Double] = [:], packing: [String: Double] = [:]
        for parameters in TFHEParameters.secureSets {
            let label = Self.benchLabel(parameters)
            if let ms = benchReport["\(label)_batched_ms"] { bootstrap[parameters.name] = ms }
            if let ms = benchReport["\(label)_packing_ms_per_glwe"] { packing[parameters.name] = ms }
        }
        self.init(bootstrapMilliseconds: bootstrap, packingMilliseconds: packing, source: source)
    }

    /// The name `obscura bench tfhe` gives a set's figures.
    public static func benchLabel(_ parameters: TFHEParameters) -> String {
        let bits = parameters.plaintextModulus.trailingZeroBitCount
        return parameters.groupingFactor > 1 ? "pbs_\(bits)bit_mb\(parameters.groupingFactor)" : "pbs_\(bits)bit"
    }

    /// Medians of five interleaved `obscura bench tfhe --runs 11 --skip-6bit` runs on the
    /// reference machine (the 2-core x86_64 machine the README's figures come from), 2026-12-03,
    /// with 16 bootstraps a batch; `int6-128` from one earlier run at 8 a batch. Per run,
    /// `int4-128` took 10.5-12.6 ms and `int4-128-mb4` 8.5-10.2 ms, faster in every run.
    public static let referenceMachine = BootstrapCosts(
        bootstrapMilliseconds: ["int2-128": 7.20, "int4-128": 10.66, "int6-128": 134.5,
                                "int4-128-mb2": 17.56, "int4-128-mb3": 13.07, "int4-128-mb4": 9.05],
        packingMilliseconds: ["int2-128": 8.41, "int4-128": 16.53, "int6-128": 106.4,
                              "int4-128-mb2": 41.77, "int4-128-mb3": 15.00, "int4-128-mb4": 14.54],
        source: "obscura bench tfhe --runs 11, medians of five interleaved runs on the 2-core reference machine, 2026-12-03")

    /// Predicted server seconds for a plan on `threads` cores (bootstraps spread evenly).
    func predictedSeconds(_ plan: InferencePlan, threads: Int) -> Double? {
        guard let bootstrap = bootstrapMilliseconds[plan.parameters.name] else { return nil }
        let glwes = plan.resultEncoding == .roundedList ? 0 : PackedLweList.glweCount(values: plan.outputCount, parameters: plan.parameters)
        let packing = packingMilliseconds[plan.parameters.name] ?? 0
        return (Double(plan.bootstrapsPerInference) * bootstrap + Double(glwes) * packing) / 1000 / Double(max(1, threads))
    }
}

/// The planner's choice of TFHE parameter set for a model: every secure (128-bit) set is
/// compiled; a set that cannot run it (``InferencePlan`` refuses a plan with a bootstrap or
/// decoding that fails with probability above 2^-128, the criterion sets are published with), or whose
/// result or evaluation key exceeds the limits, is set aside with the reason; of the rest, the
/// one with the lowest predicted server time wins (ties: the smaller evaluation key, then the
/// smaller result, then the earlier set).
public struct ParameterChoice: Sendable {
    /// What the choice must respect besides security and failure probability.
    public struct Limits: Sendable, Hashable {
        /// The largest result a client downloads per inference.
        public var maximumResultBytes: Int
        /// The largest evaluation key a client uploads; `nil`: any size.
        public var maximumEvaluationKeyBytes: Int?

        /// Results of at most 64 KiB (a phone's answer), keys of any size.
        public init(maximumResultBytes: Int = 64 << 10, maximumEvaluationKeyBytes: Int? = nil) {
            self.maximumResultBytes = maximumResultBytes
            self.maximumEvaluationKeyBytes = maximumEvaluationKeyBytes
        }
    }

    /// One set the planner weighed.
    public struct Candidate: Sendable {
        public enum Outcome: Sendable {
            /// The set runs the model within the limits, in about this many seconds per inference.
            case fits(InferencePlan, predictedSeconds: Double)
            /// Why the set was set aside.
            case setAside(String)
        }

        public let parameters: TFHEParameters
        public let outcome: Outcome
        /// The seeded evaluation key a client of this set uploads (none for a plan without bootstraps).
        public var evaluationKeyBytes: Int {
            if case .fits(let plan, _) = outcome, plan.bootstrapsPerInference == 0 { return 0 }
            return CompressedEvaluationKey.serializedSize(for: parameters)
        }
    }

    /// Every secure set, in ``TFHEParameters/secureSets`` order, with its outcome.
    public let candidates: [Candidate]
    /// The chosen set's plan.
    public let plan: InferencePlan
    /// The chosen plan's predicted server seconds per inference.
    public let predictedSeconds: Double

    /// Weighs every secure set for `graph`; throws, naming each set's reason, when none fits.
    public init(modelName: String, graph: ModelGraph, answer: InferencePlan.Answer = .partialSums, limits: Limits = Limits(),
                costs: BootstrapCosts = .referenceMachine, threads: Int = ProcessInfoCores.active) throws(InferenceError) {
        candidates = TFHEParameters.secureSets.map { parameters in
            Candidate(parameters: parameters, outcome: Self.weigh(modelName: modelName, graph: graph, parameters: parameters, answer: answer,
                                                                   limits: limits, costs: costs, threads: threads))
        }
        let fitting = candidates.enumerated().compactMap { index, candidate -> (plan: InferencePlan, seconds: Double, rank: [Double])? in
            guard case .fits(let plan, let seconds) = candidate.outcome else { return nil }
            return (plan, seconds, [seconds, Double(candidate.evaluationKeyBytes), Double(plan.resultBytes), Double(index)])
        }
        guard let best = fitting.min(by: { $0.rank.lexicographicallyPrecedes($1.rank) }) else {
            let reasons = candidates.map { candidate -> String in
                guard case .setAside(let reason) = candidate.outcome else { return "" }
                return "\(candidate.parameters.name): \(reason)"
            }
            throw .unsupportedModel("\(modelName): no 128-bit parameter set fits (\(reasons.joined(separator: "; ")))")
        }
        plan = best.plan
        predictedSeconds = best.seconds
    }

    /// A model file's graph, weighed.
    public init(model: ModelFile, answer: InferencePlan.Answer = .partialSums, limits: Limits = Limits(),
                costs: BootstrapCosts = .referenceMachine, threads: Int = ProcessInfoCores.active) throws(InferenceError) {
        let graph: ModelGraph
        do {
            graph = try model.graph()
        } catch {
            throw .unsupportedModel("\(model.name): \(error)")
        }
        try self.init(modelName: model.name, graph: graph, answer: answer, limits: limits, costs: costs, threads: threads)
    }

    private static func weigh(modelName: String, graph: ModelGraph, parameters: TFHEParameters, answer: InferencePlan.Answer,
                              limits: Limits, costs: BootstrapCosts, threads: Int) -> Candidate.Outcome {
        let plan: InferencePlan
        do {
            plan = try InferencePlan(modelName: modelName, graph: graph, parameters: parameters, answer: answer)
        } catch {
            return .setAside("\(error)")
        }
        if plan.resultBytes > limits.maximumResultBytes {
            return .setAside("a \(plan.resultBytes)-byte result is above the \(limits.maximumResultBytes)-byte limit")
        }
        let keyBytes = CompressedEvaluationKey.serializedSize(for: parameters)
        if plan.bootstrapsPerInference > 0, let limit = limits.maximumEvaluationKeyBytes, keyBytes > limit {
            return .setAside("a \(keyBytes)-byte evaluation key is above the \(limit)-byte limit")
        }
        guard let seconds = costs.predictedSeconds(plan, threads: threads) else {
            return .setAside("no bootstrap cost for it in \(costs.source)")
        }
        return .fits(plan, predictedSeconds: seconds)
    }
}

extension InferencePlan {
    /// The plan a server serves `model` with, and that a client compiles to query it: on
    /// int4-128 when that set runs the model (its evaluation key is 2.8× smaller than the
    /// multi-bit sets'), else on the planner's choice with the reference costs, which are data,
    /// so that both parties arrive at the same set.
    public static func served(model: ModelFile, answer: Answer = .partialSums) throws(InferenceError) -> InferencePlan {
        do {
            return try InferencePlan(model: model, answer: answer)
        } catch {
            // One thread: the prediction then depends on the costs alone, not on this machine's cores.
            guard let choice = try? ParameterChoice(model: model, answer: answer, threads: 1) else { throw error }
            return choice.plan
        }
    }
}
