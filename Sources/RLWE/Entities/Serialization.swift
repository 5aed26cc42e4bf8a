import ObscuraMath

/// Obscura's RLWE binary format, version 1. Every object starts with a 16-byte header: magic
/// (4 bytes: "ORLW" for public objects, "ORSK" for secret keys), format version (UInt16),
/// object kind (UInt16), and the parameter set's 64-bit fingerprint (``RlweContext/fingerprint``),
/// all little-endian. Residues mod q_i are packed at q_i's bit width (54 bits for a 54-bit prime,
/// not 64); masks travel as 16-byte seeds. A reader checks the header, the exact size the kind
/// and parameters imply, and every residue against its prime before it builds anything.
public enum RlweFormat {
    public static let version: UInt16 = 1
    public static let publicMagic: [UInt8] = Array("ORLW".utf8)
    public static let secretMagic: [UInt8] = Array("ORSK".utf8)
    /// Magic, version, kind and fingerprint.
    public static let headerSize = 16

    /// Object kinds.
    public enum Kind: UInt16, Sendable {
        case ciphertext = 1
        case seededCiphertext = 2
        case publicKey = 3
        case keySwitchingKey = 4
        case evaluationKey = 5
        case secretKey = 6
    }

    static func header(_ kind: Kind, _ context: RlweContext) -> ByteWriter {
        var writer = ByteWriter()
        writer.bytes(kind == .secretKey ? secretMagic : publicMagic)
        writer.integer(version, bytes: 2)
        writer.integer(kind.rawValue, bytes: 2)
        writer.integer(context.fingerprint, bytes: 8)
        return writer
    }

    /// Checks the header and returns a reader positioned after it.
    static func reader(_ bytes: [UInt8], kind: Kind, context: RlweContext) throws(RlweError) -> ByteReader {
        var reader = ByteReader(bytes)
        let magic = try reader.bytes(4)
        if magic == secretMagic && kind != .secretKey { throw .secretKeyNotAccepted }
        guard magic == (kind == .secretKey ? secretMagic : publicMagic) else { throw .malformed("not an Obscura RLWE object") }
        let version = try reader.integer(bytes: 2)
        guard version == UInt64(self.version) else { throw .malformed("format version \(version); this build reads \(self.version)") }
        let found = try reader.integer(bytes: 2)
        guard found == UInt64(kind.rawValue) else { throw .malformed("object kind \(found) where \(kind.rawValue) (\(kind)) is expected") }
        guard try reader.integer(bytes: 8) == context.fingerprint else {
            throw .malformed("made for another parameter set than \(context.parameters)")
        }
        return reader
    }

    static func packedBytes(context: RlweContext, limbs: Int, level: Int) -> Int {
        (0..<limbs).reduce(0) { $0 + (context.polynomialSize * context.tables(limb: $1, level: level).modulus.bitWidth + 7) / 8 }
    }
}

/// Little-endian writer with bit packing.
struct ByteWriter {
    private(set) var output: [UInt8] = []

    mutating func bytes(_ b: [UInt8]) { output += b }

    mutating func integer<T: FixedWidthInteger>(_ value: T, bytes count: Int) {
        let v = UInt64(truncatingIfNeeded: value)
        for i in 0..<count { output.append(UInt8(truncatingIfNeeded: v >> UInt64(8 * i))) }
    }

    mutating func seed(_ s: Seed128) {
        integer(s.low, bytes: 8)
        integer(s.high, bytes: 8)
    }

    /// The limbs of `poly`, limb i at `widths(i)` bits (at most 62) per coefficient, each limb
    /// byte-aligned. Each coefficient is ORed into place with one unaligned 64-bit word (and a
    /// ninth byte when it straddles one).
    mutating func packed(_ poly: RnsPolynomial, widths: (Int) -> Int) {
        let n = poly.degree
        for i in 0..<poly.limbCount {
            let bits = widths(i), count = (n * bits + 7) / 8, start = output.count
            // Eight bytes of slack so the last word's store stays inside; removed after.
            output.append(contentsOf: repeatElement(0, count: count + 8))
            output.withUnsafeMutableBytes { raw in
                poly.words.withUnsafeBufferPointer { words in
                    let base = raw.baseAddress! + start
                    for k in 0..<n {
                        let v = words[i * n + k], bit = k * bits, byte = bit >> 3, shift = UInt64(bit & 7)
                        let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: byte, as: UInt64.self)) | v << shift
                        base.storeBytes(of: word.littleEndian, toByteOffset: byte, as: UInt64.self)
                        if shift + UInt64(bits) > 64 {
                            base.storeBytes(of: base.load(fromByteOffset: byte + 8, as: UInt8.self) | UInt8(truncatingIfNeeded: v >> (64 - shift)),
                                            toByteOffset: byte + 8, as: UInt8.self)
                        }
                    }
                }
            }
            output.removeLast(8)
        }
    }
}

