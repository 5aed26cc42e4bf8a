import Dispatch
import ObscuraMath

/// Scratch memory for one thread's bootstraps, allocated once so that the CMux loop never
/// allocates. It holds ``Evaluator/batchSize`` accumulators: a batch of bootstraps walks the
/// keys once, each key row serving every member while it is in cache.
final class BootstrapWorkspace {
    let accumulators: UnsafeMutablePointer<UInt64>
    let difference: UnsafeMutablePointer<UInt64>
    let externalProduct: ExternalProductWorkspace
    let inputs: UnsafeMutablePointer<UInt64>
    let switched: UnsafeMutablePointer<UInt32>
    let keySwitchDigits: UnsafeMutablePointer<Int64>
    let rotations: UnsafeMutablePointer<Int>
    /// Multi-bit blind rotation's scratch (nil for the classic method).
    let multiBit: MultiBitWorkspace?

    init(parameters p: TFHEParameters, batchSize: Int) {
        let n = p.polynomialSize, components = p.glweDimension + 1
        accumulators = .allocate(capacity: batchSize * components * n)
        difference = .allocate(capacity: components * n)
        externalProduct = ExternalProductWorkspace(parameters: p)
        inputs = .allocate(capacity: batchSize * (p.bigLweDimension + 1))
        switched = .allocate(capacity: batchSize * (p.lweDimension + 1))
        keySwitchDigits = .allocate(capacity: batchSize * p.keySwitchDecomposition.levels)
        rotations = .allocate(capacity: batchSize * (p.lweDimension + 1))
        multiBit = p.groupingFactor == 1 ? nil : MultiBitWorkspace(parameters: p, batchSize: batchSize)
    }

    deinit {
        accumulators.deallocate(); difference.deallocate(); inputs.deallocate(); switched.deallocate()
        keySwitchDigits.deallocate(); rotations.deallocate()
    }
}

/// Server-side evaluation with an ``EvaluationKey``: key switching, modulus switching, blind
/// rotation and sample extraction, composed into programmable bootstrapping (KS-PBS order).
///
/// An evaluator owns scratch memory, so it is not `Sendable`: make one per thread (see
/// ``EvaluationKey/parallelMap(count:_:)``). It counts the bootstraps it runs.
public final class Evaluator {
    /// The key.
    public let key: EvaluationKey
    /// Bootstraps run so far.
    public private(set) var bootstrapCount = 0
    let workspace: BootstrapWorkspace
    /// The constant +1/8 table that every boolean gate bootstraps with.
    let gateTable: LookupTable

    /// How many bootstraps ``bootstrap(_:table:coefficients:)`` runs together. The keys are far
    /// larger than the caches (int4-128: a 60 MB Fourier bootstrapping key and a 30 MB
    /// key-switching key; int4-128-mb4: 264 MB of keys in memory), so a batch reads each key row
    /// from memory once for all of its members. 16 members keep a batch's scratch (about 1.5 MB
    /// on mb4) inside a 2 MiB L2; measured on `fast-mnist` with mb4, 8 images per run, two
    /// interleaved runs each: 5.38 / 5.20 s median at 8 members, 4.05 / 4.71 s at 16,
    /// 3.73 / 5.05 s at 32.
    public static let batchSize = 16

    /// An evaluator with fresh scratch memory.
    public init(key: EvaluationKey) {
        self.key = key
        workspace = BootstrapWorkspace(parameters: key.parameters, batchSize: Self.batchSize)
        gateTable = LookupTable(polynomialSize: key.parameters.polynomialSize, constant: BooleanEncoding.eighth)
    }

    var parameters: TFHEParameters { key.parameters }

    /// Programmable bootstrapping: returns a fresh encryption, under the big key, of the
    /// table's value at the input's phase index, with noise independent of the input's.
    public func bootstrap(_ input: LweCiphertext, table: LookupTable) -> LweCiphertext {
        rotateAccumulators(CollectionOfOne(input), table: table)
        return sampleExtract()
    }

    /// Multi-value bootstrapping: one blind rotation, then one sample extraction per entry of
    /// `coefficients`. Coefficient j reads the table at the input's phase moved up by j/(2N),
    /// so one bootstrap evaluates the table at several shifts of the same input (for example a
    /// sign against several thresholds). Each output has the noise of a single bootstrap; the
    /// outputs share their blind rotation, so their noises are not independent.
    public func bootstrap(_ input: LweCiphertext, table: LookupTable, coefficients: [Int]) -> [LweCiphertext] {
        rotateAccumulators(CollectionOfOne(input), table: table)
        return coefficients.map { sampleExtract(coefficient: $0) }
    }

