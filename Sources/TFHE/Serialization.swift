import ObscuraMath

/// Why bytes could not be read as an Obscura object. Every malformed input ends in one of
/// these; none crashes, and no length read from the input is trusted before it is checked
/// against the bytes actually present and the caller's size limit.
public enum SerializationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer bytes than the header or the payload needs.
    case truncated(needed: Int, available: Int)
    /// Not an Obscura object.
    case badMagic
    /// A secret key was offered where only public objects are accepted.
    case secretKeyNotAccepted
    /// A format version this build does not read.
    case unsupportedVersion(UInt16)
    /// Another kind of object than the one asked for.
    case wrongKind(expected: UInt16, found: UInt16)
    /// A parameter-set identifier this build does not know.
    case unknownParameterSet(UInt16)
    /// A known parameter set, but not the one the caller requires.
    case parameterMismatch(expected: UInt16, found: UInt16)
    /// Larger than the caller's limit.
    case tooLarge(size: Int, limit: Int)
    /// Bytes left over after the object.
    case trailingBytes(Int)
    /// A field with an impossible value.
    case invalidValue(String)

    public var description: String {
        switch self {
        case .truncated(let needed, let available): "truncated: needs \(needed) bytes, has \(available)"
        case .badMagic: "not an Obscura object (bad magic bytes)"
        case .secretKeyNotAccepted: "a secret key is not accepted here"
        case .unsupportedVersion(let v): "unsupported format version \(v)"
        case .wrongKind(let expected, let found): "wrong object kind \(found), expected \(expected)"
        case .unknownParameterSet(let id): "unknown parameter set \(id)"
        case .parameterMismatch(let expected, let found): "parameter set \(found) where \(expected) is required"
        case .tooLarge(let size, let limit): "object of \(size) bytes exceeds the limit of \(limit)"
        case .trailingBytes(let count): "\(count) unexpected bytes after the object"
        case .invalidValue(let what): "invalid value: \(what)"
        }
    }
}

/// Obscura's binary format, version 1. Every object starts with a 12-byte header:
/// magic (4 bytes: "OBSC" for public objects, "OBSK" for secret keys), format version
/// (UInt16), object kind (UInt16), parameter-set id (UInt16), reserved (UInt16, zero). The
/// payload follows in little-endian 64-bit words (a packed list: a bit stream of shorter words);
/// its size is fixed by the kind and the parameter set, except for lists, which carry a UInt32
/// count checked against the bytes present.
public enum ObscuraFormat {
    /// The format version this build writes and reads.
    public static let version: UInt16 = 1
    /// Magic of public objects.
    public static let publicMagic: [UInt8] = Array("OBSC".utf8)
    /// Magic of secret keys: their own file type, never accepted by a public reader.
    public static let secretMagic: [UInt8] = Array("OBSK".utf8)
    /// The default size limit of a deserialization: 512 MiB.
    public static let defaultLimit = 512 << 20

    /// Object kinds.
    public enum Kind: UInt16, Sendable {
        case lweCiphertext = 1, seededLweCiphertext = 2, secretKey = 4
        case lweCiphertextList = 5, seededLweCiphertextList = 6, roundedLweCiphertextList = 7, packedLweList = 8
        /// Seeded ciphertexts under the small key: inputs whose first bootstrap needs no key switch.
        case smallKeySeededLweCiphertextList = 10
        /// The evaluation key with its packing key. Kind 3, the key without one, is retired.
        case compressedEvaluationKey = 9
    }

    public static let headerSize = 12
}

/// Appends little-endian fields.
struct ByteWriter {
    var bytes: [UInt8] = []

    init(magic: [UInt8], kind: ObscuraFormat.Kind, parameters: TFHEParameters, payloadCapacity: Int) {
        bytes.reserveCapacity(ObscuraFormat.headerSize + payloadCapacity)
        bytes += magic
        write16(ObscuraFormat.version)
        write16(kind.rawValue)
        write16(parameters.id)
        write16(0)
    }

    mutating func write<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
    mutating func write16(_ value: UInt16) { write(value) }
    mutating func write32(_ value: UInt32) { write(value) }
    mutating func write64(_ value: UInt64) { write(value) }
    mutating func write(_ seed: Seed128) { write64(seed.low); write64(seed.high) }
    mutating func write(_ words: [UInt64]) {
        for word in words { write64(word) }
    }
}

