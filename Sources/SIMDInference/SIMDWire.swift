import RLWE

/// The three objects a SIMD client and server exchange, each one byte string: the evaluation
/// keys (one per plaintext prime), a batch of encrypted inputs and its encrypted results. A
/// 20-byte header — magic "OSIM", version (UInt16), kind (UInt16), the plan's fingerprint
/// (UInt64, ``SIMDPlan/fingerprint``), the prime count (UInt32) — then, per prime, an object
/// count (UInt32) and each object as its length (UInt32) and its RLWE bytes, all little-endian.
/// The RLWE readers check each object's own header (a secret key's magic is refused there).
public enum SIMDWire {
    public static let magic: [UInt8] = Array("OSIM".utf8)
    public static let version: UInt16 = 1
    static let headerSize = 20

    public enum Kind: UInt16, Sendable, CustomStringConvertible {
        case evaluationKeys = 1, inputs = 2, outputs = 3

        public var description: String {
            switch self {
            case .evaluationKeys: "SIMD evaluation keys"
            case .inputs: "SIMD encrypted inputs"
            case .outputs: "SIMD encrypted results"
            }
        }
    }

    /// The kind of `bytes`, if they start with a SIMD header (nothing else is checked).
    public static func kind(of bytes: [UInt8]) -> Kind? {
        guard bytes.count >= headerSize, bytes.starts(with: magic) else { return nil }
        return Kind(rawValue: UInt16(bytes[6]) | UInt16(bytes[7]) << 8)
    }

    /// Whether any object framed in `bytes` starts with the RLWE secret-key magic (a client's
    /// last check before an upload; the framing is read without a plan, and bytes that are not
    /// well-framed answer false).
    public static func containsSecretKey(_ bytes: [UInt8]) -> Bool {
        (try? frames(bytes))?.groups.joined().contains { $0.starts(with: RlweFormat.secretMagic) } ?? false
    }

    /// Whether `bytes` are well framed: the header, then counts and lengths that account for
    /// every byte (a client's check that an upload is whole; the objects are read for a plan).
    public static func isWellFramed(_ bytes: [UInt8]) -> Bool {
        (try? frames(bytes)) != nil
    }

    /// The header's fields and the objects of one prime after another, as framed in untrusted
    /// `bytes`: every count and length is checked against the bytes left, and nothing may follow.
    private static func frames(_ bytes: [UInt8]) throws(RlweError)
        -> (version: UInt64, kind: UInt64, fingerprint: UInt64, groups: [[ArraySlice<UInt8>]]) {
        var position = 0
        func take(_ count: Int) throws(RlweError) -> ArraySlice<UInt8> {
            guard count >= 0, bytes.count - position >= count else { throw .malformed("truncated SIMD object") }
            defer { position += count }
            return bytes[position..<(position + count)]
        }
        func integer(_ count: Int) throws(RlweError) -> UInt64 {
            try take(count).reversed().reduce(0) { $0 << 8 | UInt64($1) }
        }
        guard try take(4).elementsEqual(magic) else { throw .malformed("no SIMD header") }
        let (version, kind, fingerprint) = (try integer(2), try integer(2), try integer(8))
        var groups: [[ArraySlice<UInt8>]] = []
        for _ in 0..<Int(try integer(4)) {
            let count = Int(try integer(4))
            // Each object takes at least its 4-byte length: a count beyond that is a lie.
            guard count <= (bytes.count - position) / 4 else { throw .malformed("truncated SIMD object") }
            var group: [ArraySlice<UInt8>] = []
            group.reserveCapacity(count)
            for _ in 0..<count { group.append(try take(Int(try integer(4)))) }
            groups.append(group)
        }
        guard position == bytes.count else { throw .malformed("\(bytes.count - position) unexpected bytes after a SIMD object") }
        return (version, kind, fingerprint, groups)
    }

    /// `objects[prime]` framed for `plan`.
    static func encode(_ kind: Kind, plan: SIMDPlan, _ objects: [[[UInt8]]]) -> [UInt8] {
        var out = magic
        func put<T: FixedWidthInteger>(_ value: T, _ count: Int) {
            for i in 0..<count { out.append(UInt8(truncatingIfNeeded: UInt64(truncatingIfNeeded: value) >> UInt64(8 * i))) }
        }
        put(version, 2)
        put(kind.rawValue, 2)
        put(plan.fingerprint, 8)
        put(UInt32(objects.count), 4)
        out.reserveCapacity(objects.joined().reduce(out.count) { $0 + 4 + $1.count } + 4 * objects.count)
        for prime in objects {
            put(UInt32(prime.count), 4)
            for object in prime {
                put(UInt32(object.count), 4)
                out += object
            }
        }
        return out
    }

