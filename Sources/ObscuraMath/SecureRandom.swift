import Crypto
import CryptoExtras

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A 128-bit seed for a ``CSPRNG``.
///
/// Seeds travel inside seeded (compressed) ciphertexts and keys: whoever holds the seed can
/// re-derive the public masks, so a seed is public exactly when what it expands is public.
public struct Seed128: Sendable, Hashable {
    /// The seed's 16 bytes as two little-endian words.
    public var low: UInt64
    /// The high word.
    public var high: UInt64

    /// A seed from its two words.
    public init(low: UInt64, high: UInt64) {
        self.low = low
        self.high = high
    }

    /// A fresh seed from the operating system's entropy source (`getrandom` on Linux).
    public static func random() -> Seed128 {
        var system = SystemRandomNumberGenerator()
        return Seed128(low: system.next(), high: system.next())
    }
}

/// A deterministic cryptographically secure generator: AES-256 in counter mode, keyed by
/// SHA-256(domain label || seed).
///
/// The keystream is produced a few kilobytes at a time, so drawing one coefficient costs a
/// buffer read, not a system call. The domain label separates the streams of different
/// objects (masks of a ciphertext, of a key-switching key, noise, ...) even under one seed,
/// and the stream's byte order is part of Obscura's serialized formats: seeded objects are
/// re-expanded by replaying exactly this stream.
public struct CSPRNG: RandomNumberGenerator, Sendable {
    @usableFromInline static let bufferWords = 1024
    private static let zeroBlock = [UInt8](repeating: 0, count: bufferWords * 8)

    private let key: SymmetricKey
    private var nextBlockIndex: UInt64 = 0
    @usableFromInline var buffer: [UInt64]
    @usableFromInline var position: Int

    /// A generator whose whole output is determined by `seed` and `domain`.
    public init(seed: Seed128, domain: String) {
        var hasher = SHA256()
        hasher.update(data: Array("obscura.csprng.v1/".utf8) + Array(domain.utf8) + [0])
        withUnsafeBytes(of: seed.low.littleEndian) { hasher.update(bufferPointer: $0) }
        withUnsafeBytes(of: seed.high.littleEndian) { hasher.update(bufferPointer: $0) }
        key = SymmetricKey(data: hasher.finalize())
        buffer = [UInt64](repeating: 0, count: Self.bufferWords)
        position = Self.bufferWords
    }

    /// The same stream as `init(seed:domain:)`, started at 64-bit word `startWord`: counter mode
    /// can seek, so parallel workers each expand their own part of one stream.
    public init(seed: Seed128, domain: String, startingAtWord startWord: Int) {
        self.init(seed: seed, domain: domain)
        nextBlockIndex = UInt64(startWord / Self.bufferWords) * UInt64(Self.bufferWords / 2)
        refill()
        position = startWord % Self.bufferWords
    }

    /// A generator seeded from operating-system entropy, for secrets and noise.
    public static func fromSystemEntropy(domain: String) -> CSPRNG {
        CSPRNG(seed: .random(), domain: domain)
    }

    @usableFromInline
    mutating func refill() {
        var counterBlock = [UInt8](repeating: 0, count: 16)
        var index = nextBlockIndex
        for byte in stride(from: 15, through: 8, by: -1) {
            counterBlock[byte] = UInt8(truncatingIfNeeded: index)
            index >>= 8
        }
        // The nonce is a full 128-bit counter block; the block counter never repeats for one key.
        let nonce = try! AES._CTR.Nonce(nonceBytes: counterBlock)
        let stream = try! AES._CTR.encrypt(Self.zeroBlock, using: key, nonce: nonce)
        buffer.withUnsafeMutableBytes { destination in
            stream.withUnsafeBytes { source in destination.copyMemory(from: source) }
        }
        for i in 0..<Self.bufferWords { buffer[i] = UInt64(littleEndian: buffer[i]) }
        nextBlockIndex &+= UInt64(Self.bufferWords * 8 / 16)
        position = 0
    }

    /// The next 64 uniformly random bits.
    @inlinable
    public mutating func next() -> UInt64 {
        if position == CSPRNG.bufferWords { refill() }
        let value = buffer[position]
        position &+= 1
        return value
    }

    /// Fills `output` with uniform 64-bit words (the mask of a ciphertext).
    @inlinable
    public mutating func fillUniform(_ output: UnsafeMutableBufferPointer<UInt64>) {
        var written = 0
        while written < output.count {
            if position == CSPRNG.bufferWords { refill() }
            let take = Swift.min(output.count - written, CSPRNG.bufferWords - position)
            buffer.withUnsafeBufferPointer { source in
                (output.baseAddress! + written).update(from: source.baseAddress! + position, count: take)
            }
            written += take
            position += take
        }
    }

    /// A uniform bit, for binary secret keys.
    @inlinable
    public mutating func nextBit() -> UInt64 { next() & 1 }
}
