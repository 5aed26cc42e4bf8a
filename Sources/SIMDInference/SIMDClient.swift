import InferenceBackend
import NeuralNet
import ObscuraMath
import RLWE

/// The client half: a secret key per plaintext prime (one for CKKS), the evaluation keys the
/// server needs, images encrypted in the plan's layout, and the scores joined back from every
/// prime by the CRT. The secret keys never leave this object.
public final class SIMDClient: InferenceBackendClient {
    public let plan: SIMDPlan
    /// One context per plaintext prime.
    public let contexts: [RlweContext]
    private let secretKeys: [SecretKey]
    private let encryptors: [Encryptor]
    private let encoders: [SlotEncoder]

    /// Why a batch cannot be encrypted or decrypted.
    public enum ClientError: Error, Equatable, Sendable, CustomStringConvertible {
        case batchTooLarge(images: Int, slots: Int)
        case wrongImageSize(index: Int, expected: Int, got: Int)
        case wrongResultShape(String)
        case noImages
        /// A result's noise budget is spent: its decryption cannot be trusted.
        case noiseBudgetExhausted(bits: Double)
        case rlwe(RlweError)

        public var description: String {
            switch self {
            case .batchTooLarge(let images, let slots): "\(images) images for a batch of \(slots) slots"
            case .wrongImageSize(let index, let expected, let got): "image \(index) has \(got) values; the network reads \(expected)"
            case .wrongResultShape(let what): "the result does not fit the plan: \(what)"
            case .noImages: "no images to encrypt"
            case .noiseBudgetExhausted(let bits):
                "a result has \(bits) bits of noise budget left: its decryption cannot be trusted (the plan's noise model was wrong)"
            case .rlwe(let error): "\(error)"
            }
        }
    }

    /// Fresh secret keys (system entropy) for every plaintext prime of `plan`.
    public init(plan: SIMDPlan) throws(ClientError) {
        self.plan = plan
        contexts = plan.contexts
        secretKeys = contexts.map { SecretKey(context: $0) }
        encryptors = secretKeys.map { Encryptor(secretKey: $0) }
        do {
            encoders = try contexts.map { context throws(RlweError) in try SlotEncoder(context) }
        } catch {
            throw .rlwe(error)
        }
    }

    /// The keys the server evaluates with, one per plaintext prime: relinearization, and in
    /// latency mode the rotations of the plan.
    public func evaluationKeys() -> [EvaluationKey] {
        secretKeys.map { KeyGenerator(secretKey: $0).makeEvaluationKey(relinearization: true, rotations: plan.rotationSteps) }
    }

    /// ``evaluationKeys()`` as one byte string for the server (``SIMDWire``).
    public func evaluationKeyBytes() -> [UInt8] {
        SIMDWire.encode(.evaluationKeys, plan: plan, evaluationKeys().map { [$0.serialized()] })
    }

    /// ``encrypt(_:)`` as one byte string for the server (``SIMDWire``).
    public func encryptForUpload(_ images: [ArraySlice<Float>]) throws(ClientError) -> [UInt8] {
        SIMDWire.encode(.inputs, plan: plan, try encrypt(images).map { $0.map { $0.serialized() } })
    }

    /// ``decrypt(_:imageCount:)`` of the server's result bytes (``SIMDWire``), read as untrusted.
    public func decrypt(download bytes: [UInt8], imageCount: Int) throws(ClientError) -> (scores: [[Int128]], budgetBits: Double) {
        let outputs: [[Ciphertext]]
        do throws(RlweError) {
            outputs = try SIMDWire.decode(bytes, kind: .outputs, plan: plan, objectsPerPrime: plan.outputCiphertexts)
                .enumerated().map { prime, objects throws(RlweError) in
                    try objects.map { bytes throws(RlweError) in try Ciphertext(deserializing: bytes, context: contexts[prime]) }
                }
        } catch {
            throw .rlwe(error)
        }
        return try decrypt(outputs, imageCount: imageCount)
    }