    /// The objects of untrusted `bytes`: the header must be `kind` for `plan`, with one group
    /// per plaintext prime of `objectsPerPrime` objects (any number up to `maximumObjects` when nil).
    static func decode(_ bytes: [UInt8], kind: Kind, plan: SIMDPlan, objectsPerPrime: Int?,
                       maximumObjects: Int = 1 << 16) throws(RlweError) -> [[[UInt8]]] {
        let framed: (version: UInt64, kind: UInt64, fingerprint: UInt64, groups: [[ArraySlice<UInt8>]])
        do { framed = try frames(bytes) } catch { throw .malformed("not \(kind): \(error)") }
        guard framed.version == UInt64(version) else { throw .malformed("a SIMD format version this build does not read") }
        guard framed.kind == UInt64(kind.rawValue) else {
            throw .malformed("\(Kind(rawValue: UInt16(truncatingIfNeeded: framed.kind))?.description ?? "object kind \(framed.kind)") where \(kind) are expected")
        }
        guard framed.fingerprint == plan.fingerprint else { throw .malformed("\(kind) made for another model plan or parameter set") }
        guard framed.groups.count == plan.parameters.count else {
            throw .malformed("\(framed.groups.count) plaintext primes; the plan has \(plan.parameters.count)")
        }
        for (prime, group) in framed.groups.enumerated() where !(objectsPerPrime.map { group.count == $0 } ?? (group.count <= maximumObjects)) {
            throw .malformed("prime \(prime): \(group.count) objects, expected \(objectsPerPrime.map(String.init) ?? "at most \(maximumObjects)")")
        }
        return framed.groups.map { $0.map { Array($0) } }
    }
}

extension SIMDPlan {
    /// The exact size of ``SIMDClient/evaluationKeyBytes()``: a relinearization key and one
    /// Galois key per rotation, for every plaintext prime.
    public var evaluationKeyBytes: Int {
        let rotations = Set(rotationSteps.map { contexts[0].galoisElement(rotatingBy: $0) }).subtracting([1]).count
        return SIMDWire.headerSize + contexts.reduce(0) { total, context in
            total + 8 + EvaluationKey.serializedSize(context: context, keys: 1 + rotations, galoisKeys: rotations)
        }
    }

    /// The exact size of ``SIMDClient/encryptForUpload(_:)``'s bytes (any number of images).
    public var uploadBytes: Int {
        SIMDWire.headerSize + contexts.reduce(0) { total, context in
            total + 4 + inputCiphertexts * (4 + SeededCiphertext.serializedSize(context: context))
        }
    }

    /// What client and server must agree on, in 64 bits: every prime's parameter fingerprint,
    /// the mode, the scheme and the layout's input and output counts (FNV-1a over them).
    public var fingerprint: UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ value: UInt64) {
            for i in 0..<8 { hash = (hash ^ (value >> UInt64(8 * i) & 0xff)) &* 0x100_0000_01b3 }
        }
        for parameters in self.parameters { mix(RlweContext.fingerprint(of: parameters)) }
        mix(mode == .throughput ? 1 : 2)
        mix(scheme == .bfv ? 1 : 2)
        mix(UInt64(inputCiphertexts))
        mix(UInt64(scoreCount))
        for step in rotationSteps { mix(UInt64(bitPattern: Int64(step))) }
        return hash
    }

    /// The name of the plan's parameters for listings and key registration, readable and ending
    /// in the fingerprint's first 32 bits, so that equal names mean interchangeable keys:
    /// "bfv-n8192-q216-t5-latency-1a2b3c4d".
    public var parameterSetName: String {
        let p = parameters[0]
        let primes = scheme == .bfv ? "-t\(parameters.count)" : ""
        let tag = String(fingerprint >> 32, radix: 16)
        return "\(scheme.rawValue)-n\(p.polynomialSize)-q\(Int(p.logModulus.rounded()))\(primes)-\(mode.rawValue)"
            + (securityBits == 0 ? "-insecure" : "") + "-" + String(repeating: "0", count: 8 - tag.count) + tag
    }
}
