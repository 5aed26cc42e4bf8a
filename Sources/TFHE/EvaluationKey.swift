import Dispatch
import ObscuraMath
import Synchronization

/// The public key material a server needs, in its compact (seeded) form: the bootstrapping
/// key's GGSW bodies and the key-switching key's LWE bodies, with the two seeds their masks
/// are expanded from. This is what a client uploads; it is about 1/(k+1) of the full key.
///
/// Bootstrapping-key layout: one GGSW of a bit μ per small-key bit s_i (classic), or per group
/// of g bits and nonzero pattern β ∈ {0,1}^g in increasing order, μ = [s_group = β] (multi-bit,
/// ``TFHEParameters/bootstrapKeyGgswCount``); for each GGSW, for each row (component c ∈ 0...k,
/// level j ∈ 1...l), one GLWE encryption of zero whose body carries the message: rows with c < k
/// encrypt -μ·S_c·2^(64-jβ) and the row c = k encrypts μ·2^(64-jβ). Masks are drawn from
/// CSPRNG(bootstrapSeed, "bsk.mask") in that order, k·N words per row.
/// Key-switching-key layout: for each big-key bit z_i and level j ∈ 1...l_ks, one LWE
/// encryption of z_i·2^(64-jβ_ks) under the small key, masks from CSPRNG(keySwitchSeed, "ksk.mask").
/// Packing-key layout: ``SecretKey/packingKeyBodies(seed:noiseSeed:)``.
public struct CompressedEvaluationKey: Sendable, Equatable {
    /// The parameter set.
    public let parameters: TFHEParameters
    /// The seed of the bootstrapping key's masks.
    public let bootstrapSeed: Seed128
    /// (GGSW count)·(k+1)·l·N bodies.
    public let bootstrapBodies: [UInt64]
    /// The seed of the key-switching key's masks.
    public let keySwitchSeed: Seed128
    /// k·N·l_ks bodies.
    public let keySwitchBodies: [UInt64]
    /// The seed of the packing key's masks.
    public let packingSeed: Seed128
    /// k·N·l_pk·N' bodies: the packing key switch that compacts results (``PackingShape``).
    public let packingBodies: [UInt64]

    /// Rows per GGSW: (k+1)·l.
    static func rowsPerGgsw(_ p: TFHEParameters) -> Int { (p.glweDimension + 1) * p.bootstrapDecomposition.levels }
    static func bootstrapBodyCount(_ p: TFHEParameters) -> Int { p.bootstrapKeyGgswCount * rowsPerGgsw(p) * p.polynomialSize }
    static func keySwitchBodyCount(_ p: TFHEParameters) -> Int { p.bigLweDimension * p.keySwitchDecomposition.levels }
    static func packingBodyCount(_ p: TFHEParameters) -> Int { p.packing.rows * p.packing.polynomialSize }

    /// Builds a compressed key from its parts; the caller guarantees the sizes.
    init(parameters: TFHEParameters, bootstrapSeed: Seed128, bootstrapBodies: [UInt64],
         keySwitchSeed: Seed128, keySwitchBodies: [UInt64], packingSeed: Seed128, packingBodies: [UInt64]) {
        precondition(bootstrapBodies.count == Self.bootstrapBodyCount(parameters))
        precondition(keySwitchBodies.count == Self.keySwitchBodyCount(parameters))
        precondition(packingBodies.count == Self.packingBodyCount(parameters))
        self.parameters = parameters
        self.bootstrapSeed = bootstrapSeed
        self.bootstrapBodies = bootstrapBodies
        self.keySwitchSeed = keySwitchSeed
        self.keySwitchBodies = keySwitchBodies
        self.packingSeed = packingSeed
        self.packingBodies = packingBodies
    }
}

extension SecretKey {
    /// Generates the evaluation key for this secret key (client side), using all cores.
    public func makeEvaluationKey() -> CompressedEvaluationKey {
        makeEvaluationKey(seeds: .fromSystemEntropy(domain: "evaluation-key.seeds"),
                          noiseSeed: .random())
    }

    /// A fully deterministic evaluation key, for known-answer tests only (internal).
    func makeEvaluationKey(deterministicSeed seed: Seed128) -> CompressedEvaluationKey {
        makeEvaluationKey(seeds: CSPRNG(seed: seed, domain: "evaluation-key.seeds"),
                          noiseSeed: Seed128(low: seed.low ^ 0x5bd1_e995, high: seed.high))
    }

