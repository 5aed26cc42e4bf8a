import Testing
@testable import TFHE