    /// Multi-value bootstrapping of many inputs through one table, ``batchSize`` at a time:
    /// input i is read at `coefficients[i]`. The same results as bootstrapping one by one,
    /// faster, because each batch streams the keys from memory once.
    public func bootstrap(_ inputs: [LweCiphertext], table: LookupTable, coefficients: [[Int]]) -> [[LweCiphertext]] {
        precondition(coefficients.count == inputs.count, "one list of coefficients per input")
        var outputs: [[LweCiphertext]] = []
        outputs.reserveCapacity(inputs.count)
        for start in stride(from: 0, to: inputs.count, by: Self.batchSize) {
            let batch = start..<min(start + Self.batchSize, inputs.count)
            rotateAccumulators(inputs[batch], table: table)
            for (member, i) in batch.enumerated() {
                outputs.append(coefficients[i].map { sampleExtract(member: member, coefficient: $0) })
            }
        }
        return outputs
    }

    /// Everything of a bootstrap but the extraction, for each of `inputs` (at most
    /// ``batchSize``, all under the same key): key switch (inputs under the big key) or
    /// rounding to 32 bits (inputs under the small key), modulus switch and blind rotation of
    /// `table` into the member's accumulator.
    func rotateAccumulators<Inputs: Collection<LweCiphertext>>(_ inputs: Inputs, table: LookupTable) {
        let p = parameters
        precondition(table.polynomial.count == p.polynomialSize, "table size mismatch")
        if inputs.allSatisfy({ $0.dimension == p.bigLweDimension }) {
            keySwitch(inputs)
        } else {
            loadUnderSmallKey(inputs)
        }
        modulusSwitch(count: inputs.count)
        blindRotate(table: table, count: inputs.count)
        bootstrapCount += inputs.count
    }

    /// Key switching from the big key (64-bit) to the small key, at 32-bit precision, of each
    /// member: out = (0, b) - Σ_i Σ_j d_ij(a_i) · KSK[i][j]. Each key row is applied to every
    /// member before the next is read.
    func keySwitch<Inputs: Collection<LweCiphertext>>(_ inputs: Inputs) {
        let p = parameters
        let big = p.bigLweDimension, small = p.lweDimension, width = small + 1
        let levels = p.keySwitchDecomposition.levels
        let decomposition = p.keySwitchDecomposition
        let ws = workspace, members = inputs.count
        for (member, input) in inputs.enumerated() {
            input.storage.withUnsafeBufferPointer { ws.inputs.advanced(by: member * (big + 1)).update(from: $0.baseAddress!, count: big + 1) }
            let out = ws.switched + member * width
            out.update(repeating: 0, count: small)
            out[small] = EvaluationKey.roundTo32(input.body)
        }
        let vectorEnd = width & ~7
        key.keySwitchKey.withUnsafeBufferPointer { ksk in
            for i in 0..<big {
                for member in 0..<members {
                    decomposition.decompose(ws.inputs[member * (big + 1) + i], into: ws.keySwitchDigits + member * levels, stride: 1)
                }
                for j in 0..<levels {
                    let row = ksk.baseAddress! + (i * levels + j) * width
                    let rowRaw = UnsafeRawPointer(row)
                    for member in 0..<members {
                        let digit = ws.keySwitchDigits[member * levels + j]
                        if digit == 0 { continue }
                        let out = ws.switched + member * width
                        let raw = UnsafeMutableRawPointer(out)
                        let factor = UInt32(truncatingIfNeeded: digit)
                        let splat = SIMD8<UInt32>(repeating: factor)
                        var t = 0
                        while t < vectorEnd {
                            let current = raw.loadUnaligned(fromByteOffset: t * 4, as: SIMD8<UInt32>.self)
                            let term = rowRaw.loadUnaligned(fromByteOffset: t * 4, as: SIMD8<UInt32>.self)
                            raw.storeBytes(of: current &- term &* splat, toByteOffset: t * 4, as: SIMD8<UInt32>.self)
                            t &+= 8
                        }
                        while t < width {
                            out[t] &-= row[t] &* factor
                            t &+= 1
                        }
                    }
                }
            }
        }
    }

    /// Places inputs already under the small key where key switching leaves its outputs,
    /// rounded to the same 32-bit precision.
    func loadUnderSmallKey<Inputs: Collection<LweCiphertext>>(_ inputs: Inputs) {
        let p = parameters
        precondition(inputs.allSatisfy { $0.dimension == p.lweDimension }, "inputs are not all under the big key or all under the small key")
        for (member, input) in inputs.enumerated() {
            let out = workspace.switched + member * (p.lweDimension + 1)
            for i in 0...p.lweDimension { out[i] = EvaluationKey.roundTo32(input.storage[i]) }
        }
    }

