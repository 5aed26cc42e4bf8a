import Dispatch
import ObscuraMath

/// Scratch memory for one thread's bootstraps, allocated once so that the CMux loop never
/// allocates.
final class BootstrapWorkspace {
    let accumulator: UnsafeMutablePointer<UInt64>
    let difference: UnsafeMutablePointer<UInt64>
    let externalProduct: ExternalProductWorkspace
    let switched: UnsafeMutablePointer<UInt32>
    let keySwitchDigits: UnsafeMutablePointer<Int64>
    let rotations: UnsafeMutablePointer<Int>

    init(parameters p: TFHEParameters) {
        let n = p.polynomialSize, components = p.glweDimension + 1
        accumulator = .allocate(capacity: components * n)
        difference = .allocate(capacity: components * n)
        externalProduct = ExternalProductWorkspace(parameters: p)
        switched = .allocate(capacity: p.lweDimension + 1)
        keySwitchDigits = .allocate(capacity: p.keySwitchDecomposition.levels)
        rotations = .allocate(capacity: p.lweDimension + 1)
    }

    deinit {
        accumulator.deallocate(); difference.deallocate(); switched.deallocate()
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

    /// An evaluator with fresh scratch memory.
    public init(key: EvaluationKey) {
        self.key = key
        workspace = BootstrapWorkspace(parameters: key.parameters)
        gateTable = LookupTable(polynomialSize: key.parameters.polynomialSize, constant: BooleanEncoding.eighth)
    }

    var parameters: TFHEParameters { key.parameters }

    /// Programmable bootstrapping: returns a fresh encryption, under the big key, of the
    /// table's value at the input's phase index, with noise independent of the input's.
    public func bootstrap(_ input: LweCiphertext, table: LookupTable) -> LweCiphertext {
        rotateAccumulator(input, table: table)
        return sampleExtract()
    }

    /// Multi-value bootstrapping: one blind rotation, then one sample extraction per entry of
    /// `coefficients`. Coefficient j reads the table at the input's phase moved up by j/(2N),
    /// so one bootstrap evaluates the table at several shifts of the same input (for example a
    /// sign against several thresholds). Each output has the noise of a single bootstrap; the
    /// outputs share their blind rotation, so their noises are not independent.
    public func bootstrap(_ input: LweCiphertext, table: LookupTable, coefficients: [Int]) -> [LweCiphertext] {
        rotateAccumulator(input, table: table)
        return coefficients.map(sampleExtract(coefficient:))
    }

    /// Everything of a bootstrap but the extraction: key switch, modulus switch and blind
    /// rotation of `table` into the workspace's accumulator.
    func rotateAccumulator(_ input: LweCiphertext, table: LookupTable) {
        precondition(input.dimension == parameters.bigLweDimension, "input is not under the big key")
        precondition(table.polynomial.count == parameters.polynomialSize, "table size mismatch")
        keySwitch(input)
        modulusSwitch()
        blindRotate(table: table)
        bootstrapCount += 1
    }

    /// Key switching from the big key (64-bit) to the small key, at 32-bit precision:
    /// out = (0, b) - Σ_i Σ_j d_ij(a_i) · KSK[i][j].
    func keySwitch(_ input: LweCiphertext) {
        let p = parameters
        let small = p.lweDimension, width = small + 1
        let levels = p.keySwitchDecomposition.levels
        let decomposition = p.keySwitchDecomposition
        let out = workspace.switched
        let digits = workspace.keySwitchDigits
        out.update(repeating: 0, count: small)
        out[small] = EvaluationKey.roundTo32(input.body)
        let vectorEnd = width & ~7
        input.storage.withUnsafeBufferPointer { a in
            key.keySwitchKey.withUnsafeBufferPointer { ksk in
                let raw = UnsafeMutableRawPointer(out)
                for i in 0..<p.bigLweDimension {
                    decomposition.decompose(a[i], into: digits, stride: 1)
                    for j in 0..<levels {
                        let digit = digits[j]
                        if digit == 0 { continue }
                        let factor = UInt32(truncatingIfNeeded: digit)
                        let row = ksk.baseAddress! + (i * levels + j) * width
                        let rowRaw = UnsafeRawPointer(row)
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

    /// Centred-mean modulus switch from the 2^32 torus to Z_2N: each mask element is rounded,
    /// and the body absorbs half of the rounding errors, their expectation over a uniform
    /// binary key, which halves the variance the switch adds.
    func modulusSwitch() {
        let p = parameters
        let small = p.lweDimension
        let logTwoN = (2 * p.polynomialSize).trailingZeroBitCount
        let shift = UInt32(32 - logTwoN)
        let half = UInt32(1) << (shift - 1)
        let input = workspace.switched, rotations = workspace.rotations
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

    /// Blind rotation: acc = X^-b̃ · TV, then acc = CMux(BSK_i; acc, X^ã_i · acc) for each i.
    func blindRotate(table: LookupTable) {
        let p = parameters
        let n = p.polynomialSize, k = p.glweDimension
        let acc = workspace.accumulator
        acc.update(repeating: 0, count: k * n)
        let bodyShift = (2 * n - workspace.rotations[p.lweDimension]) % (2 * n)
        table.polynomial.withUnsafeBufferPointer { tv in
            Self.rotate(tv.baseAddress!, by: bodyShift, size: n, into: acc + k * n)
        }
        for i in 0..<p.lweDimension {
            let rotation = workspace.rotations[i]
            if rotation == 0 { continue }
            cmux(ggswIndex: i, rotation: rotation)
        }
    }

    /// acc = CMux(BSK_i; acc, X^rotation · acc) = acc + BSK_i ⊡ (X^rotation · acc - acc).
    @inline(__always)
    func cmux(ggswIndex i: Int, rotation: Int) {
        let p = parameters
        let n = p.polynomialSize, k = p.glweDimension
        let ws = workspace
        for t in 0...k {
            Self.rotateMinusIdentity(ws.accumulator + t * n, by: rotation, size: n, into: ws.difference + t * n)
        }
        ws.externalProduct.addExternalProduct(key.bootstrappingKey[i], of: ws.difference, into: ws.accumulator, fft: key.fft)
    }

    /// Sample extraction of one coefficient (0: the table at the input's phase): an LWE
    /// ciphertext of dimension k·N under the big key.
    func sampleExtract(coefficient: Int = 0) -> LweCiphertext {
        let p = parameters
        var storage = [UInt64](repeating: 0, count: p.bigLweDimension + 1)
        storage.withUnsafeMutableBufferPointer {
            GlweCiphertext.sampleExtract(workspace.accumulator, k: p.glweDimension, n: p.polynomialSize,
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
        let workers = Swift.max(1, Swift.min(count, ProcessInfoCores.active))
        let results = UnsafeMutablePointer<T?>.allocate(capacity: count)
        results.initialize(repeating: nil, count: count)
        defer { results.deinitialize(count: count); results.deallocate() }
        let shared = UnsafeMutableSendablePointer(results)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            let evaluator = Evaluator(key: self)
            var index = worker
            while index < count {
                shared.pointer[index] = body(evaluator, index)
                index += workers
            }
        }
        return (0..<count).map { results[$0]! }
    }

    /// Bootstraps every input through its table on all cores.
    public func bootstrapInParallel(_ inputs: [LweCiphertext], tables: [LookupTable]) -> [LweCiphertext] {
        precondition(tables.count == inputs.count || tables.count == 1, "one table, or one per input")
        return parallelMap(count: inputs.count) { evaluator, i in
            evaluator.bootstrap(inputs[i], table: tables.count == 1 ? tables[0] : tables[i])
        }
    }
}
