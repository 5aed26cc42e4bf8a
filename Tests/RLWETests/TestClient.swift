@testable import RLWE

/// One client's keys and a server evaluator holding its evaluation key, for tests.
struct TestClient<Encoder> {
    let secret: SecretKey
    let encryptor: Encryptor
    let decryptor: Decryptor
    let encoder: Encoder
    let evaluator: Evaluator

    init(_ context: RlweContext, rotations: [Int], encoder: Encoder) {
        secret = SecretKey(context: context)
        encryptor = Encryptor(secretKey: secret)
        decryptor = Decryptor(secretKey: secret)
        self.encoder = encoder
        let keys = KeyGenerator(secretKey: secret).makeEvaluationKey(rotations: rotations, conjugation: true)
        evaluator = try! Evaluator(context: context, key: keys)
    }
}

extension TestClient where Encoder == BatchEncoder {
    init(_ context: RlweContext, rotations: [Int] = [1, -3, 7]) {
        self.init(context, rotations: rotations, encoder: try! BatchEncoder(context: context))
    }

    func encrypt(_ values: [Int64]) throws -> Ciphertext { try encryptor.encrypt(encoder.encode(values)).expanded() }
    func decrypt(_ ct: Ciphertext) throws -> [Int64] { try encoder.decodeSigned(decryptor.decrypt(ct)) }
}

extension TestClient where Encoder == CKKSEncoder {
    init(_ context: RlweContext, rotations: [Int] = [1, -2, 5]) {
        self.init(context, rotations: rotations, encoder: try! CKKSEncoder(context: context))
    }

    func encrypt(_ values: [Complex]) throws -> Ciphertext { try encryptor.encrypt(encoder.encode(values)).expanded() }
    func decrypt(_ ct: Ciphertext) throws -> [Complex] { try encoder.decode(decryptor.decryptApproximate(ct)) }
}