/// Little-endian reader of untrusted bytes: every read is bounds-checked.
struct ByteReader {
    private let input: [UInt8]
    private(set) var position = 0

    init(_ input: [UInt8]) { self.input = input }

    var remaining: Int { input.count - position }

    mutating func bytes(_ count: Int) throws(RlweError) -> [UInt8] {
        guard count >= 0, count <= remaining else { throw .malformed("truncated: needs \(count) more bytes, has \(remaining)") }
        defer { position += count }
        return Array(input[position..<(position + count)])
    }

    mutating func integer(bytes count: Int) throws(RlweError) -> UInt64 {
        let b = try bytes(count)
        return b.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << UInt64(8 * $1.offset) }
    }

    mutating func seed() throws(RlweError) -> Seed128 {
        Seed128(low: try integer(bytes: 8), high: try integer(bytes: 8))
    }

    /// `limbs` packed limbs of N coefficients, limb i mod `moduli(i)`; a residue ≥ its prime is
    /// refused. A coefficient is one unaligned 64-bit load (and a ninth byte when it straddles
    /// one) where eight bytes remain in the limb, byte by byte at its end.
    mutating func packed(degree n: Int, limbs: Int, moduli: (Int) -> Modulus) throws(RlweError) -> RnsPolynomial {
        var poly = RnsPolynomial(degree: n, limbs: limbs)
        for i in 0..<limbs {
            let q = moduli(i), bits = q.bitWidth, mask = UInt64.max >> UInt64(64 - bits)
            let count = (n * bits + 7) / 8
            guard count <= remaining else { throw .malformed("truncated: needs \(count) more bytes, has \(remaining)") }
            let start = position
            position += count
            var bad: UInt64?
            input.withUnsafeBytes { raw in
                let base = raw.baseAddress! + start
                poly.words.withUnsafeMutableBufferPointer { words in
                    for k in 0..<n {
                        let bit = k * bits, byte = bit >> 3, shift = UInt64(bit & 7)
                        var value: UInt64
                        if byte + 8 <= count {
                            value = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: byte, as: UInt64.self)) >> shift
                            if shift + UInt64(bits) > 64 { value |= UInt64(base.load(fromByteOffset: byte + 8, as: UInt8.self)) << (64 - shift) }
                        } else {
                            value = 0
                            for j in byte..<count { value |= UInt64(base.load(fromByteOffset: j, as: UInt8.self)) << UInt64(8 * (j - byte)) }
                            value >>= shift
                        }
                        value &= mask
                        if value >= q.value { bad = value }
                        words[i * n + k] = value
                    }
                }
            }
            if let bad { throw .malformed("residue \(bad) ≥ its prime \(q.value)") }
        }
        return poly
    }

    func finish() throws(RlweError) {
        guard remaining == 0 else { throw .malformed("\(remaining) unexpected bytes after the object") }
    }
}

extension Ciphertext {
    /// The ciphertext's bytes: level, size, scale, packed components.
    public func serialized() -> [UInt8] {
        var w = RlweFormat.header(.ciphertext, context)
        w.integer(UInt8(level), bytes: 1)
        w.integer(UInt8(size), bytes: 1)
        w.integer(scale.bitPattern, bytes: 8)
        for c in components { w.packed(c) { context.ciphertextTables[$0].modulus.bitWidth } }
        return w.output
    }

    /// A ciphertext from untrusted bytes, for `context`'s parameter set.
    public init(deserializing bytes: [UInt8], context: RlweContext) throws(RlweError) {
        var r = try RlweFormat.reader(bytes, kind: .ciphertext, context: context)
        let level = Int(try r.integer(bytes: 1)), size = Int(try r.integer(bytes: 1))
        guard (1...context.maximumLevel).contains(level) else { throw .malformed("level \(level)") }
        guard size == 2 || size == 3 else { throw .malformed("\(size) components") }
        let scale = Double(bitPattern: try r.integer(bytes: 8))
        try Self.checkScale(scale, context)
        guard r.remaining == size * RlweFormat.packedBytes(context: context, limbs: level, level: level) else {
            throw .malformed("\(r.remaining) payload bytes for \(size) components at level \(level)")
        }
        var components: [RnsPolynomial] = []
        for _ in 0..<size {
            components.append(try r.packed(degree: context.polynomialSize, limbs: level) { context.ciphertextTables[$0].modulus })
        }
        try r.finish()
        self.init(context: context, components: components, scale: scale)
    }

