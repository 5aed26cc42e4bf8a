import Foundation
import Testing
@testable import NeuralNet
import RLWE
@testable import SIMDInference

/// Throughput-mode inference: every slot's decrypted scores equal the integer reference, the
/// CRT joins the primes, the noise model is never optimistic, and the bundled CryptoNets
/// network runs exactly on a 128-bit set.
struct SIMDInferenceTests {
    /// A 4×4 image → conv 2 filters 3×3 → activation → dense 8 → 3.
    static func tiny(activation: [Float], seed: UInt64 = 1) -> PolynomialNetwork {
        var rng = SplitMix64(seed: seed)
        let convolution = PolynomialNetwork.Convolution(
            inputChannels: 1, outputChannels: 2, kernelSide: 3, stride: 1, padding: 0, inputSide: 4,
            weights: (0..<18).map { _ in rng.uniform(-1, 1) }, bias: [0.125, -0.25])
        let dense = PolynomialNetwork.Dense(inputCount: 8, outputCount: 3, weights: (0..<24).map { _ in rng.uniform(-0.5, 0.5) },
                                            bias: [0.5, 0, -0.5])
        return PolynomialNetwork(inputSide: 4, layers: [.convolution(convolution), .polynomial(activation), .dense(dense)])
    }

    /// An insecure ring, small enough to fill every slot quickly.
    static let smallShape = SIMDPlan.Shape(polynomialSize: 256, ciphertextBits: [54, 54, 54], specialBits: [], insecureTestOnly: true)

    static func images(_ count: Int, pixels: Int, seed: UInt64) -> [ArraySlice<Float>] {
        var rng = SplitMix64(seed: seed)
        // Extremes (all black, all white) first: they reach the bounds' corners.
        return [[Float](repeating: 0, count: pixels)[...], [Float](repeating: 1, count: pixels)[...]]
            + (2..<count).map { _ in (0..<pixels).map { _ in rng.uniform(0, 1) }[...] }
    }

    /// Runs a CKKS plan on `images` and checks every score against the integer reference: within
    /// the plan's predicted error (6σ against the bounds) and, where asked, with the reference's argmax.
    static func expectWithinPrediction(_ plan: SIMDPlan, _ form: PolynomialIntegerNetwork, images: [ArraySlice<Float>],
                                       sameArgmax: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let outcome = try SIMDPipeline.run(plan, images: images)
        #expect(outcome.scores.count == images.count, sourceLocation: sourceLocation)
        let predicted = exp2(plan.steps.last!.predictedNoiseBits)
        for (index, (scores, image)) in zip(outcome.scores, images).enumerated() {
            let reference = form.scores(image)
            let worst = zip(scores, reference).map { abs(Double($0 - $1)) }.max()!
            #expect(worst <= predicted, "image \(index): error \(worst), predicted \(predicted)", sourceLocation: sourceLocation)
            if sameArgmax {
                #expect(BinarizedCNN.argmax(scores) == BinarizedCNN.argmax(reference), "image \(index)", sourceLocation: sourceLocation)
            }
        }
    }

