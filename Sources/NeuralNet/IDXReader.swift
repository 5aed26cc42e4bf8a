/// The IDX format of MNIST and Fashion-MNIST (plain or gzip): a big-endian header with magic
/// 0x0000_08NN (unsigned bytes, NN dimensions), the dimension sizes, then the data.
public enum IDXReader {
    /// Images: count × rows × columns bytes.
    public static func images(at path: String) throws(DatasetError) -> (count: Int, rows: Int, columns: Int, pixels: [UInt8]) {
        let (dimensions, data) = try read(path, expectedDimensions: 3)
        return (dimensions[0], dimensions[1], dimensions[2], data)
    }

    /// Labels: one byte each.
    public static func labels(at path: String) throws(DatasetError) -> [UInt8] {
        try read(path, expectedDimensions: 1).data
    }

    static func read(_ path: String, expectedDimensions: Int) throws(DatasetError) -> (dimensions: [Int], data: [UInt8]) {
        let bytes = try FileBytes.read(path)
        guard bytes.count >= 4 else { throw .badIDXHeader(path: path, reason: "shorter than the 4-byte magic") }
        guard bytes[0] == 0, bytes[1] == 0 else { throw .badIDXHeader(path: path, reason: "magic does not start with two zero bytes") }
        guard bytes[2] == 0x08 else { throw .badIDXHeader(path: path, reason: "element type \(bytes[2]) is not unsigned byte (8)") }
        guard Int(bytes[3]) == expectedDimensions else {
            throw .badIDXHeader(path: path, reason: "\(bytes[3]) dimensions, expected \(expectedDimensions)")
        }
        let headerSize = 4 + 4 * expectedDimensions
        guard bytes.count >= headerSize else { throw .badIDXHeader(path: path, reason: "header cut short") }
        var dimensions: [Int] = []
        var total = 1
        for d in 0..<expectedDimensions {
            let offset = 4 + 4 * d
            let size = Int(bytes[offset]) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8 | Int(bytes[offset + 3])
            guard size > 0, size <= 1 << 24 else { throw .badIDXHeader(path: path, reason: "dimension \(d) has size \(size)") }
            dimensions.append(size)
            let (product, overflow) = total.multipliedReportingOverflow(by: size)
            guard !overflow, product <= 1 << 32 else { throw .badIDXHeader(path: path, reason: "absurd total size") }
            total = product
        }
        let found = bytes.count - headerSize
        guard found == total else { throw .truncated(path: path, expected: total, found: found) }
        return (dimensions, Array(bytes[headerSize...]))
    }
}