    /// Images (pixels in [0, 1]) → the plan's input ciphertexts per plaintext prime, seeded,
    /// encrypted on all cores. Throughput: one per input value, image j in slot j. Latency (one
    /// image): the first convolution's kernel offsets in blocks (``PackedConvolution``), slot o
    /// of an offset's block holding the pixel that output o reads there; or each offset's patch
    /// once (``SharedPatchConvolution``); or the image as one vector; each repeated with its period.
    public func encrypt(_ images: [ArraySlice<Float>]) throws(ClientError) -> [[SeededCiphertext]] {
        guard !images.isEmpty else { throw .noImages }
        guard images.count <= plan.batchSize else { throw .batchTooLarge(images: images.count, slots: plan.batchSize) }
        let inputs = plan.network.inputCount
        for (index, image) in images.enumerated() where image.count != inputs {
            throw .wrongImageSize(index: index, expected: inputs, got: image.count)
        }
        let quantized = images.map { plan.network.quantizedInput($0) }
        let slotVectors: [[Int64]]
        switch plan.mode {
        case .throughput:
            slotVectors = (0..<inputs).map { pixel in quantized.map { $0[pixel] } }
        case .latency:
            let x = quantized[0], n = plan.parameters[0].polynomialSize, slotCount = encoders[0].slotCount
            switch plan.steps.first?.kind {
            case .packedConvolution(let c)?:
                slotVectors = (0..<c.ciphertextCount).map { j in
                    (0..<slotCount).map { s in
                        guard let kappa = c.offset(ciphertext: j, slot: s, polynomialSize: n) else { return 0 }
                        let index = c.inputIndex[kappa][s % c.period]
                        return index < 0 ? 0 : x[Int(index)]
                    }
                }
            case .sharedPatchConvolution(let c)?:
                slotVectors = (0..<c.ciphertextCount).map { j in
                    (0..<slotCount).map { s in c.input(ciphertext: j, rowSlot: s % (n / 2)).map { x[$0] } ?? 0 }
                }
            default:
                let period = powerOfTwo(atLeast: inputs)
                slotVectors = [(0..<slotCount).map { s in s % period < inputs ? x[s % period] : 0 }]
            }
        }
        do {
            return try encoders.indices.map { prime in
                try ParallelWork.map(slotVectors.count) { i in
                    try encoders[prime].encrypt(slotVectors[i], with: encryptors[prime])
                }
            }
        } catch let error as RlweError {
            throw .rlwe(error)
        } catch {
            throw .rlwe(.invalidParameters("\(error)"))
        }
    }

    /// The exact scores of the first `imageCount` slots: each output decrypted under every
    /// prime and joined by the CRT into (−T/2, T/2], T = Π t_i. Also the smallest noise budget
    /// seen (bits; decryption is exact while it is positive). CKKS: the nearest integers of the
    /// approximate scores, and no budget (infinity).
    public func decrypt(_ outputs: [[Ciphertext]], imageCount: Int) throws(ClientError) -> (scores: [[Int128]], budgetBits: Double) {
        guard outputs.count == contexts.count else {
            throw .wrongResultShape("\(outputs.count) plaintext primes, the plan has \(contexts.count)")
        }
        guard imageCount <= plan.batchSize else { throw .batchTooLarge(images: imageCount, slots: plan.batchSize) }
        guard imageCount >= 0 else { throw .wrongResultShape("a negative image count") }
        let classes = outputs[0].count
        var residues: [[SlotValues]] = []  // [prime][output ciphertext]
        var budget = Double.infinity
        do {
            for (prime, cts) in outputs.enumerated() {
                guard cts.count == classes else { throw ClientError.wrongResultShape("prime \(prime) has \(cts.count) outputs") }
                let decryptor = Decryptor(secretKey: secretKeys[prime])
                var perClass: [SlotValues] = []
                for ct in cts {
                    guard ct.context === contexts[prime] else { throw ClientError.rlwe(.contextMismatch) }
                    perClass.append(try encoders[prime].decrypt(ct, with: decryptor))
                    if ct.context.isBFV { budget = min(budget, try decryptor.noiseBudget(ct)) }
                }
                residues.append(perClass)
            }
        } catch let error as ClientError {
            throw error
        } catch let error as RlweError {
            throw .rlwe(error)
        } catch {
            throw .rlwe(.invalidParameters("\(error)"))
        }
        // Below one bit the noise may have reached Δ/2: refuse rather than return wrong scores.
        guard budget >= 1 else { throw .noiseBudgetExhausted(bits: budget) }
        // Latency mode: one ciphertext; score c in slot c.
        if plan.mode == .latency, classes != 1 {
            throw .wrongResultShape("latency mode returns one ciphertext per prime, not \(classes)")
        }
        if plan.scheme == .ckks {
            // Nearest integers of the approximate scores: image j's score c in slot j of output c,
            // or (latency) in slot c of the one output.
            let scores = plan.mode == .latency
                ? [(0..<plan.scoreCount).map { c in residues[0][0].nearest(c) }]
                : (0..<imageCount).map { slot in (0..<classes).map { c in residues[0][c].nearest(slot) } }
            return (scores, budget)
        }
        let crt = CRT(moduli: plan.plaintextModuli)
        switch plan.mode {
        case .throughput:
            let scores = (0..<imageCount).map { slot in
                (0..<classes).map { c in crt.centered(residues.map { $0[c][slot] }) }
            }
            return (scores, budget)
        case .latency:
            return ([(0..<plan.scoreCount).map { c in crt.centered(residues.map { $0[0][c] }) }], budget)
        }
    }
}