    /// Centred-mean modulus switch of the first `count` key-switched members from the 2^32
    /// torus to Z_2N: each mask element is rounded, and the body absorbs half of the rounding
    /// errors, their expectation over a uniform binary key, which halves the variance the
    /// switch adds.
    func modulusSwitch(count: Int) {
        let p = parameters
        let small = p.lweDimension
        let logTwoN = (2 * p.polynomialSize).trailingZeroBitCount
        let shift = UInt32(32 - logTwoN)
        let half = UInt32(1) << (shift - 1)
        for member in 0..<count {
            let input = workspace.switched + member * (small + 1), rotations = workspace.rotations + member * (small + 1)
            var correction: UInt32 = 0
            for i in 0..<small {
                let a = input[i]
                let rounded = (a &+ half) >> shift
                rotations[i] = Int(rounded)
                let error = Int32(bitPattern: (rounded << shift) &- a)
                correction &+= UInt32(bitPattern: error >> 1)
            }
            let body = input[small] &+ correction
            rotations[small] = Int((body &+ half) >> shift)
        }
    }

    /// Blind rotation of the first `count` members: acc = X^-b̃ · TV, then, every member in
    /// turn on one step of the key, acc = CMux(BSK_i; acc, X^ã_i · acc) for each i (classic)
    /// or acc += (Σ_β (X^(e_β) − 1)·G_β) ⊡ acc for each group of g bits (multi-bit,
    /// ``FourierMultiBitGroup``).
    func blindRotate(table: LookupTable, count: Int) {
        let p = parameters
        let n = p.polynomialSize, k = p.glweDimension, width = p.lweDimension + 1
        for member in 0..<count {
            let acc = workspace.accumulators + member * (k + 1) * n
            acc.update(repeating: 0, count: k * n)
            let bodyShift = (2 * n - workspace.rotations[member * width + p.lweDimension]) % (2 * n)
            table.polynomial.withUnsafeBufferPointer { tv in
                Self.rotate(tv.baseAddress!, by: bodyShift, size: n, into: acc + k * n)
            }
        }
        switch key.bootstrappingKey {
        case .classic(let ggsws):
            for (i, ggsw) in ggsws.enumerated() {
                for member in 0..<count {
                    let rotation = workspace.rotations[member * width + i]
                    if rotation == 0 { continue }
                    cmux(ggsw, rotation: rotation, accumulator: workspace.accumulators + member * (k + 1) * n)
                }
            }
        case .multiBit(let groups):
            multiBitBlindRotate(groups, count: count)
        }
    }

    /// acc = CMux(BSK_i; acc, X^rotation · acc) = acc + BSK_i ⊡ (X^rotation · acc - acc).
    @inline(__always)
    func cmux(_ ggsw: FourierGgswCiphertext, rotation: Int, accumulator: UnsafeMutablePointer<UInt64>) {
        let p = parameters
        let n = p.polynomialSize, k = p.glweDimension
        let ws = workspace
        for t in 0...k {
            Self.rotateMinusIdentity(accumulator + t * n, by: rotation, size: n, into: ws.difference + t * n)
        }
        ws.externalProduct.addExternalProduct(ggsw, of: ws.difference, into: accumulator, fft: key.fft)
    }

    /// Sample extraction of one coefficient (0: the table at the input's phase) of a member's
    /// accumulator: an LWE ciphertext of dimension k·N under the big key.
    func sampleExtract(member: Int = 0, coefficient: Int = 0) -> LweCiphertext {
        let p = parameters
        var storage = [UInt64](repeating: 0, count: p.bigLweDimension + 1)
        storage.withUnsafeMutableBufferPointer {
            GlweCiphertext.sampleExtract(workspace.accumulators + member * (p.glweDimension + 1) * p.polynomialSize,
                                         k: p.glweDimension, n: p.polynomialSize,
                                         coefficient: coefficient, into: $0.baseAddress!)
        }
        return LweCiphertext(storage: storage)
    }

    /// out = X^r · poly in Z[X]/(X^N + 1), for r ∈ [0, 2N).
    @inline(__always)
    static func rotate(_ poly: UnsafePointer<UInt64>, by r: Int, size n: Int, into out: UnsafeMutablePointer<UInt64>) {
        let negate: UInt64 = r >= n ? ~0 : 0
        let s = r & (n - 1)
        for j in 0..<s { out[j] = ((0 &- poly[j - s + n]) ^ negate) &+ (negate & 1) }
        for j in s..<n { out[j] = (poly[j - s] ^ negate) &+ (negate & 1) }
    }

