/// Why a dataset file could not be read. Every message names the file and what is wrong.
public enum DatasetError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file is missing or unreadable.
    case unreadable(path: String)
    /// A gzip stream that does not inflate.
    case corruptGzip(path: String)
    /// An IDX header that is not one we read.
    case badIDXHeader(path: String, reason: String)
    /// Fewer bytes than the header announces.
    case truncated(path: String, expected: Int, found: Int)
    /// A CSV line that does not parse.
    case badCSV(path: String, line: Int, reason: String)
    /// Images and labels that do not belong together.
    case mismatch(String)

    public var description: String {
        switch self {
        case .unreadable(let path): "\(path): cannot be read"
        case .corruptGzip(let path): "\(path): not a valid gzip stream"
        case .badIDXHeader(let path, let reason): "\(path): bad IDX header: \(reason)"
        case .truncated(let path, let expected, let found): "\(path): truncated: expected \(expected) bytes of data, found \(found)"
        case .badCSV(let path, let line, let reason): "\(path):\(line): \(reason)"
        case .mismatch(let what): what
        }
    }
}