/// BFV's exact batching or CKKS's approximate slots.
enum SlotEncoder: Sendable {
    case bfv(BatchEncoder)
    case ckks(CKKSEncoder)

    init(_ context: RlweContext) throws(RlweError) {
        self = context.isBFV ? .bfv(try BatchEncoder(context: context)) : .ckks(try CKKSEncoder(context: context))
    }

    var context: RlweContext {
        switch self {
        case .bfv(let encoder): encoder.context
        case .ckks(let encoder): encoder.context
        }
    }

    /// The values one plaintext holds: N (BFV's two rows of N/2), N/2 (CKKS's one row).
    var slotCount: Int {
        switch self {
        case .bfv(let encoder): encoder.context.polynomialSize
        case .ckks(let encoder): encoder.slotCount
        }
    }

    func encrypt(_ values: [Int64], with encryptor: Encryptor) throws(RlweError) -> SeededCiphertext {
        switch self {
        case .bfv(let encoder): try encryptor.encrypt(encoder.encode(values))
        case .ckks(let encoder): try encryptor.encrypt(encoder.encode(values.map(Double.init)))
        }
    }

    /// Slot values as residues mod t (BFV) or as reals (CKKS).
    func decrypt(_ ct: Ciphertext, with decryptor: Decryptor) throws(RlweError) -> SlotValues {
        switch self {
        case .bfv(let encoder): .residues(encoder.decode(try decryptor.decrypt(ct)))
        case .ckks(let encoder): .reals(encoder.decode(try decryptor.decryptApproximate(ct)).map(\.real))
        }
    }
}

/// Decrypted slots: residues mod t (BFV) or reals (CKKS).
enum SlotValues {
    case residues([UInt64])
    case reals([Double])

    subscript(slot: Int) -> UInt64 {
        if case .residues(let r) = self { r[slot] } else { 0 }
    }

    /// The nearest integer of a CKKS slot (0 when not finite or beyond 2^126).
    func nearest(_ slot: Int) -> Int128 {
        guard case .reals(let v) = self, v[slot].isFinite, abs(v[slot]) < 0x1p126 else { return 0 }
        return Int128(v[slot].rounded())
    }
}

/// Chinese remaindering for a few word-sized moduli whose product is below 2^127.
struct CRT: Sendable {
    let moduli: [UInt64]
    /// (t_0·…·t_(i−1))^(−1) mod t_i.
    private let inverses: [UInt64]
    let product: UInt128

    init(moduli: [UInt64]) {
        self.moduli = moduli
        var product: UInt128 = 1
        var inverses: [UInt64] = []
        for t in moduli {
            let m = Modulus(t)
            inverses.append(m.inverse(UInt64(product % UInt128(t))))
            product *= UInt128(t)
        }
        self.inverses = inverses
        self.product = product
    }

    /// The x in (−T/2, T/2] with x ≡ residues[i] (mod t_i).
    func centered(_ residues: [UInt64]) -> Int128 {
        var x: UInt128 = 0, partial: UInt128 = 1
        for (i, t) in moduli.enumerated() {
            // x + partial·((r − x)·partial^(−1) mod t) keeps x mod every earlier prime.
            let m = Modulus(t)
            let difference = m.subtract(residues[i] % t, UInt64(x % UInt128(t)))
            x += partial * UInt128(m.multiply(difference, inverses[i]))
            partial *= UInt128(t)
        }
        return x > product / 2 ? -Int128(product - x) : Int128(x)
    }
}

extension SIMDClient {
    /// A batch (throughput mode) or one image (latency mode).
    public var recordsPerUpload: Int { plan.batchSize }

    /// The exact scores (BFV) or nearest integers (CKKS) of `records` images.
    public func decryptScores(download: [UInt8], records: Int) throws -> [[Int128]] {
        try decrypt(download: download, imageCount: records).scores
    }
}