/// Reads little-endian fields, checking every length against the bytes present.
struct ByteReader {
    let bytes: [UInt8]
    /// Past the header once it has been checked.
    var offset = ObscuraFormat.headerSize
    /// The parameter set named in the header.
    let parameters: TFHEParameters

    /// Reads and checks the header: magic, version, kind, parameter set, reserved field (16-bit
    /// little-endian fields after the 4-byte magic).
    init(_ bytes: [UInt8], kind: ObscuraFormat.Kind, secret: Bool, expected: TFHEParameters?, limit: Int)
        throws(SerializationError) {
        guard bytes.count <= limit else { throw .tooLarge(size: bytes.count, limit: limit) }
        guard bytes.count >= ObscuraFormat.headerSize else {
            throw .truncated(needed: ObscuraFormat.headerSize, available: bytes.count)
        }
        let magic = Array(bytes[0..<4])
        if magic == ObscuraFormat.secretMagic && !secret { throw .secretKeyNotAccepted }
        guard magic == (secret ? ObscuraFormat.secretMagic : ObscuraFormat.publicMagic) else { throw .badMagic }
        func field(_ index: Int) -> UInt16 { UInt16(bytes[4 + 2 * index]) | UInt16(bytes[5 + 2 * index]) << 8 }
        let version = field(0)
        guard version == ObscuraFormat.version else { throw .unsupportedVersion(version) }
        let foundKind = field(1)
        guard foundKind == kind.rawValue else { throw .wrongKind(expected: kind.rawValue, found: foundKind) }
        let id = field(2)
        guard let found = TFHEParameters.withID(id) else { throw .unknownParameterSet(id) }
        if let expected, expected.id != id { throw .parameterMismatch(expected: expected.id, found: id) }
        guard field(3) == 0 else { throw .invalidValue("reserved header field is not zero") }
        self.bytes = bytes
        parameters = found
    }

    var remaining: Int { bytes.count - offset }

    mutating func require(_ count: Int) throws(SerializationError) {
        guard count >= 0, count <= remaining else { throw .truncated(needed: offset + count, available: bytes.count) }
    }

    /// A little-endian integer of T's width.
    mutating func read<T: FixedWidthInteger & UnsignedInteger>(_: T.Type) throws(SerializationError) -> T {
        let size = T.bitWidth / 8
        try require(size)
        var value: T = 0
        for i in 0..<size { value |= T(bytes[offset + i]) << T(8 * i) }
        offset += size
        return value
    }

    mutating func read16() throws(SerializationError) -> UInt16 { try read(UInt16.self) }
    mutating func read32() throws(SerializationError) -> UInt32 { try read(UInt32.self) }
    mutating func read64() throws(SerializationError) -> UInt64 { try read(UInt64.self) }

    mutating func readSeed() throws(SerializationError) -> Seed128 {
        let low = try read64()
        return Seed128(low: low, high: try read64())
    }

    /// `count` words, after checking that they are present.
    mutating func readWords(_ count: Int) throws(SerializationError) -> [UInt64] {
        try require(count * 8)
        var words = [UInt64](repeating: 0, count: count)
        words.withUnsafeMutableBytes { destination in
            bytes.withUnsafeBytes { source in
                destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: source[offset..<(offset + count * 8)]))
            }
        }
        offset += count * 8
        for i in 0..<count { words[i] = UInt64(littleEndian: words[i]) }
        return words
    }

    /// A list count, checked against the bytes left before anything is allocated.
    mutating func readCount(elementSize: Int) throws(SerializationError) -> Int {
        let count = Int(try read32())
        guard count.multipliedReportingOverflow(by: elementSize).overflow == false,
              count * elementSize == remaining else {
            throw .invalidValue("list of \(count) elements of \(elementSize) bytes in \(remaining) bytes")
        }
        return count
    }

    func finish() throws(SerializationError) {
        guard remaining == 0 else { throw .trailingBytes(remaining) }
    }
}

extension LweCiphertext {
    /// The serialized form under `parameters` (a big-key ciphertext).
    public func serialized(parameters: TFHEParameters) -> [UInt8] {
        var writer = ByteWriter(magic: ObscuraFormat.publicMagic, kind: .lweCiphertext, parameters: parameters,
                                payloadCapacity: storage.count * 8)
        writePayload(to: &writer, parameters: parameters)
        return writer.bytes
    }

