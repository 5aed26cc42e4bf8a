import ArgumentParser
import Foundation
import ModelImport
import NeuralNet

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import a network trained elsewhere (ONNX): quantize it with calibration records, measure it, write a model file.")

    @Argument(help: "The ONNX file.") var onnx: String
    @Option(help: "The dataset folder: its training images calibrate the quantization, its test images measure accuracy.")
    var calibration: String
    @Option(help: "The dataset: mnist or fashion-mnist.") var dataset: String = "mnist"
    @Option(help: "How many training images calibrate.") var calibrationRecords: Int = ModelImporter.calibrationRecords
    @Option(help: "Where to write the model file.") var out: String
    @Option(help: "The model's name (default: the ONNX file's name).") var name: String?

    func validate() throws {
        guard ["mnist", "fashion-mnist"].contains(dataset) else { throw ValidationError("--dataset: mnist or fashion-mnist") }
        guard calibrationRecords > 0 else { throw ValidationError("--calibration-records must be positive") }
    }

    func run() throws {
        let kind: DatasetKind = dataset == "mnist" ? .mnist : .fashionMNIST
        let calibrationSet = try ModelImporter.calibrationData(kind, folder: calibration, records: calibrationRecords)
        let evaluation = try kind.evaluationData(folder: calibration)
        let modelName = name ?? URL(fileURLWithPath: onnx).deletingPathExtension().lastPathComponent
        let result = try ModelImporter.importONNX(path: onnx, name: modelName, datasetKind: kind,
                                                  calibration: calibrationSet,
                                                  evaluation: evaluation)
        print("\(onnx): \(result.imported.operators.count) nodes (\(result.imported.operators.joined(separator: ", "))), input \(result.imported.inputShape)")
        if result.imported.carriesItsIntegers {
            print("  quantization-aware (binarized input, integer-multiple weights): its integers are its own, nothing to calibrate")
        }
        for (bits, accuracy, agreement) in result.calibration {
            print(String(format: "  calibration on %d training images: %d-bit weights, integer %.2f%% (float %.2f%%), same decision as the float network on %.2f%%",
                         calibrationSet.count, bits, accuracy * 100, result.calibrationFloatAccuracy * 100, agreement * 100))
        }
        if let report = result.signForm {
            print("  ReLU and max pooling run on sign bootstraps once rewritten (post-training, on \(calibrationSet.count) training images):")
            for (stage, accuracy) in report.stages { print(String(format: "    %6.2f%%  %@", accuracy * 100, stage)) }
            print("  chosen: \(report.chosen) (the fewest levels within \(ModelImporter.signFormLossAllowed * 100) points of the float network, else the most accurate)")
        }
        try result.model.save(path: out)
        print("wrote \(out)")
        try describeModelFile(result.model)
    }
}