    /// The bit that bootstrapping-key GGSW `i` encrypts: s_i (classic), or for group i / (2^g − 1)
    /// and pattern β = i mod (2^g − 1) + 1, the indicator ∏_j (β_j ? s_j : 1 − s_j) over the
    /// group's bits, so that exactly one GGSW of a group encrypts 1 unless its bits are all 0.
    func bootstrapKeyMessage(ggsw i: Int) -> UInt64 {
        let g = parameters.groupingFactor
        if g == 1 { return smallKey[i] }
        let patterns = (1 << g) - 1
        let group = i / patterns, pattern = i % patterns + 1
        var indicator: UInt64 = 1
        for j in 0..<g {
            let bit = smallKey[group * g + j]
            indicator &= (pattern >> j) & 1 == 1 ? bit : 1 &- bit
        }
        return indicator
    }

    private func makeEvaluationKey(seeds: CSPRNG, noiseSeed: Seed128) -> CompressedEvaluationKey {
        var seeds = seeds
        let p = parameters
        let bootstrapSeed = Seed128(low: seeds.next(), high: seeds.next())
        let keySwitchSeed = Seed128(low: seeds.next(), high: seeds.next())
        let packingSeed = Seed128(low: seeds.next(), high: seeds.next())
        let n = p.polynomialSize, k = p.glweDimension
        let rows = CompressedEvaluationKey.rowsPerGgsw(p)
        let ggswWords = rows * n

        // The bootstrapping key: GGSWs are independent, so they are built in parallel. Each
        // GGSW's masks sit at a fixed offset of the mask stream and its noise comes from its
        // own generator (forked by index), so the result does not depend on the thread count.
        var bodies = [UInt64](repeating: 0, count: CompressedEvaluationKey.bootstrapBodyCount(p))
        bodies.withUnsafeMutableBufferPointer { out in
            let base = UnsafeMutableSendablePointer(out.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: p.bootstrapKeyGgswCount) { i in
                var maskStream = CSPRNG(seed: bootstrapSeed, domain: "bsk.mask", startingAtWord: i * rows * k * n)
                var noise = CSPRNG(seed: noiseSeed, domain: "bsk.noise.\(i)")
                writeGgswBodies(message: bootstrapKeyMessage(ggsw: i), into: base.pointer + i * ggswWords,
                                maskStream: &maskStream, noise: &noise)
            }
        }

        // The key-switching key, from the big key to the small key.
        let ksLevels = p.keySwitchDecomposition.levels
        var keySwitchBodies = [UInt64](repeating: 0, count: CompressedEvaluationKey.keySwitchBodyCount(p))
        var maskStream = CSPRNG(seed: keySwitchSeed, domain: "ksk.mask")
        var noise = CSPRNG(seed: noiseSeed, domain: "ksk.noise")
        var mask = [UInt64](repeating: 0, count: p.lweDimension)
        for i in 0..<p.bigLweDimension {
            for level in 1...ksLevels {
                mask.withUnsafeMutableBufferPointer { maskStream.fillUniform($0) }
                let dot = mask.withUnsafeBufferPointer { Self.dot($0.baseAddress!, smallKey) }
                let message = bigKey[i] &* (UInt64(1) << UInt64(64 - level * p.keySwitchDecomposition.baseLog))
                keySwitchBodies[i * ksLevels + level - 1] = dot &+ message &+ p.lweNoise.sample(using: &noise)
            }
        }
        let packingNoise = Seed128(low: noiseSeed.low ^ 0x9e37_79b9_7f4a_7c15, high: noiseSeed.high)
        return CompressedEvaluationKey(parameters: p, bootstrapSeed: bootstrapSeed, bootstrapBodies: bodies,
                                       keySwitchSeed: keySwitchSeed, keySwitchBodies: keySwitchBodies,
                                       packingSeed: packingSeed,
                                       packingBodies: packingKeyBodies(seed: packingSeed, noiseSeed: packingNoise))
    }
}

/// The server's evaluation key, expanded and ready to compute: the bootstrapping key in the
/// Fourier domain and the key-switching key rounded to 32-bit torus precision (the top 32
/// bits of each element; the rounding adds a variance of 2^-64/12 per element, which the
/// noise model counts, and halves the memory traffic of every key switch).
///
/// It is built only from a ``CompressedEvaluationKey``; nothing in it reveals the secret key.
public final class EvaluationKey: Sendable {
    /// The parameter set.
    public let parameters: TFHEParameters
    /// The compact form it was expanded from (kept for re-serialization).
    public let compressed: CompressedEvaluationKey
    let fft: NegacyclicFFT
    /// The bootstrapping key, in the form its blind rotation reads.
    let bootstrappingKey: BootstrappingKey
    /// The monomials' transforms that multi-bit blind rotation combines the key with.
    let monomials: FourierMonomials?

    /// The bootstrapping key of each blind-rotation method.
    enum BootstrappingKey: Sendable {
        /// One Fourier GGSW per bit of the small key, for the CMux loop.
        case classic([FourierGgswCiphertext])
        /// One group of 2^g − 1 Fourier GGSWs per g bits of the small key.
        case multiBit([FourierMultiBitGroup])