    /// Reads a ciphertext, optionally requiring a parameter set.
    public init(deserializing bytes: [UInt8], expecting parameters: TFHEParameters? = nil,
                limit: Int = ObscuraFormat.defaultLimit) throws(SerializationError) {
        var reader = try ByteReader(bytes, kind: .lweCiphertext, secret: false, expected: parameters, limit: limit)
        try self.init(readingPayloadFrom: &reader)
        try reader.finish()
    }
}

extension SeededLweCiphertext {
    /// The serialized form: header, seed, body (36 bytes). A single ciphertext is under the big
    /// key (only lists, kind 10, carry small-key ciphertexts).
    public func serialized(parameters: TFHEParameters) -> [UInt8] {
        precondition(dimension == parameters.bigLweDimension, "a single seeded ciphertext is under the big key")
        var writer = ByteWriter(magic: ObscuraFormat.publicMagic, kind: .seededLweCiphertext, parameters: parameters,
                                payloadCapacity: Self.payloadSize)
        writePayload(to: &writer, parameters: parameters)
        return writer.bytes
    }

    /// Reads a seeded ciphertext, optionally requiring a parameter set.
    public init(deserializing bytes: [UInt8], expecting parameters: TFHEParameters? = nil,
                limit: Int = ObscuraFormat.defaultLimit) throws(SerializationError) {
        var reader = try ByteReader(bytes, kind: .seededLweCiphertext, secret: false, expected: parameters, limit: limit)
        try self.init(readingPayloadFrom: &reader)
        try reader.finish()
    }

    static let payloadSize = 24

    func writePayload(to writer: inout ByteWriter, parameters: TFHEParameters) {
        precondition(dimension == parameters.bigLweDimension || dimension == parameters.lweDimension)
        writer.write(seed)
        writer.write64(body)
    }

    /// Reads a seed and a body, of a ciphertext under `key` (the big key unless told).
    init(readingPayloadFrom reader: inout ByteReader, key: LweKey = .big) throws(SerializationError) {
        let seed = try reader.readSeed()
        self.init(seed: seed, body: try reader.read64(), dimension: key.dimension(reader.parameters))
    }
}

extension LweCiphertext {
    func writePayload(to writer: inout ByteWriter, parameters: TFHEParameters) {
        precondition(dimension == parameters.bigLweDimension)
        writer.write(storage)
    }

    init(readingPayloadFrom reader: inout ByteReader) throws(SerializationError) {
        self.init(storage: try reader.readWords(reader.parameters.bigLweDimension + 1))
    }
}

/// Lists: header, a UInt32 count checked against the bytes present, then the elements'
/// payloads back to back.
enum ListFormat {
    static func serialize<Element>(_ elements: [Element], kind: ObscuraFormat.Kind, parameters: TFHEParameters,
                                   elementSize: Int, write: (Element, inout ByteWriter) -> Void) -> [UInt8] {
        var writer = ByteWriter(magic: ObscuraFormat.publicMagic, kind: kind, parameters: parameters,
                                payloadCapacity: 4 + elements.count * elementSize)
        writer.write32(UInt32(elements.count))
        for element in elements { write(element, &writer) }
        return writer.bytes
    }

    static func deserialize<Element>(_ bytes: [UInt8], kind: ObscuraFormat.Kind, expecting parameters: TFHEParameters?,
                                     limit: Int, elementSize: (TFHEParameters) -> Int,
                                     read: (inout ByteReader) throws(SerializationError) -> Element)
        throws(SerializationError) -> [Element] {
        var reader = try ByteReader(bytes, kind: kind, secret: false, expected: parameters, limit: limit)
        let count = try reader.readCount(elementSize: elementSize(reader.parameters))
        var list: [Element] = []
        list.reserveCapacity(count)
        for _ in 0..<count { list.append(try read(&reader)) }
        return list
    }
}

extension Array where Element == SeededLweCiphertext {
    /// A list of seeded ciphertexts, as a client uploads an encrypted input: kind 6 under the
    /// big key, kind 10 under the small key (all elements under the same key).
    public func serialized(parameters: TFHEParameters) -> [UInt8] {
        let key: LweKey = first?.dimension == parameters.lweDimension ? .small : .big
        precondition(allSatisfy { $0.dimension == key.dimension(parameters) }, "a list's ciphertexts share one key")
        return ListFormat.serialize(self, kind: key.seededListKind, parameters: parameters,
                                    elementSize: SeededLweCiphertext.payloadSize) { $0.writePayload(to: &$1, parameters: parameters) }
    }