    static func checkScale(_ scale: Double, _ context: RlweContext) throws(RlweError) {
        if context.isBFV {
            guard scale == 1 else { throw .malformed("a BFV ciphertext has scale 1") }
        } else {
            // Below 1 too: a network's later layers hold large integers at small scales.
            guard scale.isNormal, scale > 0x1p-1000, scale < 0x1p1000 else { throw .malformed("scale \(scale)") }
        }
    }
}

extension SeededCiphertext {
    /// The exact size of a serialized seeded ciphertext of `context` at its top level.
    public static func serializedSize(context: RlweContext) -> Int {
        RlweFormat.headerSize + 1 + 8 + 16 + RlweFormat.packedBytes(context: context, limbs: context.maximumLevel, level: context.maximumLevel)
    }

    /// The upload form: level, scale, seed, packed c_0.
    public func serialized() -> [UInt8] {
        var w = RlweFormat.header(.seededCiphertext, context)
        w.integer(UInt8(level), bytes: 1)
        w.integer(scale.bitPattern, bytes: 8)
        w.seed(seed)
        w.packed(body) { context.ciphertextTables[$0].modulus.bitWidth }
        return w.output
    }

    /// A seeded ciphertext from untrusted bytes, for `context`'s parameter set.
    public init(deserializing bytes: [UInt8], context: RlweContext) throws(RlweError) {
        var r = try RlweFormat.reader(bytes, kind: .seededCiphertext, context: context)
        let level = Int(try r.integer(bytes: 1))
        guard (1...context.maximumLevel).contains(level) else { throw .malformed("level \(level)") }
        let scale = Double(bitPattern: try r.integer(bytes: 8))
        try Ciphertext.checkScale(scale, context)
        let seed = try r.seed()
        guard r.remaining == RlweFormat.packedBytes(context: context, limbs: level, level: level) else {
            throw .malformed("\(r.remaining) payload bytes for a seeded ciphertext at level \(level)")
        }
        let body = try r.packed(degree: context.polynomialSize, limbs: level) { context.ciphertextTables[$0].modulus }
        try r.finish()
        self.init(context: context, seed: seed, body: body, scale: scale)
    }
}

extension PublicKey {
    /// The seeded public key: seed and packed b.
    public func serialized() -> [UInt8] {
        var w = RlweFormat.header(.publicKey, context)
        w.seed(seed)
        w.packed(body) { context.ciphertextTables[$0].modulus.bitWidth }
        return w.output
    }

    /// A public key from untrusted bytes.
    public init(deserializing bytes: [UInt8], context: RlweContext) throws(RlweError) {
        var r = try RlweFormat.reader(bytes, kind: .publicKey, context: context)
        let seed = try r.seed()
        let level = context.maximumLevel
        guard r.remaining == RlweFormat.packedBytes(context: context, limbs: level, level: level) else {
            throw .malformed("\(r.remaining) payload bytes for a public key")
        }
        let body = try r.packed(degree: context.polynomialSize, limbs: level) { context.ciphertextTables[$0].modulus }
        try r.finish()
        self.init(context: context, seed: seed, body: body)
    }
}

extension KeySwitchingKey {
    static func payloadBytes(_ context: RlweContext) -> Int {
        let width = context.maximumLevel + context.specialCount
        return 16 + context.digitCount * RlweFormat.packedBytes(context: context, limbs: width, level: context.maximumLevel)
    }

    func write(to w: inout ByteWriter) {
        let levels = context.maximumLevel, width = levels + context.specialCount, n = context.polynomialSize
        w.seed(seed)
        for i in 0..<context.digitCount {
            let body = RnsPolynomial(degree: n, words: Array(bodyWords[(i * width * n)..<((i + 1) * width * n)]))
            w.packed(body) { context.tables(limb: $0, level: levels).modulus.bitWidth }
        }
    }

    static func read(from r: inout ByteReader, context: RlweContext) throws(RlweError) -> KeySwitchingKey {
        let levels = context.maximumLevel
        let seed = try r.seed()
        var bodies: [RnsPolynomial] = []
        for _ in 0..<context.digitCount {
            bodies.append(try r.packed(degree: context.polynomialSize, limbs: levels + context.specialCount) {
                context.tables(limb: $0, level: levels).modulus
            })
        }
        return KeySwitchingKey(context: context, seed: seed, bodies: bodies)
    }