        var memoryBytes: Int {
            switch self {
            case .classic(let ggsws): ggsws.reduce(0) { $0 + $1.storage.count * 8 }
            case .multiBit(let groups): groups.reduce(0) { $0 + $1.storage.count * 8 }
            }
        }
    }
    /// For each i < k·N, each level j: n+1 words (mask, then body) at 32-bit precision.
    let keySwitchKey: [UInt32]
    /// The packing key switch in the Fourier domain, expanded on first use: keys that never
    /// pack (gates, circuits, the bitwise perceptron) do not hold it (50 MB for int4-128).
    private let expandedPackingKey = Mutex<FourierPackingKey?>(nil)

    /// Expands a compressed key (server side), in parallel over the bootstrapping key's GGSWs.
    public init(_ compressed: CompressedEvaluationKey) {
        let p = compressed.parameters
        parameters = p
        self.compressed = compressed
        let n = p.polynomialSize, k = p.glweDimension
        let rows = CompressedEvaluationKey.rowsPerGgsw(p)
        let fft = NegacyclicFFT(polynomialSize: n)
        self.fft = fft
        // GGSWs are expanded in parallel, a step of blind rotation (1 or 2^g − 1 GGSWs) each.
        let steps = p.lweDimension / p.groupingFactor, perStep = p.bootstrapKeyGgswCount / steps
        let ggsws = UnsafeMutablePointer<[FourierGgswCiphertext]>.allocate(capacity: steps)
        ggsws.initialize(repeating: [], count: steps)
        defer { ggsws.deinitialize(count: steps); ggsws.deallocate() }
        let shared = UnsafeMutableSendablePointer(ggsws)
        let grouped = UnsafeMutablePointer<FourierMultiBitGroup?>.allocate(capacity: steps)
        grouped.initialize(repeating: nil, count: steps)
        defer { grouped.deinitialize(count: steps); grouped.deallocate() }
        let sharedGroups = UnsafeMutableSendablePointer(grouped)
        compressed.bootstrapBodies.withUnsafeBufferPointer { bodies in
            let bodyBase = UnsafeSendablePointer(bodies.baseAddress!)
            DispatchQueue.concurrentPerform(iterations: steps) { step in
                let members = (step * perStep..<(step + 1) * perStep).map { i in
                    var maskStream = CSPRNG(seed: compressed.bootstrapSeed, domain: "bsk.mask",
                                            startingAtWord: i * rows * k * n)
                    return FourierGgswCiphertext(parameters: p, fft: fft, maskStream: &maskStream,
                                                 bodies: bodyBase.pointer + i * rows * n)
                }
                if p.groupingFactor == 1 {
                    shared.pointer[step] = members
                } else {
                    sharedGroups.pointer[step] = FourierMultiBitGroup(members)
                }
            }
        }
        if p.groupingFactor == 1 {
            bootstrappingKey = .classic((0..<steps).map { ggsws[$0][0] })
            monomials = nil
        } else {
            bootstrappingKey = .multiBit((0..<steps).map { grouped[$0]! })
            monomials = FourierMonomials(fft: fft)
        }

        let small = p.lweDimension, ksLevels = p.keySwitchDecomposition.levels
        var ksk = [UInt32](repeating: 0, count: p.bigLweDimension * ksLevels * (small + 1))
        var maskStream = CSPRNG(seed: compressed.keySwitchSeed, domain: "ksk.mask")
        var mask = [UInt64](repeating: 0, count: small)
        for row in 0..<(p.bigLweDimension * ksLevels) {
            mask.withUnsafeMutableBufferPointer { maskStream.fillUniform($0) }
            let offset = row * (small + 1)
            for j in 0..<small { ksk[offset + j] = Self.roundTo32(mask[j]) }
            ksk[offset + small] = Self.roundTo32(compressed.keySwitchBodies[row])
        }
        keySwitchKey = ksk
    }

    /// The packing key switch, expanded by the first caller.
    var packingKey: FourierPackingKey {
        expandedPackingKey.withLock { expanded in
            if let expanded { return expanded }
            let key = FourierPackingKey(parameters: parameters, seed: compressed.packingSeed, bodies: compressed.packingBodies)
            expanded = key
            return key
        }
    }

    /// The top 32 bits of a 64-bit torus element, rounded.
    @inlinable
    static func roundTo32(_ x: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: (x &+ (1 << 31)) >> 32)
    }

    /// Bytes held in memory by the expanded key (the packing key once it has been used).
    public var memoryBytes: Int {
        let packing = expandedPackingKey.withLock { $0?.storage.count ?? 0 }
        return bootstrappingKey.memoryBytes + keySwitchKey.count * 4 + packing * 8
    }
}
