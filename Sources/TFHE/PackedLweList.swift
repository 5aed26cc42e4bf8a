import ObscuraMath

/// Ciphertexts under the big key packed N' to a GLWE ciphertext by the packing key switch
/// (``EvaluationKey/pack(_:)``): value p is coefficient p mod N' of GLWE ⌊p/N'⌋, in the set's
/// ``TFHEParameters/packing`` shape. The client reads value p back as an LWE ciphertext under
/// the big key by sample extraction, and decrypts it as any other.
///
/// It travels with every word switched to a transport modulus of 2^b (``serialized(transportBits:)``):
/// k'+1 words of b bits per value instead of k·N + 1 words of 64 (int4-128 at 17 bits: 6.4
/// bytes a value instead of 16,392, a partly filled last GLWE counted whole).
public struct PackedLweList: Sendable, Equatable {
    /// The parameter set of the packed ciphertexts.
    public let parameters: TFHEParameters
    /// The number of packed values.
    public let count: Int
    /// The GLWE ciphertexts' words, back to back (``PackingShape/glweWords`` each).
    public let words: [UInt64]

    /// The packing shape.
    public var shape: PackingShape { parameters.packing }
    /// GLWE ciphertexts needed for `count` values of a set.
    public static func glweCount(values count: Int, parameters: TFHEParameters) -> Int {
        (count + parameters.packing.polynomialSize - 1) / parameters.packing.polynomialSize
    }

    init(parameters: TFHEParameters, count: Int, words: [UInt64]) {
        precondition(words.count == Self.glweCount(values: count, parameters: parameters) * parameters.packing.glweWords)
        self.parameters = parameters
        self.count = count
        self.words = words
    }

    /// Value `index` as an LWE ciphertext under the big key (dimension k'·N' = k·N).
    public func extract(_ index: Int) -> LweCiphertext {
        precondition(index >= 0 && index < count, "no such packed value")
        let shape = shape, n = shape.polynomialSize
        var storage = [UInt64](repeating: 0, count: shape.glweDimension * n + 1)
        words.withUnsafeBufferPointer { all in
            storage.withUnsafeMutableBufferPointer { out in
                GlweCiphertext.sampleExtract(all.baseAddress! + (index / n) * shape.glweWords, k: shape.glweDimension, n: n,
                                             coefficient: index % n, into: out.baseAddress!)
            }
        }
        return LweCiphertext(storage: storage)
    }

    /// Every value, in order.
    public func extractAll() -> [LweCiphertext] { (0..<count).map(extract) }

    /// The largest phase variance (torus units) that the switch to 2^b adds to a value: k·N + 1
    /// rounding errors of variance 2^-2b/12, each weighted by a key bit of at most 1.
    public static func transportRoundingVariance(_ parameters: TFHEParameters, bits: Int) -> Double {
        Double(parameters.bigLweDimension + 1) / 12 * Double.pow2(-2 * bits)
    }

    /// Bytes of a serialized list of `count` values at `bits` bits per word.
    public static func serializedSize(values count: Int, bits: Int, parameters: TFHEParameters) -> Int {
        ObscuraFormat.headerSize + 8 + (glweCount(values: count, parameters: parameters) * parameters.packing.glweWords * bits + 7) / 8
    }

    /// The transport bits that ``serialized(transportBits:)`` accepts.
    public static let transportBitRange = 1...32
}

extension PackedLweList {
    /// Header, the value count (UInt32), the transport bits b (UInt32), then every word rounded
    /// to its top b bits, packed little-endian into a bit stream (kind 8).
    public func serialized(transportBits bits: Int) -> [UInt8] {
        precondition(Self.transportBitRange.contains(bits))
        var writer = ByteWriter(magic: ObscuraFormat.publicMagic, kind: .packedLweList, parameters: parameters,
                                payloadCapacity: 8 + (words.count * bits + 7) / 8)
        writer.write32(UInt32(count))
        writer.write32(UInt32(bits))
        let shift = UInt64(64 - bits), half = UInt64(1) << (shift - 1), mask = (UInt64(1) << UInt64(bits)) - 1
        // At most 7 bits wait in `pending` before a value of at most 32 bits joins them.
        var pending: UInt64 = 0, pendingBits = 0
        for word in words {
            let value = ((word &+ half) >> shift) & mask
            pending |= value << UInt64(pendingBits)
            pendingBits += bits
            while pendingBits >= 8 {
                writer.bytes.append(UInt8(truncatingIfNeeded: pending))
                pending >>= 8
                pendingBits -= 8
            }
        }
        if pendingBits > 0 { writer.bytes.append(UInt8(truncatingIfNeeded: pending)) }
        return writer.bytes
    }

    /// Reads a packed list; every word's low 64 − b bits come back as zeros.
    public init(deserializing bytes: [UInt8], expecting parameters: TFHEParameters? = nil,
                limit: Int = ObscuraFormat.defaultLimit) throws(SerializationError) {
        var reader = try ByteReader(bytes, kind: .packedLweList, secret: false, expected: parameters, limit: limit)
        let p = reader.parameters
        let count = Int(try reader.read32()), bits = Int(try reader.read32())
        guard Self.transportBitRange.contains(bits) else { throw .invalidValue("\(bits) transport bits") }
        let wordCount = Self.glweCount(values: count, parameters: p) * p.packing.glweWords
        let byteCount = (wordCount * bits + 7) / 8
        guard byteCount == reader.remaining else {
            throw .invalidValue("\(count) packed values at \(bits) bits need \(byteCount) bytes, found \(reader.remaining)")
        }
        let shift = UInt64(64 - bits), mask = (UInt64(1) << UInt64(bits)) - 1
        var words = [UInt64](repeating: 0, count: wordCount)
        var pending: UInt64 = 0, pendingBits = 0, offset = reader.offset
        for w in 0..<wordCount {
            while pendingBits < bits {
                pending |= UInt64(bytes[offset]) << UInt64(pendingBits)
                offset += 1
                pendingBits += 8
            }
            words[w] = (pending & mask) << shift
            pending >>= UInt64(bits)
            pendingBits -= bits
        }
        // One encoding per list: the last byte's unused bits are zero.
        guard pending == 0 else { throw .invalidValue("nonzero padding bits after the last word") }
        self.init(parameters: p, count: count, words: words)
    }
}