    /// out = X^r · poly - poly, for r ∈ [0, 2N): two runs of a rotated copy minus the
    /// original, the wrapped run negated once and everything negated again when r ≥ N.
    @inline(__always)
    static func rotateMinusIdentity(_ poly: UnsafePointer<UInt64>, by r: Int, size n: Int,
                                    into out: UnsafeMutablePointer<UInt64>) {
        let s = r & (n - 1)
        let negateAll = r >= n
        differenceRun(poly + (n - s), poly, negate: !negateAll, count: s, into: out)
        differenceRun(poly, poly + s, negate: negateAll, count: n - s, into: out + s)
    }

    /// out[t] = ±a[t] - b[t], four words at a time.
    @inline(__always)
    static func differenceRun(_ a: UnsafePointer<UInt64>, _ b: UnsafePointer<UInt64>, negate: Bool, count: Int,
                              into out: UnsafeMutablePointer<UInt64>) {
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b), ro = UnsafeMutableRawPointer(out)
        let vectorEnd = count & ~3
        var t = 0
        if negate {
            while t < vectorEnd {
                let x = ra.loadUnaligned(fromByteOffset: t * 8, as: SIMD4<UInt64>.self)
                let y = rb.loadUnaligned(fromByteOffset: t * 8, as: SIMD4<UInt64>.self)
                ro.storeBytes(of: SIMD4<UInt64>() &- x &- y, toByteOffset: t * 8, as: SIMD4<UInt64>.self)
                t &+= 4
            }
            while t < count { out[t] = 0 &- a[t] &- b[t]; t &+= 1 }
        } else {
            while t < vectorEnd {
                let x = ra.loadUnaligned(fromByteOffset: t * 8, as: SIMD4<UInt64>.self)
                let y = rb.loadUnaligned(fromByteOffset: t * 8, as: SIMD4<UInt64>.self)
                ro.storeBytes(of: x &- y, toByteOffset: t * 8, as: SIMD4<UInt64>.self)
                t &+= 4
            }
            while t < count { out[t] = a[t] &- b[t]; t &+= 1 }
        }
    }
}

extension EvaluationKey {
    /// Runs `body(evaluator, index)` for every index in 0..<count on all cores, one evaluator
    /// per worker, and returns the results in index order.
    public func parallelMap<T: Sendable>(count: Int, _ body: @Sendable (Evaluator, Int) -> T) -> [T] {
        parallelBatches(count: count, batchSize: 1) { evaluator, range in [body(evaluator, range.lowerBound)] }
    }

    /// Runs `body(evaluator, range)` on consecutive ranges of `batchSize` indices (the last
    /// may be shorter) that cover 0..<count, on all cores, one evaluator per worker; `body`
    /// returns one result per index of its range. Returns the results in index order.
    public func parallelBatches<T: Sendable>(count: Int, batchSize: Int,
                                             _ body: @Sendable (Evaluator, Range<Int>) -> [T]) -> [T] {
        precondition(batchSize >= 1, "batches hold at least one index")
        let batches = (count + batchSize - 1) / batchSize
        let workers = Swift.max(1, Swift.min(batches, ProcessInfoCores.active))
        let results = UnsafeMutablePointer<T?>.allocate(capacity: count)
        results.initialize(repeating: nil, count: count)
        defer { results.deinitialize(count: count); results.deallocate() }
        let shared = UnsafeMutableSendablePointer(results)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let evaluator = Evaluator(key: self)
            var batch = worker
            while batch < batches {
                let range = (batch * batchSize)..<Swift.min(count, (batch + 1) * batchSize)
                let outputs = body(evaluator, range)
                precondition(outputs.count == range.count, "one result per index")
                for (index, output) in zip(range, outputs) { shared.pointer[index] = output }
                batch += workers
            }
        }
        return (0..<count).map { results[$0]! }
    }

    /// Multi-value bootstraps of `count` inputs through one table on all cores, a batch of
    /// ``Evaluator/batchSize`` per worker at a time: `input(i)` gives input i and the
    /// coefficients to read it at. Returns the readings of each input, in index order.
    public func bootstrapInParallel(count: Int, table: LookupTable,
                                    _ input: @Sendable (Int) -> (LweCiphertext, coefficients: [Int])) -> [[LweCiphertext]] {
        parallelBatches(count: count, batchSize: Evaluator.batchSize) { evaluator, range in
            let members = range.map(input)
            return evaluator.bootstrap(members.map(\.0), table: table, coefficients: members.map(\.coefficients))
        }
    }
}