    /// Reads a list of seeded ciphertexts under either key; their dimension says which.
    public init(deserializing bytes: [UInt8], expecting parameters: TFHEParameters? = nil,
                limit: Int = ObscuraFormat.defaultLimit) throws(SerializationError) {
        func read(_ key: LweKey) throws(SerializationError) -> [SeededLweCiphertext] {
            try ListFormat.deserialize(bytes, kind: key.seededListKind, expecting: parameters, limit: limit,
                                       elementSize: { _ in SeededLweCiphertext.payloadSize },
                                       read: { (reader: inout ByteReader) throws(SerializationError) in
                                           try SeededLweCiphertext(readingPayloadFrom: &reader, key: key) })
        }
        do {
            self = try read(.big)
        } catch .wrongKind(_, found: ObscuraFormat.Kind.smallKeySeededLweCiphertextList.rawValue) {
            self = try read(.small)
        }
    }
}

extension LweKey {
    /// The kind of a seeded list under this key.
    var seededListKind: ObscuraFormat.Kind {
        switch self {
        case .big: .seededLweCiphertextList
        case .small: .smallKeySeededLweCiphertextList
        }
    }
}

extension Array where Element == LweCiphertext {
    /// A list of full ciphertexts, as a server returns encrypted results.
    public func serialized(parameters: TFHEParameters) -> [UInt8] {
        ListFormat.serialize(self, kind: .lweCiphertextList, parameters: parameters,
                             elementSize: (parameters.bigLweDimension + 1) * 8) { $0.writePayload(to: &$1, parameters: parameters) }
    }

    /// Reads a list of ciphertexts.
    public init(deserializing bytes: [UInt8], expecting parameters: TFHEParameters? = nil,
                limit: Int = ObscuraFormat.defaultLimit) throws(SerializationError) {
        self = try ListFormat.deserialize(bytes, kind: .lweCiphertextList, expecting: parameters, limit: limit,
                                          elementSize: { ($0.bigLweDimension + 1) * 8 },
                                          read: { (reader: inout ByteReader) throws(SerializationError) in
                                              try LweCiphertext(readingPayloadFrom: &reader) })
    }
}

extension Array where Element == LweCiphertext {
    /// The list with every word rounded to its top 16 bits (kind 7): a quarter of the bytes of
    /// `serialized(parameters:)`, for results that are only decrypted. Each word moves by a
    /// uniform error in [-2^47, 2^47), so the phase gains at most `roundingPhaseVariance`,
    /// which plans add to the noise of every result they decode.
    public func serializedRounded(parameters: TFHEParameters) -> [UInt8] {
        ListFormat.serialize(self, kind: .roundedLweCiphertextList, parameters: parameters,
                             elementSize: (parameters.bigLweDimension + 1) * 2) { ciphertext, writer in
            precondition(ciphertext.dimension == parameters.bigLweDimension)
            for word in ciphertext.storage { writer.write(UInt16(truncatingIfNeeded: (word &+ (1 << 47)) >> 48)) }
        }
    }

    /// Reads a rounded list; the low 48 bits of every word come back as zeros.
    public init(deserializingRounded bytes: [UInt8], expecting parameters: TFHEParameters? = nil,
                limit: Int = ObscuraFormat.defaultLimit) throws(SerializationError) {
        self = try ListFormat.deserialize(bytes, kind: .roundedLweCiphertextList, expecting: parameters, limit: limit,
                                          elementSize: { ($0.bigLweDimension + 1) * 2 },
                                          read: { (reader: inout ByteReader) throws(SerializationError) in
                                              var storage = [UInt64](repeating: 0, count: reader.parameters.bigLweDimension + 1)
                                              for i in storage.indices { storage[i] = UInt64(try reader.read(UInt16.self)) << 48 }
                                              return LweCiphertext(storage: storage)
                                          })
    }

    /// Bytes of a rounded list of `count` big-key ciphertexts.
    public static func roundedSerializedSize(count: Int, parameters: TFHEParameters) -> Int {
        ObscuraFormat.headerSize + 4 + count * (parameters.bigLweDimension + 1) * 2
    }