    @Test("Every slot of a full batch equals the integer reference: x², CryptoDL's fitted quadratic, a cubic; one prime and several",
          arguments: [([Float(0), 0, 1], 50), (PolynomialNetwork.reluApproximation(degree: 2, bound: 4), 50),
                      ([Float(0.1), 0.5, 0.25, 0.05], 50), ([Float(0), 0, 1], 16)])
    func exactOnEverySlot(activation: [Float], maximumPlaintextBits: Int) throws {
        let form = try Self.tiny(activation: activation).integerForm()
        let plan = try SIMDPlan.compile(form, shapes: [Self.smallShape], maximumPlaintextBits: maximumPlaintextBits)
        #expect(plan.securityBits == 0)
        if maximumPlaintextBits == 16 { #expect(plan.parameters.count >= 2) }
        let batch = Self.images(plan.batchSize, pixels: 16, seed: 7)
        let outcome = try SIMDPipeline.run(plan, images: batch)
        let references = batch.map { form.scores($0) }
        #expect(outcome.scores == references)
        #expect(references.joined().allSatisfy { Double($0.magnitude) <= form.outputBound })
        // The noise model is conservative: the measured budget is at least the predicted one.
        #expect(outcome.budgetBits >= plan.predictedBudgetBits, "measured \(outcome.budgetBits), predicted \(plan.predictedBudgetBits)")
        #expect(outcome.budgetBits < plan.predictedBudgetBits + 30)
    }

    @Test("Latency mode: one image across the slots (kernel-offset packing, diagonals, rotations) equals the integer reference",
          arguments: [[Float(0), 0, 1], PolynomialNetwork.reluApproximation(degree: 2, bound: 4)])
    func latencyExact(activation: [Float]) throws {
        // The 9 kernel offsets, 8 slots each, in one ciphertext: 4 rotate-and-add steps sum 16 blocks.
        try Self.latencyRun(try Self.tiny(activation: activation).integerForm(), images: Self.images(6, pixels: 16, seed: 9),
                            period: 8, blocks: 16, ciphertexts: 1, rotations: 4)
    }

    /// Compiles `form` for latency mode on the test ring, checks its first convolution's layout
    /// (9 offsets) and runs `images`: every score exact, the measured budget at least the predicted.
    static func latencyRun(_ form: PolynomialIntegerNetwork, images: [ArraySlice<Float>],
                           period: Int, blocks: Int, ciphertexts: Int, rotations: Int) throws {
        let plan = try SIMDPlan.compile(form, mode: .latency, shapes: [Self.smallShape])
        #expect(plan.batchSize == 1)
        guard case .packedConvolution(let c) = plan.steps[0].kind else { Issue.record("no packed convolution"); return }
        #expect(c.offsetCount == 9 && c.period == period && c.blocks == blocks)
        #expect(plan.inputCiphertexts == ciphertexts && plan.steps[0].operations.rotations == rotations)
        let outcome = try SIMDPipeline.run(plan, images: images)
        #expect(outcome.scores == images.map { form.scores($0) })
        #expect(outcome.budgetBits >= plan.predictedBudgetBits, "measured \(outcome.budgetBits), predicted \(plan.predictedBudgetBits)")
    }

    @Test("Latency mode with the offsets over several ciphertexts: 32 outputs in rows of 128 slots, 4 blocks per ciphertext, 9 offsets in 3 ciphertexts, exact, the noise model conservative")
    func latencyBlocksAcrossCiphertexts() throws {
        var rng = SplitMix64(seed: 3)
        let convolution = PolynomialNetwork.Convolution(inputChannels: 1, outputChannels: 2, kernelSide: 3, stride: 1, padding: 0, inputSide: 6,
                                                        weights: (0..<18).map { _ in rng.uniform(-1, 1) }, bias: [0.25, -0.125])
        let dense = PolynomialNetwork.Dense(inputCount: 32, outputCount: 3, weights: (0..<96).map { _ in rng.uniform(-0.5, 0.5) },
                                            bias: [0.5, 0, -0.5])
        let form = try PolynomialNetwork(inputSide: 6, layers: [.convolution(convolution), .polynomial([0, 0, 1]), .dense(dense)]).integerForm()
        try Self.latencyRun(form, images: Self.images(4, pixels: 36, seed: 11), period: 32, blocks: 4, ciphertexts: 3, rotations: 2)
    }

    @Test("Latency uploads: the first convolution's offsets go in blocks where the ring has room and the noise fits (HCNN at N = 16384: 25 offsets in 4 ciphertexts of 8 blocks, summed by 3 rotations), else one per ciphertext (CryptoNets at N = 8192, where BV key switches before the first product would not fit)")
    func latencyBlocks() throws {
        let hcnn = try SIMDPlan.compile(try #require(try ModelCatalog.load("hcnn-mnist").polynomialNetwork).integerForm(), mode: .latency)
        guard case .packedConvolution(let packed) = hcnn.steps[0].kind else { Issue.record("no packed convolution"); return }
        #expect(hcnn.parameters[0].polynomialSize == 16384 && packed.period == 1024 && packed.blocks == 8)
        #expect(hcnn.inputCiphertexts == 4 && hcnn.steps[0].operations.rotations == 3)
        #expect(hcnn.rotationSteps.contains(4096) && hcnn.rotationSteps.contains(1024))
        let cryptoNets = try SIMDPlan.compile(try #require(try ModelCatalog.load("cryptonets-mnist").polynomialNetwork).integerForm(),
                                              mode: .latency)
        #expect(cryptoNets.parameters[0].polynomialSize == 8192 && cryptoNets.inputCiphertexts == 25)
        #expect(cryptoNets.steps[0].operations.rotations == 0)
    }

    /// A slot vector rotated by k in the clear, as the evaluator's rotation does to a row.
    static func rotate(_ v: [Int64], _ k: Int) -> [Int64] { (0..<v.count).map { v[($0 + k) % v.count] } }

    /// A random 3×3 convolution (`channels` filters) on `inputChannels` × side².
    static func convolution(channels: Int, inputChannels: Int = 1, side: Int, stride: Int = 1, padding: Int = 0,
                            rng: inout SplitMix64) -> PolynomialNetwork.Convolution {
        PolynomialNetwork.Convolution(inputChannels: inputChannels, outputChannels: channels, kernelSide: 3, stride: stride,
                                      padding: padding, inputSide: side,
                                      weights: (0..<(channels * inputChannels * 9)).map { _ in rng.uniform(-1, 1) },
                                      bias: (0..<channels).map { _ in rng.uniform(-0.5, 0.5) })
    }

    /// A side² image → conv (`channels` filters, 3×3) → x² → dense 3.
    static func conv(channels: Int, side: Int, seed: UInt64) -> PolynomialNetwork {
        var rng = SplitMix64(seed: seed)
        let c = convolution(channels: channels, side: side, rng: &rng)
        let outputs = channels * c.outputSide * c.outputSide
        let dense = PolynomialNetwork.Dense(inputCount: outputs, outputCount: 3, weights: (0..<(3 * outputs)).map { _ in rng.uniform(-0.5, 0.5) },
                                            bias: [0.5, 0, -0.5])
        return PolynomialNetwork(inputSide: side, layers: [.convolution(c), .polynomial([0, 0, 1]), .dense(dense)])
    }

    @Test("Shared patches on clear vectors: the client's blocks, the baby and giant steps and the pre-rotated diagonals give every output of the convolution at c·Q' + q, repeated with period C'·Q' (strides, padding, 2 input channels, 3 to 5 channels, rows of 4 to 16 blocks)",
          arguments: [(3, 1, 7, 1, 0), (5, 2, 9, 2, 1), (4, 1, 12, 1, 0)])
    func sharedPatchLayout(channels: Int, inputChannels: Int, side: Int, stride: Int, padding: Int) throws {
        // With 2 input channels, the second convolution of conv(1 → 2) → x² → conv(2 → C).
        var rng = SplitMix64(seed: UInt64(side))
        var layers: [PolynomialNetwork.Layer] = []
        if inputChannels > 1 {
            layers = [.convolution(Self.convolution(channels: inputChannels, side: side + 2, rng: &rng)), .polynomial([0, 0, 1])]
        }
        layers.append(.convolution(Self.convolution(channels: channels, inputChannels: inputChannels, side: side, stride: stride,
                                                    padding: padding, rng: &rng)))
        let form = try PolynomialNetwork(inputSide: inputChannels > 1 ? side + 2 : side, layers: layers).integerForm()
        guard case .linear(let layer) = form.layers.last! else { Issue.record("no convolution"); return }
        let shared = try #require(SharedPatchConvolution(layer))
        #expect(shared.channels == channels && shared.positions * channels == layer.outputCount && shared.offsetCount == 9 * inputChannels)
        var values = SplitMix64(seed: 17)
        let x = (0..<layer.inputCount).map { _ in Int64(values.next() % 31) - 15 }
        let expected = (0..<layer.outputCount).map { o in
            (layer.rowStart[o]..<layer.rowStart[o + 1]).reduce(Int64(0)) { $0 + layer.weights[$1] * x[Int(layer.inputs[$1])] }
        }
        var row = shared.period
        while row <= 16 * shared.positionPeriod {
            let c = shared.laidOut(polynomialSize: 2 * row)
            #expect(c.blocksPerRow * c.positionPeriod == row && c.blocksPerRow % c.babyStep == 0)
            let cts = (0..<c.ciphertextCount).map { j in (0..<row).map { s in c.input(ciphertext: j, rowSlot: s).map { x[$0] } ?? 0 } }
            var y = [Int64](repeating: 0, count: row)
            for g in 0..<c.giantSteps {
                var inner = [Int64](repeating: 0, count: row)
                for (j, ct) in cts.enumerated() {
                    for h in 0..<c.babyStep {
                        guard let d = c.diagonal(ciphertext: j, g * c.babyStep + h) else { continue }
                        let rotated = Self.rotate(ct, h * c.positionPeriod)
                        for s in 0..<row { inner[s] += d[s] * rotated[s] }
                    }
                }
                let giant = Self.rotate(inner, g * c.babyStep * c.positionPeriod)
                for s in 0..<row { y[s] += giant[s] }
            }
            for o in 0..<layer.outputCount {
                #expect(y[c.outputSlot(o)] == expected[o], "row \(row), output \(o)")
            }
            #expect((0..<row).allSatisfy { y[$0] == y[$0 % c.period] }, "row \(row): not periodic")
            #expect(c.rotationSteps.count == c.babyStep - 1 + c.giantSteps - 1)
            row *= 2
        }
    }

    @Test("Shared patches refuse what is not a convolution: a dense layer, and one whose filter differs between two positions")
    func sharedPatchRefusals() throws {
        let form = try Self.conv(channels: 3, side: 7, seed: 2).integerForm()
        guard case .linear(let conv) = form.layers[0], case .linear(let dense) = form.layers[2] else { Issue.record("layers"); return }
        #expect(SharedPatchConvolution(dense) == nil)
        var weights = conv.weights
        weights[conv.rowStart[1]] += 1
        let local = PolynomialIntegerNetwork.Linear(rowStart: conv.rowStart, inputs: conv.inputs, weights: weights, bias: conv.bias,
                                                    inputCount: conv.inputCount, kernelOffsets: conv.kernelOffsets,
                                                    kernelOffsetCount: conv.kernelOffsetCount)
        #expect(SharedPatchConvolution(local) == nil)
        #expect(SharedPatchConvolution(conv) != nil)
    }

    @Test("Latency mode with shared patches, where a row holds one replicated block (4 channels × 100 positions in rows of 512): 9 offsets in 3 ciphertexts, not 9; BFV exact with its noise model conservative, CKKS within its predicted error; not where the convolution's outputs are the scores")
    func latencySharedPatches() throws {
        let form = try Self.conv(channels: 4, side: 12, seed: 5).integerForm()
        let images = Self.images(3, pixels: 144, seed: 13)
        let ring = SIMDPlan.Shape(polynomialSize: 1024, ciphertextBits: [54, 54, 54, 54], specialBits: [55], insecureTestOnly: true)
        let bfv = try SIMDPlan.compile(form, mode: .latency, shapes: [ring])
        let ckks = try SIMDPlan.compile(form, mode: .latency, scheme: .ckks, shapes: [ring])
        for plan in [bfv, ckks] {
            guard case .sharedPatchConvolution(let c) = plan.steps[0].kind else { Issue.record("\(plan.scheme): \(plan.steps[0].summary)"); continue }
            #expect(c.positionPeriod == 128 && c.blocksPerRow == 4 && plan.inputCiphertexts == 3)
            #expect(plan.steps[0].operations.rotations == c.rotationCount && plan.rotationSteps.contains(128))
        }
        let outcome = try SIMDPipeline.run(bfv, images: images)
        #expect(outcome.scores == images.map { form.scores($0) })
        #expect(outcome.budgetBits >= bfv.predictedBudgetBits, "measured \(outcome.budgetBits), predicted \(bfv.predictedBudgetBits)")
        try Self.expectWithinPrediction(ckks, form, images: images)

        // The same convolution alone: its outputs are the scores, read at their own index, so its
        // offsets go one per ciphertext rather than leave the scores in blocks of 128.
        var rng = SplitMix64(seed: 5)
        let alone = try PolynomialNetwork(inputSide: 12, layers: [.convolution(Self.convolution(channels: 4, side: 12, rng: &rng))]).integerForm()
        let plain = try SIMDPlan.compile(alone, mode: .latency, shapes: [ring])
        #expect(plain.inputCiphertexts == 9, "\(plain.steps[0].summary)")
        #expect(try SIMDPipeline.run(plain, images: images).scores == images.map { alone.scores($0) })
    }

    @Test("Layouts: the diagonal method equals the matrix product on clear vectors, for square, tall and wide matrices",
          arguments: [(845, 100), (100, 10), (10, 100), (64, 64)])
    func diagonalLayout(columns: Int, rows: Int) throws {
        var rng = SplitMix64(seed: UInt64(columns * rows))
        let weights = (0..<(rows * columns)).map { _ in Int64(rng.next() % 15) - 7 }
        let layer = PolynomialIntegerNetwork.Linear(rowStart: (0...rows).map { $0 * columns },
                                                    inputs: (0..<(rows * columns)).map { Int32($0 % columns) },
                                                    weights: weights, bias: [Int128](repeating: 0, count: rows),
                                                    inputCount: columns, kernelOffsets: [], kernelOffsetCount: 0)
        let inputPeriod = max(powerOfTwo(atLeast: columns), powerOfTwo(atLeast: rows))
        let m = MatrixVector(layer, inputPeriod: inputPeriod, outputPeriod: powerOfTwo(atLeast: rows))
        let x = (0..<inputPeriod).map { $0 < columns ? Int64(rng.next() % 31) - 15 : 0 }
        var z = [Int64](repeating: 0, count: inputPeriod)
        for g in 0..<m.giantSteps {
            var inner = [Int64](repeating: 0, count: inputPeriod)
            for h in 0..<m.babyStep {
                guard let d = m.diagonals[g * m.babyStep + h] else { continue }
                let r = Self.rotate(x, h)
                for s in 0..<inputPeriod { inner[s] += d[s] * r[s] }
            }
            let shifted = Self.rotate(inner, g * m.babyStep)
            for s in 0..<inputPeriod { z[s] += shifted[s] }
        }
        var fold = inputPeriod / 2
        while fold >= m.outputPeriod {
            let r = Self.rotate(z, fold)
            for s in 0..<inputPeriod { z[s] += r[s] }
            fold /= 2
        }
        for o in 0..<rows {
            let expected = (0..<columns).reduce(Int64(0)) { $0 + weights[o * columns + $1] * x[$1] }
            // Every copy of the output period holds the result.
            for copy in stride(from: o, to: inputPeriod, by: m.outputPeriod) { #expect(z[copy] == expected) }
        }
    }

    @Test("CKKS throughput: x² and a fitted quadratic, every score within the plan's predicted error of the integer reference; cubics are refused",
          arguments: [[Float]([0, 0, 1]), PolynomialNetwork.reluApproximation(degree: 2, bound: 4)])
    func ckks(activation: [Float]) throws {
        let form = try Self.tiny(activation: activation).integerForm()
        let plan = try SIMDPlan.compile(form, scheme: .ckks, shapes: [Self.smallShape])
        #expect(plan.securityBits == 0)
        #expect(plan.batchSize == 512)
        // The product is relinearized and rescaled after the dense layer, on its 3 outputs rather than its 8 inputs.
        #expect(plan.steps.map(\.rescales) == [0, 0, 1] && plan.steps.map(\.relinearizes) == [false, false, true])
        try Self.expectWithinPrediction(plan, form, images: Self.images(plan.batchSize, pixels: 16, seed: 21))
        let secure = try SIMDPlan.compile(form, scheme: .ckks)
        #expect(secure.securityBits == 128)
        // No shapes named is not a request for the insecure test set.
        #expect(try SIMDPlan.compile(form, scheme: .ckks, shapes: []).securityBits == 128)
        #expect(secure.plaintextModuli.isEmpty)
        let cubic = try Self.tiny(activation: [0, 0.5, 0, 0.25]).integerForm()
        #expect(throws: SIMDPlan.PlanError.self) { try SIMDPlan.compile(cubic, scheme: .ckks) }
        #expect(throws: SIMDPlan.PlanError.self) { try SIMDPlan.compile(cubic, mode: .latency, scheme: .ckks) }
    }

    @Test("CKKS latency: one image across the slots (kernel offsets in blocks, diagonals, rotations, a prime per plaintext product), x² and a fitted quadratic, every score within the plan's predicted error of the integer reference",
          arguments: [[Float]([0, 0, 1]), PolynomialNetwork.reluApproximation(degree: 2, bound: 4)])
    func ckksLatency(activation: [Float]) throws {
        let form = try Self.tiny(activation: activation).integerForm()
        let plan = try SIMDPlan.compile(form, mode: .latency, scheme: .ckks, shapes: [Self.smallShape])
        #expect(plan.securityBits == 0 && plan.batchSize == 1 && plan.scheme == .ckks)
        guard case .packedConvolution(let c) = plan.steps[0].kind else { Issue.record("no packed convolution"); return }
        // 9 offsets in blocks of period 8 on a row of 512 slots: one ciphertext of 16 blocks, 4 rotations.
        #expect(c.period == 8 && c.blocks == 16 && plan.inputCiphertexts == 1 && plan.steps[0].operations.rotations == 4)
        // Each linear step drops its weights' prime; the activation its product's.
        #expect(plan.steps.map(\.rescales) == [1, 1, 1])
        try Self.expectWithinPrediction(plan, form, images: Self.images(6, pixels: 16, seed: 23))
    }

    @Test("Latency mode with a dense first layer: the client sends the image as one vector; BFV exact, CKKS within its predicted error (baby-step rotations before the first product); a network without a linear layer is refused")
    func latencyDenseFirst() throws {
        var rng = SplitMix64(seed: 4)
        let network = PolynomialNetwork(inputSide: 4, layers: [
            .dense(.init(inputCount: 16, outputCount: 8, weights: (0..<128).map { _ in rng.uniform(-1, 1) }, bias: [Float](repeating: 0.25, count: 8))),
            .polynomial([0, 0, 1]),
            .dense(.init(inputCount: 8, outputCount: 3, weights: (0..<24).map { _ in rng.uniform(-1, 1) }, bias: [0, 1, -1])),
        ])
        let form = try network.integerForm()
        let plan = try SIMDPlan.compile(form, mode: .latency, shapes: [Self.smallShape])
        #expect(plan.inputCiphertexts == 1)
        let images = Self.images(4, pixels: 16, seed: 3)
        #expect(try SIMDPipeline.run(plan, images: images).scores == images.map { form.scores($0) })
        let ckks = try SIMDPlan.compile(form, mode: .latency, scheme: .ckks, shapes: [Self.smallShape])
        #expect(ckks.inputCiphertexts == 1)
        try Self.expectWithinPrediction(ckks, form, images: images)
        let activationOnly = try PolynomialNetwork(inputSide: 4, layers: [.polynomial([0, 0, 1])]).integerForm()
        for scheme in SIMDPlan.Scheme.allCases {
            #expect(throws: SIMDPlan.PlanError.self) { try SIMDPlan.compile(activationOnly, mode: .latency, scheme: scheme) }
        }
    }

    @Test("Hostile networks get typed errors (huge weights or coefficients, a constant activation); pixels are clamped to [0, 1]")
    func hostileNetworks() throws {
        var huge = Self.tiny(activation: [0, 0, 1])
        if case .dense(var dense) = huge.layers[2] {
            dense.weights[0] = 1e30
            huge.layers[2] = .dense(dense)
        }
        #expect(throws: PolynomialIntegerNetwork.FormError.self) { try huge.integerForm() }
        #expect(throws: PolynomialIntegerNetwork.FormError.self) { try Self.tiny(activation: [3e38, 0, 1]).integerForm() }
        #expect(throws: PolynomialIntegerNetwork.FormError.self) { try Self.tiny(activation: [1]).integerForm() }
        let form = try Self.tiny(activation: [0, 0, 1]).integerForm()
        #expect(form.quantizedInput([.nan, -3, 7, 0.5, .infinity][...]) == [0, 0, 15, 8, 15])
        let client = try SIMDClient(plan: SIMDPlan.compile(form, shapes: [Self.smallShape]))
        #expect(throws: SIMDClient.ClientError.noImages) { try client.encrypt([]) }
    }

    @Test("Wire objects from untrusted bytes: truncated, of another kind or plan, or keys missing a rotation are refused with typed errors; a good round trip is exact")
    func hostileWireObjects() throws {
        let form = try Self.tiny(activation: [0, 0, 1]).integerForm()
        let throughput = try SIMDPlan.compile(form, shapes: [Self.smallShape])
        let latency = try SIMDPlan.compile(form, mode: .latency, shapes: [Self.smallShape])
        #expect(throughput.fingerprint != latency.fingerprint)
        #expect(latency.parameterSetName.contains("-latency-insecure-") && latency.parameterSetName != throughput.parameterSetName)
        let client = try SIMDClient(plan: latency)
        let keys = client.evaluationKeyBytes()
        #expect(SIMDWire.kind(of: keys) == .evaluationKeys && !SIMDWire.containsSecretKey(keys))
        // A secret key framed as keys is still found (the client refuses to send it).
        var framed = SIMDWire.encode(.evaluationKeys, plan: latency, [[RlweFormat.secretMagic + [0, 0, 0, 0]]])
        #expect(SIMDWire.containsSecretKey(framed))
        framed.removeLast(3)
        #expect(!SIMDWire.containsSecretKey(framed))
        let upload = try client.encryptForUpload([Self.images(3, pixels: 16, seed: 3)[2]])
        #expect(SIMDWire.kind(of: upload) == .inputs)
        // The sizes a server may buffer are exact.
        #expect(keys.count == latency.evaluationKeyBytes)
        #expect(upload.count == latency.uploadBytes)
        #expect(try SIMDClient(plan: throughput).evaluationKeyBytes().count == throughput.evaluationKeyBytes)
        func refused(_ body: () throws -> Void) { #expect(throws: (any Error).self) { try body() } }
        refused { _ = try SIMDEvaluator(plan: latency, keyBytes: Array(keys.dropLast())) }
        refused { _ = try SIMDEvaluator(plan: latency, keyBytes: keys + [0]) }
        refused { _ = try SIMDEvaluator(plan: latency, keyBytes: upload) }
        refused { _ = try SIMDEvaluator(plan: throughput, keyBytes: keys) }
        refused { _ = try SIMDEvaluator(plan: latency, keyBytes: Array(repeating: 0x4f, count: 4096)) }
        // Keys of the right contexts but without the plan's rotations: refused at registration.
        let bare = latency.parameters.map { parameters in
            KeyGenerator(secretKey: SecretKey(context: RlweContext(parameters: parameters)))
                .makeEvaluationKey(relinearization: true, rotations: []).serialized()
        }
        #expect(throws: SIMDEvaluator.EvaluationError.self) {
            try SIMDEvaluator(plan: latency, keyBytes: SIMDWire.encode(.evaluationKeys, plan: latency, bare.map { [$0] }))
        }
        let server = try SIMDEvaluator(plan: latency, keyBytes: keys)
        refused { _ = try server.evaluate(upload: Array(upload.dropLast(3))) }
        refused { _ = try server.evaluate(upload: keys) }
        let result = try server.evaluate(upload: upload).bytes
        #expect(SIMDWire.kind(of: result) == .outputs)
        #expect(try client.decrypt(download: result, imageCount: 1).scores == [form.scores(Self.images(3, pixels: 16, seed: 3)[2])])
        #expect(throws: SIMDClient.ClientError.self) { try client.decrypt(download: Array(result.dropLast()), imageCount: 1) }
        #expect(throws: SIMDClient.ClientError.self) { try client.decrypt(download: upload, imageCount: 1) }
    }

    @Test("A plan without margin (the largest t, a budget predicted far below zero) is caught by the client's measured budget, not returned wrong")
    func exhaustedBudgetRefused() throws {
        var deep = Self.tiny(activation: [0, 0, 1])
        deep.layers.append(.polynomial([0, 0, 1]))
        deep.layers.append(.dense(.init(inputCount: 3, outputCount: 2, weights: [1, -0.5, 0.75, 0.25, -1, 1], bias: [0, 0])))
        let form = try deep.integerForm()
        let reckless = try SIMDPlan.compile(form, shapes: [SIMDPlan.Shape(polynomialSize: 256, ciphertextBits: [54, 54], specialBits: [],
                                                                           insecureTestOnly: true)], marginBits: -1000)
        #expect(reckless.predictedBudgetBits < 0)
        do {
            _ = try SIMDPipeline.run(reckless, images: Self.images(8, pixels: 16, seed: 2))
            Issue.record("scores past their noise budget were returned")
        } catch SIMDPipeline.PipelineError.client(.noiseBudgetExhausted) {
            // The client measured the budget and refused.
        }
    }

    @Test("The CRT joins residues into (−T/2, T/2]; with a prime left out, scores beyond its range come back wrong")
    func crt() throws {
        let moduli = NTTPrimes.generate(count: 4, bits: 30, polynomialSize: 8192)
        let crt = CRT(moduli: moduli)
        let half = Int128(crt.product / 2)
        var rng = SplitMix64(seed: 5)
        var values: [Int128] = [0, 1, -1, half, -half + 1]
        for _ in 0..<1000 { values.append(Int128(truncatingIfNeeded: rng.next128()) % half) }
        func residues(_ v: Int128, _ m: [UInt64]) -> [UInt64] {
            m.map { t in UInt64((v % Int128(t) + Int128(t)) % Int128(t)) }
        }
        for v in values { #expect(crt.centered(residues(v, moduli)) == v) }
        let fewer = CRT(moduli: Array(moduli.dropLast()))
        let beyond = values.filter { $0.magnitude > fewer.product / 2 }
        #expect(beyond.count > 900)
        #expect(beyond.allSatisfy { fewer.centered(residues($0, Array(moduli.dropLast()))) != $0 })
    }

    @Test("Plans: 128-bit by default, the cheapest shape, and a readable error when no set holds the scores")
    func planning() throws {
        let form = try Self.tiny(activation: [0, 0, 1]).integerForm()
        let plan = try SIMDPlan.compile(form)
        #expect(plan.securityBits == 128)
        #expect(plan.batchSize == 8192)
        #expect(plan.plaintextModuli.allSatisfy { NTTPrimes.isPrime($0) && $0 % 16384 == 1 })
        let product = plan.plaintextModuli.reduce(1.0) { $0 * Double($1) }
        #expect(product > 2 * form.outputBound)
        #expect(plan.operations.ciphertextMultiplies == 8)
        #expect(plan.operations.scalarMultiplyAdds == form.layers.reduce(0) { if case .linear(let l) = $1 { $0 + l.termCount } else { $0 } })
        // x^8 needs seven levels of products: more than N = 8192 with 3 × 54 bits holds.
        let deep = try Self.tiny(activation: [0, 0, 0, 0, 0, 0, 0, 0, 1]).integerForm()
        #expect(throws: SIMDPlan.PlanError.self) { try SIMDPlan.compile(deep, shapes: [SIMDPlan.Shape.secure[0]]) }
        do {
            _ = try SIMDPlan.compile(deep, shapes: [SIMDPlan.Shape.secure[0]])
        } catch {
            #expect("\(error)".contains("no BFV parameter set among those tried"))
            #expect("\(error)".contains("7 multiplicative levels"))
            #expect("\(error)".contains(": the noise does not fit"))
        }
        // Latency mode on a ring whose rows are shorter than a layer's vector names that limit.
        let narrow = SIMDPlan.Shape(polynomialSize: 8, ciphertextBits: [54, 54, 54], specialBits: [], insecureTestOnly: true)
        do {
            _ = try SIMDPlan.compile(form, mode: .latency, shapes: [narrow])
            Issue.record("planned latency mode with rows of 4 slots")
        } catch {
            #expect("\(error)".contains("N=8 log Q=161: a layer needs 8 slots in a row of 4"), "\(error)")
        }
        // A plaintext modulus capped below what the ring's slots need (≡ 1 mod 2N, at least log2(N) + 2 bits).
        do {
            _ = try SIMDPlan.compile(form, shapes: [SIMDPlan.Shape.secure[0]], maximumPlaintextBits: 12)
            Issue.record("planned with 12-bit plaintext primes on N = 8192")
        } catch {
            #expect("\(error)".contains("plaintext primes of at most 12 bits, below the 15 that N needs"), "\(error)")
        }
        // The larger shapes hold it.
        #expect(try SIMDPlan.compile(deep).parameters[0].polynomialSize == 16384)
    }

    @Test("Bundled cryptonets-mnist on 128-bit sets: 32 test images in one batch and 2 in latency mode, every score exact, the noise model conservative")
    func cryptoNetsExact() throws {
        let file = try ModelCatalog.load("cryptonets-mnist")
        let form = try #require(file.polynomialNetwork).integerForm()
        let plan = try SIMDPlan.compile(form)
        #expect(plan.securityBits == 128)
        let data = try file.datasetKind.evaluationData(folder: SharedData.root + "/mnist")
        let samples = Array(file.datasetKind.evaluationSamples(in: data).prefix(32))
        let batch = samples.map { data.sample($0) }
        let outcome = try SIMDPipeline.run(plan, images: batch)
        #expect(outcome.scores == batch.map { form.scores($0) })
        #expect(outcome.budgetBits >= plan.predictedBudgetBits)
        #expect(outcome.budgetBits > 0)

        // Latency mode on the same network: two images, one at a time.
        let latency = try SIMDPlan.compile(form, mode: .latency)
        #expect(latency.securityBits == 128)
        let single = try SIMDPipeline.run(latency, images: Array(batch.prefix(2)))
        #expect(single.scores == batch.prefix(2).map { form.scores($0) })
        #expect(single.budgetBits >= latency.predictedBudgetBits, "measured \(single.budgetBits), predicted \(latency.predictedBudgetBits)")
    }

    @Test("Bundled cryptodl-cnn-mnist (two convolutions, each followed by CryptoDL's fitted quadratic): at 128 bits the planner holds it on N = 8192 (BFV with 3 plaintext primes, CKKS with 3 ciphertext primes); every slot of a BFV batch of test images on the insecure test ring equals the integer reference")
    func cryptoDLNetwork() throws {
        let file = try ModelCatalog.load("cryptodl-cnn-mnist")
        let form = try #require(file.polynomialNetwork).integerForm()
        let bfv = try SIMDPlan.compile(form)
        #expect(bfv.securityBits == 128 && bfv.parameters[0].polynomialSize == 8192 && bfv.plaintextModuli.count == 3)
        let ckks = try SIMDPlan.compile(form, scheme: .ckks)
        #expect(ckks.securityBits == 128 && ckks.parameters[0].polynomialSize == 8192 && ckks.parameters[0].ciphertextModuli.count == 3)
        let plan = try SIMDPlan.compile(form, shapes: [Self.smallShape])
        let data = try file.datasetKind.evaluationData(folder: SharedData.root + "/mnist")
        let batch = file.datasetKind.evaluationSamples(in: data).prefix(plan.batchSize).map { data.sample($0) }
        let outcome = try SIMDPipeline.run(plan, images: batch)
        #expect(outcome.scores == batch.map { form.scores($0) })
        #expect(outcome.budgetBits >= plan.predictedBudgetBits, "measured \(outcome.budgetBits), predicted \(plan.predictedBudgetBits)")
    }

    @Test("Bundled CryptoNets and HCNN on CKKS: N = 8192 at 128 bits, a full batch of 4,096 test images, every argmax the integer reference's and every error within the plan's prediction",
          arguments: ["cryptonets-mnist", "hcnn-mnist"])
    func bundledCKKS(model: String) throws {
        let file = try ModelCatalog.load(model)
        let form = try #require(file.polynomialNetwork).integerForm()
        let plan = try SIMDPlan.compile(form, scheme: .ckks)
        #expect(plan.securityBits == 128)
        #expect(plan.parameters[0].polynomialSize == 8192)
        #expect(plan.parameters[0].ciphertextModuli.count == 3)
        let data = try file.datasetKind.evaluationData(folder: SharedData.root + "/mnist")
        let batch = file.datasetKind.evaluationSamples(in: data).prefix(plan.batchSize).map { data.sample($0) }
        try Self.expectWithinPrediction(plan, form, images: batch, sameArgmax: true)
    }

    @Test("Bundled CryptoNets on CKKS in latency mode: 128 bits on N = 16384, 25 kernel offsets in 4 ciphertexts, four test images one at a time, every argmax the integer reference's and every error within the plan's prediction")
    func bundledCKKSLatency() throws {
        let file = try ModelCatalog.load("cryptonets-mnist")
        let form = try #require(file.polynomialNetwork).integerForm()
        let plan = try SIMDPlan.compile(form, mode: .latency, scheme: .ckks)
        #expect(plan.securityBits == 128 && plan.parameters[0].polynomialSize == 16384 && plan.inputCiphertexts == 4)
        let data = try file.datasetKind.evaluationData(folder: SharedData.root + "/mnist")
        let images = file.datasetKind.evaluationSamples(in: data).prefix(4).map { data.sample($0) }
        try Self.expectWithinPrediction(plan, form, images: images, sameArgmax: true)
    }
}

/// The shared data folder beside the repository.
enum SharedData {
    static let root: String = {
        if let path = ProcessInfo.processInfo.environment["OBSCURA_SHARED_DATA"] { return path }
        let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        return here.appendingPathComponent("../../../shared/data").standardized.path
    }()
}

/// Reproducible test inputs from NeuralNet's SplitMix64.
extension SplitMix64 {
    mutating func next128() -> UInt128 { UInt128(next()) << 64 | UInt128(next()) }
    mutating func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * Float(next() >> 40) / Float(1 << 24) }
}