    /// The seeded key's bytes (what a client uploads).
    public func serialized() -> [UInt8] {
        var w = RlweFormat.header(.keySwitchingKey, context)
        write(to: &w)
        return w.output
    }

    /// A key-switching key from untrusted bytes (its masks re-expanded from the seed).
    public init(deserializing bytes: [UInt8], context: RlweContext) throws(RlweError) {
        var r = try RlweFormat.reader(bytes, kind: .keySwitchingKey, context: context)
        guard r.remaining == Self.payloadBytes(context) else { throw .malformed("\(r.remaining) payload bytes for a key-switching key") }
        self = try Self.read(from: &r, context: context)
        try r.finish()
    }
}

extension EvaluationKey {
    /// The exact size of a serialized key of `context` with `keys` key-switching keys (the
    /// relinearization key counts as one) of which `galoisKeys` are Galois keys: what a server
    /// may buffer before it reads one.
    public static func serializedSize(context: RlweContext, keys: Int, galoisKeys: Int) -> Int {
        RlweFormat.headerSize + 5 + keys * KeySwitchingKey.payloadBytes(context) + 4 * galoisKeys
    }

    /// The seeded keys: a relinearization flag, the Galois element count, then each key.
    public func serialized() -> [UInt8] {
        var w = RlweFormat.header(.evaluationKey, context)
        w.integer(UInt8(relinearization == nil ? 0 : 1), bytes: 1)
        w.integer(UInt32(galois.count), bytes: 4)
        relinearization?.write(to: &w)
        for g in galois.keys.sorted() {
            w.integer(UInt32(g), bytes: 4)
            galois[g]!.write(to: &w)
        }
        return w.output
    }

    /// An evaluation key from untrusted bytes (the server's reader: a secret key is refused).
    public init(deserializing bytes: [UInt8], context: RlweContext) throws(RlweError) {
        var r = try RlweFormat.reader(bytes, kind: .evaluationKey, context: context)
        let hasRelinearization = try r.integer(bytes: 1)
        guard hasRelinearization <= 1 else { throw .malformed("relinearization flag \(hasRelinearization)") }
        let count = Int(try r.integer(bytes: 4))
        guard count <= context.polynomialSize else { throw .malformed("\(count) Galois keys") }
        let keyBytes = KeySwitchingKey.payloadBytes(context)
        guard r.remaining == (Int(hasRelinearization) + count) * keyBytes + 4 * count else {
            throw .malformed("\(r.remaining) payload bytes for \(Int(hasRelinearization) + count) keys")
        }
        let relinearization = hasRelinearization == 1 ? try KeySwitchingKey.read(from: &r, context: context) : nil
        var galois: [Int: KeySwitchingKey] = [:]
        for _ in 0..<count {
            let g = Int(try r.integer(bytes: 4))
            guard g & 1 == 1, g > 1, g < 2 * context.polynomialSize, galois[g] == nil else {
                throw .malformed("Galois element \(g)")
            }
            galois[g] = try KeySwitchingKey.read(from: &r, context: context)
        }
        try r.finish()
        try self.init(context: context, relinearization: relinearization, galois: galois)
    }
}

extension SecretKey {
    /// The secret's bytes, 2 bits a coefficient, under the secret-key magic. Stays on the client.
    public func serialized() -> [UInt8] {
        var w = RlweFormat.header(.secretKey, context)
        var byte: UInt8 = 0
        for (k, c) in coefficients.enumerated() {
            byte |= UInt8(c + 1) << UInt8(2 * (k % 4))
            if k % 4 == 3 { w.integer(byte, bytes: 1); byte = 0 }
        }
        return w.output
    }

    /// The client's own secret key from its file (never a server's reader).
    public init(deserializing bytes: [UInt8], context: RlweContext) throws(RlweError) {
        var r = try RlweFormat.reader(bytes, kind: .secretKey, context: context)
        let n = context.polynomialSize
        guard r.remaining == n / 4 else { throw .malformed("\(r.remaining) bytes for a secret key of \(n) coefficients") }
        var coefficients: [Int8] = []
        coefficients.reserveCapacity(n)
        for byte in try r.bytes(n / 4) {
            for j in 0..<4 {
                let v = (byte >> UInt8(2 * j)) & 3
                guard v < 3 else { throw .malformed("a secret coefficient outside {−1, 0, 1}") }
                coefficients.append(Int8(v) - 1)
            }
        }
        self.init(context: context, coefficients: coefficients)
    }
}
