import ObscuraMath
import Testing
@testable import TFHE

struct BooleanGateTests {
    @Test("every gate on every input pair, over several keys", arguments: [1, 2, 3] as [UInt64])
    func truthTables(seed: UInt64) {
        let (secret, key) = KeyCache.shared.keys(.booleanGates, seed: seed)
        let encryptor = Encryptor(secretKey: secret)
        let evaluator = Evaluator(key: key)
        for a in [false, true] {
            for b in [false, true] {
                let ca = encryptor.encrypt(bit: a), cb = encryptor.encrypt(bit: b)
                for gate in Evaluator.Gate.allCases {
                    let result = evaluator.gate(gate, ca, cb)
                    #expect(encryptor.decryptBit(result) == gate.evaluate(a, b), "\(gate) \(a) \(b)")
                }
                #expect(encryptor.decryptBit(evaluator.not(ca)) == !a)
                for c in [false, true] {
                    let cc = encryptor.encrypt(bit: c)
                    #expect(encryptor.decryptBit(evaluator.mux(ca, cb, cc)) == (a ? b : c))
                }
            }
        }
        #expect(evaluator.bootstrapCount == 4 * 10 + 8 * 2)
    }
}
