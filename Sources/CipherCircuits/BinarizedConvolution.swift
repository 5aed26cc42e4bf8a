import TFHE

/// One binarized filter slid over an encrypted binary image: the main paper's binarized
/// convolution (its eq. 3), S = Σ ep(h-xnor(input bit, weight bit)), each output an encrypted
/// two's-complement integer of `accumulatorWidth` bits.
public struct BinarizedConvolution: Sendable {
    /// The filter's weight bits (true ↦ +1), row-major, `size × size`.
    public let weights: [Bool]
    /// The filter's side.
    public let size: Int
    /// The width of each output integer (the paper's 20 bits).
    public let accumulatorWidth: Int

    /// A filter; `weights.count` must be `size²`.
    public init(weights: [Bool], size: Int, accumulatorWidth: Int) {
        precondition(weights.count == size * size)
        precondition(accumulatorWidth >= EncryptedInteger.width(holding: 2 * size * size))
        self.weights = weights
        self.size = size
        self.accumulatorWidth = accumulatorWidth
    }

    /// The plaintext reference: Σ (2·[x = w] - 1) over the window at (row, column).
    public func reference(image: [Bool], side: Int, row: Int, column: Int) -> Int64 {
        var total: Int64 = 0
        for a in 0..<size {
            for b in 0..<size {
                total += image[(row + a) * side + column + b] == weights[a * size + b] ? 1 : -1
            }
        }
        return total
    }

    /// The output at (row, column) of an image of `side × side` encrypted bits.
    ///
    /// The h-xnor products are free; their sum S = Σ ±1 is ``CircuitEvaluator/sumOfSigns(_:width:method:)``:
    /// the paper's ripple accumulation at the full width, or a popcount as wide as it needs (5
    /// bits) then S = 2·popcount − 25, sign-extended for free.
    public func output(image: [HybridBit], side: Int, row: Int, column: Int, circuit: CircuitEvaluator,
                       method: CircuitMethod) -> EncryptedInteger {
        var products: [HybridBit] = []
        for a in 0..<size {
            for b in 0..<size {
                products.append(circuit.xnor(image[(row + a) * side + column + b], .plain(weights[a * size + b])))
            }
        }
        return circuit.sumOfSigns(products, width: accumulatorWidth, method: method)
    }
}
