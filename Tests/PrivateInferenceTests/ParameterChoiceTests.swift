import Foundation
import NeuralNet
import Testing
import TFHE
@testable import PrivateInference

/// The planner's choice of parameter set: security and p-fail first, then the limits, then speed.
struct ParameterChoiceTests {
    static let fastMNIST = try! ModelCatalog.load("fast-mnist")

    /// Costs with every set at 10 ms a bootstrap except `name`, at `milliseconds`.
    static func costs(_ name: String, at milliseconds: Double) -> BootstrapCosts {
        var bootstrap = Dictionary(uniqueKeysWithValues: TFHEParameters.secureSets.map { ($0.name, 10.0) })
        bootstrap[name] = milliseconds
        return BootstrapCosts(bootstrapMilliseconds: bootstrap, packingMilliseconds: [:], source: "test")
    }

    @Test("fast-mnist: every secure set weighed; the chosen plan is the fastest that fits, decodes below 2^-128 and answers within 64 KiB")
    func referenceChoice() throws {
        let choice = try ParameterChoice(model: Self.fastMNIST, threads: 2)
        #expect(choice.candidates.map(\.parameters.name) == TFHEParameters.secureSets.map(\.name))
        var fitting: [(InferencePlan, Double)] = []
        for candidate in choice.candidates {
            switch candidate.outcome {
            case .fits(let plan, let seconds):
                #expect(plan.parameters == candidate.parameters && plan.worstFailureLog2 <= InferencePlan.failureTargetLog2)
                #expect(plan.resultBytes <= 64 << 10 && seconds > 0)
                fitting.append((plan, seconds))
            case .setAside(let reason):
                #expect(!reason.isEmpty)
            }
        }
        #expect(choice.predictedSeconds == fitting.map(\.1).min())
        #expect(!choice.plan.parameters.isInsecureTestOnly && choice.plan.parameters.securityBits >= 128)
        // The 6-bit set bootstraps 13x slower than the 4-bit ones here: never the fastest.
        #expect(choice.plan.parameters != .integer6Bit128)
    }

    @Test("the choice follows the costs: a set made cheap is chosen, made dear is not; a key limit sets the multi-bit keys aside")
    func followsCosts() throws {
        let cheapMultiBit = try ParameterChoice(model: Self.fastMNIST, costs: Self.costs("int4-128-mb4", at: 5))
        #expect(cheapMultiBit.plan.parameters == .integer4BitMultiBit4)
        let cheapClassic = try ParameterChoice(model: Self.fastMNIST, costs: Self.costs("int4-128", at: 5))
        #expect(cheapClassic.plan.parameters == .integer4Bit128)
        // Equal costs: the smaller evaluation key wins the tie.
        let tie = try ParameterChoice(model: Self.fastMNIST, costs: Self.costs("none", at: 0))
        #expect(CompressedEvaluationKey.serializedSize(for: tie.plan.parameters) == tie.candidates.compactMap { candidate -> Int? in
            if case .fits = candidate.outcome { return candidate.evaluationKeyBytes } else { return nil }
        }.min())
        let smallKeys = try ParameterChoice(model: Self.fastMNIST, limits: .init(maximumEvaluationKeyBytes: 64_000_000),
                                            costs: Self.costs("int4-128-mb4", at: 5))
        #expect(smallKeys.plan.parameters == .integer4Bit128)
        let mb4 = try #require(smallKeys.candidates.first { $0.parameters == .integer4BitMultiBit4 })
        if case .setAside(let reason) = mb4.outcome { #expect(reason.contains("evaluation key is above the 64000000-byte limit"), "\(reason)") }
        for candidate in smallKeys.candidates where candidate.parameters.groupingFactor > 1 {
            guard case .setAside(let reason) = candidate.outcome else {
                Issue.record("\(candidate.parameters.name) fits a 64 MB key limit")
                continue
            }
            #expect(!reason.isEmpty)
        }
    }

    @Test("nothing fits a 1 kB result: the error names every set and its reason; a set the costs lack is set aside")
    func nothingFits() throws {
        do {
            _ = try ParameterChoice(model: Self.fastMNIST, limits: .init(maximumResultBytes: 1_000))
            Issue.record("a plan fits a 1 kB result")
        } catch {
            for parameters in TFHEParameters.secureSets { #expect("\(error)".contains(parameters.name), "\(error)") }
            #expect("\(error)".contains("1000-byte limit"), "\(error)")
        }
        let partial = BootstrapCosts(bootstrapMilliseconds: ["int4-128": 10], packingMilliseconds: [:], source: "one set")
        let choice = try ParameterChoice(model: Self.fastMNIST, costs: partial)
        #expect(choice.plan.parameters == .integer4Bit128)
        let mb4 = try #require(choice.candidates.first { $0.parameters == .integer4BitMultiBit4 })
        guard case .setAside(let reason) = mb4.outcome else { Issue.record("mb4 fits without a cost"); return }
        #expect(reason.contains("no bootstrap cost"))
    }

    @Test("the planner weighs score-digit plans too: a tiny CNN answering with its scores gets a set whose every bootstrap fails below 2^-128")
    func scoresAnswer() throws {
        let tiny = PBSInferenceTests.tinyNetwork()
        let choice = try ParameterChoice(modelName: "tiny", graph: tiny.graph, answer: .scores)
        #expect(choice.plan.answer == .scores && choice.plan.worstFailureLog2 <= InferencePlan.failureTargetLog2)
        #expect(choice.plan.bootstrapsPerInference > (try InferencePlan(modelName: "tiny", graph: tiny.graph)).bootstrapsPerInference)
    }

    @Test("costs read from an `obscura bench tfhe --json` report, by the labels the bench gives each set")
    func benchReportCosts() {
        let report = ["pbs_4bit_batched_ms": 10.5, "pbs_4bit_packing_ms_per_glwe": 15.0, "pbs_4bit_mb4_batched_ms": 9.5,
                      "pbs_2bit_batched_ms": 7.0, "gate_bootstrap_ms": 13.0]
        let costs = BootstrapCosts(benchReport: report, source: "report")
        #expect(costs.bootstrapMilliseconds == ["int4-128": 10.5, "int4-128-mb4": 9.5, "int2-128": 7.0])
        #expect(costs.packingMilliseconds == ["int4-128": 15.0])
        #expect(TFHEParameters.secureSets.map(BootstrapCosts.benchLabel) ==
                ["pbs_2bit", "pbs_4bit", "pbs_6bit", "pbs_4bit_mb2", "pbs_4bit_mb3", "pbs_4bit_mb4"])
    }
}