    /// The largest phase variance (torus units) that rounding adds to a big-key ciphertext:
    /// n + 1 errors of variance 2^-32/12, each weighted by a key bit of at most 1.
    public static func roundingPhaseVariance(_ parameters: TFHEParameters) -> Double {
        Double(parameters.bigLweDimension + 1) / 12 / Double.pow2(32)
    }
}

extension CompressedEvaluationKey {
    /// The serialized form: header, the three seeds, then the bodies (bootstrapping,
    /// key-switching, packing key).
    public func serialized() -> [UInt8] {
        var writer = ByteWriter(magic: ObscuraFormat.publicMagic, kind: .compressedEvaluationKey, parameters: parameters,
                                payloadCapacity: serializedSize - ObscuraFormat.headerSize)
        writer.write(bootstrapSeed)
        writer.write(keySwitchSeed)
        writer.write(packingSeed)
        writer.write(bootstrapBodies)
        writer.write(keySwitchBodies)
        writer.write(packingBodies)
        return writer.bytes
    }

    /// The kind of the evaluation keys that earlier versions wrote, without a packing key.
    static let retiredKind: UInt16 = 3

    /// Reads an evaluation key, optionally requiring a parameter set. A secret key offered here
    /// is refused by its magic bytes, before anything else is read.
    public init(deserializing bytes: [UInt8], expecting parameters: TFHEParameters? = nil,
                limit: Int = ObscuraFormat.defaultLimit) throws(SerializationError) {
        var reader: ByteReader
        do {
            reader = try ByteReader(bytes, kind: .compressedEvaluationKey, secret: false, expected: parameters, limit: limit)
        } catch .wrongKind(_, found: Self.retiredKind) {
            throw .invalidValue("an evaluation key without a packing key (kind 3, made before results were packed): make a new one")
        }
        let p = reader.parameters
        let bootstrapSeed = try reader.readSeed()
        let keySwitchSeed = try reader.readSeed()
        let packingSeed = try reader.readSeed()
        let bootstrapBodies = try reader.readWords(Self.bootstrapBodyCount(p))
        let keySwitchBodies = try reader.readWords(Self.keySwitchBodyCount(p))
        let packingBodies = try reader.readWords(Self.packingBodyCount(p))
        try reader.finish()
        self.init(parameters: p, bootstrapSeed: bootstrapSeed, bootstrapBodies: bootstrapBodies,
                  keySwitchSeed: keySwitchSeed, keySwitchBodies: keySwitchBodies,
                  packingSeed: packingSeed, packingBodies: packingBodies)
    }

    /// The size of the serialized key in bytes.
    public var serializedSize: Int { Self.serializedSize(for: parameters) }

    /// The size of any serialized key of a parameter set: fixed by the set.
    public static func serializedSize(for p: TFHEParameters) -> Int {
        ObscuraFormat.headerSize + 48 + (bootstrapBodyCount(p) + keySwitchBodyCount(p) + packingBodyCount(p)) * 8
    }
}

extension SecretKey {
    /// The secret key's own format ("OBSK" magic): header, then one byte per key bit, small key
    /// first. Store it only on the client.
    public func serialized() -> [UInt8] {
        var writer = ByteWriter(magic: ObscuraFormat.secretMagic, kind: .secretKey, parameters: parameters,
                                payloadCapacity: smallKey.count + bigKey.count)
        writer.bytes += smallKey.map { UInt8($0) }
        writer.bytes += bigKey.map { UInt8($0) }
        return writer.bytes
    }

    /// Reads a secret key.
    public init(deserializing bytes: [UInt8], limit: Int = ObscuraFormat.defaultLimit) throws(SerializationError) {
        var reader = try ByteReader(bytes, kind: .secretKey, secret: true, expected: nil, limit: limit)
        let p = reader.parameters
        try reader.require(p.lweDimension + p.bigLweDimension)
        let start = reader.offset
        let bits = bytes[start..<(start + p.lweDimension + p.bigLweDimension)]
        guard bits.allSatisfy({ $0 <= 1 }) else { throw .invalidValue("secret key bits must be 0 or 1") }
        reader.offset += bits.count
        try reader.finish()
        let values = bits.map { UInt64($0) }
        self.init(parameters: p, smallKey: Array(values[0..<p.lweDimension]), bigKey: Array(values[p.lweDimension...]))
    }
}
